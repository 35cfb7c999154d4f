// Checks the software KVM's x86 decoder (native/emu/softkvm/x86_decode.cc) against Unicorn
// itself: every byte sequence of a large corpus (every opcode of the one-byte, 0F, 0F 38 and 0F 3A
// maps with every ModRM byte; the same with prefixes, REX and their combinations; VEX/EVEX/XOP
// forms; the 15-byte limit; seeded random bytes) is run for one instruction in Unicorn, whose code
// hook reports the length QEMU decoded, in 16-bit (protected, else real mode), 32-bit and 64-bit
// code. decode_x86 must agree. Then hand-written vectors cover what Unicorn cannot judge (AVX,
// AVX-512, XOP, the decoder's other fields), and the decoding speed is measured on real code.
//
//   g++ -std=c++17 -O1 test/c/x86_decode_test.cc native/emu/softkvm/x86_decode.cc -Inative -lunicorn
//   ./a.out              the whole test (TAP-like output; exit status non-zero on any failure)
//   ./a.out -V           the hand-written vectors only
//   ./a.out -p 64 0f 01 d9 ...   what Unicorn and the decoder make of one sequence (16, 32 or 64)
//
// Outcomes per sequence:
//   both decode it           → the lengths must be equal;
//   only Unicorn runs it     → the hardware raises #UD but QEMU 5.0 does not;
//   only decode_x86 takes it → QEMU 5.0 lacks it or raises #UD (e.g. UD2, VMMCALL outside a guest);
//   neither                  → agreement.
// Every difference must match an entry of kKnown, which names the opcodes and the reason; an
// unexplained one fails the test and is printed with an example.
//
// The oracle: engines with QEMU's EPYC-Rome CPU model (a Phenom model for 3DNow!, which neither
// Zen nor EPYC-Rome has), reset to a saved context for every case. A virtual TLB backs every
// linear address, so that memory operands never fault. Unicorn "refuses" a sequence when its code
// hook does not report a size (QEMU leaves the placeholder 0xf1f1f1f1 when it raises #UD or #GP
// while decoding) or when running the instruction raises #UD (QEMU's SSE decoder, among others,
// reports the length decoded so far and raises #UD when the instruction runs).
#include <unicorn/unicorn.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "emu/softkvm/x86_decode.h"

using sevemu::softkvm::CodeMode;
using sevemu::softkvm::decode_x86;
using sevemu::softkvm::X86Insn;

namespace {

constexpr int kWindow = 16;         // bytes of a test case; the code page has HLTs after them
constexpr uint64_t kCode = 0x1000;  // where the case is placed (IP/EIP/RIP)
constexpr uint32_t kNoSize = 0xf1f1f1f1;  // Unicorn's placeholder size: the decode failed

int g_tap = 0;
int g_failed = 0;

void tap(bool ok, const std::string& what) {
  printf("%s %d - %s\n", ok ? "ok" : "not ok", ++g_tap, what.c_str());
  if (!ok) g_failed++;
}

const char* mode_name(CodeMode m) { return m == CodeMode::k16 ? "16-bit" : m == CodeMode::k32 ? "32-bit" : "64-bit"; }

std::string hex(const uint8_t* p, int n) {
  std::string s;
  char b[4];
  for (int i = 0; i < n; i++) {
    snprintf(b, sizeof b, i ? " %02x" : "%02x", p[i]);
    s += b;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Unicorn as the oracle: one engine per kind of code segment, reset to a saved context per case.

struct HookState {
  int calls = 0;
  uint32_t size = 0;
};

constexpr uint64_t kPage = 0x1000;
constexpr uint64_t kScratch = 0x100000;
constexpr uint64_t kGdtOffset = 0x800;
constexpr uint64_t kGdt[3] = {0, 0x00009A000000FFFFull, 0x000092000000FFFFull};

// Virtual TLB: the code page maps to itself, every other page into the scratch megabyte.
bool on_tlb_fill(uc_engine*, uint64_t vaddr, uc_mem_type, uc_tlb_entry* result, void*) {
  const uint64_t page = vaddr & ~(kPage - 1);
  result->paddr = page == kCode ? kCode : kScratch + (page & 0xFF000);
  result->perms = UC_PROT_ALL;
  return true;
}

void on_code(uc_engine* uc, uint64_t, uint32_t size, void* user) {
  auto* st = static_cast<HookState*>(user);
  if (st->calls++ == 0)
    st->size = size;
  else
    uc_emu_stop(uc);  // the second instruction: the first has run
}

struct UcResult {
  bool valid = false;  // decoded, and running it did not raise #UD
  int length = 0;      // when valid
  uc_err err = UC_ERR_OK;
};

class Oracle {
 public:
  Oracle() = default;
  Oracle(const Oracle&) = delete;
  Oracle& operator=(const Oracle&) = delete;
  ~Oracle() {
    if (ctx_) uc_context_free(ctx_);
    if (uc_) uc_close(uc_);
  }

  // kind: "real" (UC_MODE_16, real mode), "pm16" (UC_MODE_32 with a 16-bit code segment),
  // "32" (UC_MODE_32), "64" (UC_MODE_64).
  bool open(const std::string& kind, uc_cpu_x86 model = UC_CPU_X86_EPYC_ROME) {
    name_ = kind;
    const uc_mode mode = kind == "real" ? UC_MODE_16 : kind == "64" ? UC_MODE_64 : UC_MODE_32;
    if (uc_open(UC_ARCH_X86, mode, &uc_) != UC_ERR_OK) return false;
    // An AMD model, so that QEMU enables what EPYC has (SSE4a, SVM, CLWB, ADX, ...).
    if (uc_ctl_set_cpu_model(uc_, model) != UC_ERR_OK) return false;
    // Every linear address is backed: the code page is itself, all others share a scratch
    // megabyte. So memory operands never fault, and a #UD that QEMU raises only after loading
    // an operand is seen as the #UD it is.
    if (uc_ctl_tlb_mode(uc_, UC_TLB_VIRTUAL) != UC_ERR_OK) return false;
    if (uc_mem_map(uc_, 0, 0x1000 + kPage, UC_PROT_ALL) != UC_ERR_OK) return false;
    if (uc_mem_map(uc_, kScratch, 0x100000, UC_PROT_ALL) != UC_ERR_OK) return false;
    uc_hook h;
    if (uc_hook_add(uc_, &h, UC_HOOK_TLB_FILL, reinterpret_cast<void*>(on_tlb_fill), nullptr, 1, 0)) return false;
    if (kind == "pm16") {
      // GDT (in the code page): 0x08 = 16-bit code (D=0), 0x10 = 16-bit data, base 0 limit 64 KiB.
      uc_mem_write(uc_, kCode + kGdtOffset, kGdt, sizeof kGdt);
      uc_x86_mmr gdtr{0, kCode + kGdtOffset, sizeof kGdt - 1, 0};
      uint16_t data = 0x10, code = 0x08;
      if (uc_reg_write(uc_, UC_X86_REG_GDTR, &gdtr) || uc_reg_write(uc_, UC_X86_REG_DS, &data) ||
          uc_reg_write(uc_, UC_X86_REG_ES, &data) || uc_reg_write(uc_, UC_X86_REG_SS, &data) ||
          uc_reg_write(uc_, UC_X86_REG_CS, &code))
        return false;
    }
    uint64_t sp = 0x8000;
    uc_reg_write(uc_, mode == UC_MODE_64 ? UC_X86_REG_RSP : UC_X86_REG_ESP, &sp);
    // CR4: OSFXSR, OSXMMEXCPT (SSE), FSGSBASE, OSXSAVE (XGETBV). EFER: SCE (SYSCALL), SVME (SVM).
    uint64_t cr4 = (1u << 9) | (1u << 10) | (1u << 16) | (1u << 18);
    uc_reg_write(uc_, UC_X86_REG_CR4, &cr4);
    uc_x86_msr efer{0xC0000080, 0};
    uc_reg_read(uc_, UC_X86_REG_MSR, &efer);
    efer.value |= 1 | (1u << 12);
    uc_reg_write(uc_, UC_X86_REG_MSR, &efer);
    if (uc_hook_add(uc_, &h, UC_HOOK_CODE, reinterpret_cast<void*>(on_code), &st_, 1, 0)) return false;
    if (uc_context_alloc(uc_, &ctx_) || uc_context_save(uc_, ctx_)) return false;
    return true;
  }

  UcResult run(const uint8_t* bytes) {
    // The whole code page is rewritten: the previous case may have stored into it.
    uint8_t page[kPage];
    memset(page, 0xF4, sizeof page);  // HLT ends the translation block right after the case
    memcpy(page, bytes, kWindow);
    memcpy(page + kGdtOffset, kGdt, sizeof kGdt);
    uc_context_restore(uc_, ctx_);
    uc_mem_write(uc_, kCode, page, sizeof page);
    uc_ctl_remove_cache(uc_, kCode, kCode + 64);
    st_ = HookState{};
    UcResult r;
    r.err = uc_emu_start(uc_, kCode, 0, 0, 0);
    if (st_.calls == 0 || st_.size == kNoSize || st_.size == 0 || st_.size > 15) return r;
    if (st_.calls == 1 && r.err == UC_ERR_INSN_INVALID) return r;  // #UD while running it
    r.valid = true;
    r.length = static_cast<int>(st_.size);
    return r;
  }

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  uc_engine* uc_ = nullptr;
  uc_context* ctx_ = nullptr;
  HookState st_;
};

// ---------------------------------------------------------------------------------------------
// A light look at a case, independent of decode_x86, for the known-difference predicates:
// the prefixes and which opcode (map, byte) and ModRM byte the sequence has.

struct Look {
  bool lock = false, opsize = false, f2 = false, f3 = false, rex_seen = false;
  uint8_t rex = 0;   // REX immediately before the opcode (64-bit)
  int vex = 0;       // 0, 2 (C5), 3 (C4), 4 (62), 8 (XOP 8F)
  int map = 0;       // 0 one-byte, 1 0F, 2 0F38, 3 0F3A, VEX/EVEX/XOP map
  int op = -1;
  int modrm = -1;    // the byte after the opcode
  int reg() const { return modrm < 0 ? -1 : (modrm >> 3) & 7; }
  bool reg_form() const { return modrm >= 0xC0; }
};

Look look(const uint8_t* p, CodeMode mode) {
  Look l;
  int i = 0;
  for (; i < kWindow; i++) {
    uint8_t b = p[i];
    if (b == 0xF0) l.lock = true;
    else if (b == 0x66) l.opsize = true;
    else if (b == 0xF2) l.f2 = true;
    else if (b == 0xF3) l.f3 = true;
    else if (b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65 || b == 0x67) {
    } else if (mode == CodeMode::k64 && (b & 0xF0) == 0x40) {
      l.rex = b;
      l.rex_seen = true;
      continue;
    } else {
      break;
    }
    l.rex = 0;
  }
  auto at = [&](int k) { return i + k < kWindow ? p[i + k] : 0; };
  uint8_t b = at(0);
  bool regnext = (at(1) & 0xC0) == 0xC0;
  if (b == 0x0F) {
    if (at(1) == 0x38 || at(1) == 0x3A) {
      l.map = at(1) == 0x38 ? 2 : 3;
      l.op = at(2);
      l.modrm = at(3);
    } else {
      l.map = 1;
      l.op = at(1);
      l.modrm = at(2);
    }
  } else if (b == 0xC5 && (mode == CodeMode::k64 || regnext)) {
    l.vex = 2, l.map = 1, l.op = at(2), l.modrm = at(3);
  } else if (b == 0xC4 && (mode == CodeMode::k64 || regnext)) {
    l.vex = 3, l.map = at(1) & 0x1F, l.op = at(3), l.modrm = at(4);
  } else if (b == 0x62 && (mode == CodeMode::k64 || regnext)) {
    l.vex = 4, l.map = at(1) & 7, l.op = at(4), l.modrm = at(5);
  } else if (b == 0x8F && (at(1) & 0x38)) {
    l.vex = 8, l.map = at(1) & 0x1F, l.op = at(3), l.modrm = at(4);
  } else {
    l.op = b;
    l.modrm = at(1);
  }
  return l;
}

// ---------------------------------------------------------------------------------------------
// Known differences between Unicorn (QEMU 5.0 TCG, EPYC-Rome model) and the decoder, which
// follows AMD hardware. Each names the opcodes it covers and why, and is counted when it applies.

enum Kind { kUnicornOnly, kDecoderOnly, kLengthDiffers };

struct Case {
  uint8_t bytes[kWindow];
  CodeMode mode;
};

// What a predicate sees: the case, a look at its bytes, the decoder's result (null when it
// refused) and Unicorn's length (0 when it refused).
struct Seen {
  const Case& c;
  const Look& l;
  const X86Insn* d;
  int unicorn_length;
};

struct Known {
  Kind kind;
  const char* what;
  bool (*match)(const Seen&);
  long count = 0;
};

bool legacy(const Look& l, int map, std::initializer_list<int> ops) {
  if (l.vex != 0 || l.map != map) return false;
  for (int op : ops)
    if (l.op == op) return true;
  return false;
}
// More than one of 66/F2/F3: the hardware takes the last F2/F3 as the mandatory prefix (else 66),
// QEMU 5.0 takes 66, then F3, then F2, whatever their order.
bool mixed_prefixes(const Look& l) { return (l.opsize + l.f2 + l.f3) >= 2; }
// VEX/EVEX/XOP with none of the prefixes that make them #UD (66, F2, F3, LOCK, REX).
bool clean_vex(const Look& l) { return !(l.opsize || l.f2 || l.f3 || l.lock || l.rex_seen); }
int mandatory(const Look& l) { return l.f3 || l.f2 ? 2 : l.opsize ? 1 : 0; }  // coarse: 0 none, 1 66, 2 F2/F3

bool match_unicorn_only(const Seen& s);

// The case with its LOCK prefixes turned into (length-neutral) CS overrides.
Case unlocked(const Case& c) {
  Case u = c;
  for (int i = 0; i < kWindow; i++) {
    uint8_t b = u.bytes[i];
    bool prefix = b == 0x66 || b == 0x67 || b == 0xF2 || b == 0xF3 || b == 0x26 || b == 0x2E || b == 0x36 ||
                  b == 0x3E || b == 0x64 || b == 0x65 || b == 0xF0 || (c.mode == CodeMode::k64 && (b & 0xF0) == 0x40);
    if (!prefix) break;
    if (b == 0xF0) u.bytes[i] = 0x2E;
  }
  return u;
}

Known kKnown[] = {
    // --- Unicorn runs these; the hardware raises #UD, and so decode_x86 returns false ---
    {kUnicornOnly,
     "LOCK on an instruction that is not lockable or has a register destination: #UD on hardware; QEMU 5.0 "
     "mostly ignores the prefix (checked: without LOCK the decoder agrees, or another entry applies)",
     [](const Seen& s) {
       if (!s.l.lock) return false;
       Case u = unlocked(s.c);
       Look ul = look(u.bytes, u.mode);
       X86Insn d;
       bool ok = decode_x86(u.bytes, kWindow, u.mode, &d);
       if (ok) return d.length == s.unicorn_length;
       return match_unicorn_only(Seen{u, ul, nullptr, s.unicorn_length});
     }},
    {kUnicornOnly,
     "C6 F8-FF / C7 F8-FF (/7 with a register): Intel RTM XABORT Ib / XBEGIN Jz, #UD on AMD; QEMU 5.0 runs "
     "them as MOV r, imm (same length)",
     [](const Seen& s) { return legacy(s.l, 0, {0xC6, 0xC7}) && s.l.reg_form() && s.l.reg() == 7; }},
    {kUnicornOnly,
     "66 0F 12 / 66 0F 16 with a register operand (MOVLPD/MOVHPD take memory only): #UD on hardware; QEMU "
     "5.0 runs them",
     [](const Seen& s) { return legacy(s.l, 1, {0x12, 0x16}) && s.l.opsize && s.l.reg_form(); }},
    {kUnicornOnly,
     "register-only MMX/SSE forms with a memory ModRM (0F 50, 0F 71-73, 66/F2 0F 78-79, 0F C5, F2/F3 0F D6, "
     "0F D7, 0F F7): #UD on hardware; QEMU 5.0 ignores ModRM.mod",
     [](const Seen& s) {
       return legacy(s.l, 1, {0x50, 0x71, 0x72, 0x73, 0x78, 0x79, 0xC5, 0xD6, 0xD7, 0xF7}) && !s.l.reg_form();
     }},
    {kUnicornOnly,
     "MOVBE (0F 38 F0/F1 without F2) with a register operand: #UD on hardware; QEMU 5.0 runs it",
     [](const Seen& s) { return legacy(s.l, 2, {0xF0, 0xF1}) && s.l.reg_form(); }},
    {kUnicornOnly,
     "VEX opcodes (or VEX.pp) that have no VEX instruction (MMX forms, non-SSE 0F instructions, MOVBE/CRC32, "
     "...): #UD on hardware; QEMU 5.0 runs the legacy 0F / 0F 38 / 0F 3A instruction",
     [](const Seen& s) { return s.l.vex == 2 || s.l.vex == 3; }},
    {kUnicornOnly,
     "8F /1-/7 outside the XOP maps 8-10 (or XOP.pp != 0): #UD on hardware; QEMU 5.0 decodes POP Ev",
     [](const Seen& s) { return s.l.vex == 8; }},
    // --- Both decode it, with different lengths ---
    {kLengthDiffers,
     "XOP (8F with ModRM.reg != 0, maps 8-10): decoded as XOP as AMD defines it (Zen itself raises #UD); "
     "QEMU 5.0 decodes POP Ev",
     [](const Seen& s) { return s.l.vex == 8 && clean_vex(s.l); }},
    // --- decode_x86 takes these; Unicorn raises #UD ---
    {kDecoderOnly, "UD2 (0F 0B), UD1 (0F B9 /r), UD0 (0F FF /r): defined to raise #UD",
     [](const Seen& s) { return legacy(s.l, 1, {0x0B, 0xB9, 0xFF}); }},
    {kDecoderOnly, "INT 6 (CD 06): its #UD vector looks like an invalid instruction to the oracle",
     [](const Seen& s) { return legacy(s.l, 0, {0xCD}) && s.d && s.d->imm == 6; }},
    {kDecoderOnly, "INT1/ICEBP (F1): Unicorn's QEMU is built without it (WANT_ICEBP)",
     [](const Seen& s) { return legacy(s.l, 0, {0xF1}); }},
    {kDecoderOnly, "F6 /1, F7 /1: the TEST alias the hardware executes; QEMU 5.0 raises #UD",
     [](const Seen& s) { return legacy(s.l, 0, {0xF6, 0xF7}) && s.l.reg() == 1; }},
    {kDecoderOnly,
     "C6 /0, C7 /0 with REX.R: QEMU 5.0 counts REX.R into the /0 opcode extension and raises #UD",
     [](const Seen& s) { return legacy(s.l, 0, {0xC6, 0xC7}) && (s.l.rex & 4) && s.l.reg() == 0; }},
    {kDecoderOnly, "RSM (0F AA): #UD outside SMM, on hardware too",
     [](const Seen& s) { return legacy(s.l, 1, {0xAA}); }},
    {kDecoderOnly, "RDPMC (0F 33): QEMU 5.0 raises #UD (not implemented)",
     [](const Seen& s) { return legacy(s.l, 1, {0x33}); }},
    {kDecoderOnly,
     "0F 01 register forms QEMU 5.0 lacks or always faults: D9 VMMCALL (#UD unless intercepted), DE SKINIT, "
     "E8/EA SETSSBSY/SAVEPREVSSP, EE/EF RDPKRU/WRPKRU, FA MONITORX/MCOMMIT, FB MWAITX, FC CLZERO, FD RDPRU, "
     "FE INVLPGB/RMPADJUST/RMPUPDATE, FF TLBSYNC/PVALIDATE/PSMASH; and F3 0F 01 /5 RSTORSSP",
     [](const Seen& s) {
       if (!legacy(s.l, 1, {0x01})) return false;
       if (!s.l.reg_form()) return s.l.reg() == 5;
       for (int m : {0xD9, 0xDE, 0xE8, 0xEA, 0xEE, 0xEF, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF})
         if (s.l.modrm == m) return true;
       return false;
     }},
    {kDecoderOnly, "CMPccPS/PD/SS/SD (0F C2) with imm8 >= 8: legacy SSE ignores imm8[7:3]; QEMU 5.0 raises #UD",
     [](const Seen& s) { return legacy(s.l, 1, {0xC2}) && s.d && s.d->imm >= 8; }},
    {kDecoderOnly, "XRSTORS, XSAVEC, XSAVES (0F C7 /3 /4 /5), RDPID (F3 0F C7 /7): not in QEMU 5.0",
     [](const Seen& s) {
       return legacy(s.l, 1, {0xC7}) && (s.l.reg_form() ? s.l.f3 && s.l.reg() == 7 : s.l.reg() >= 3 && s.l.reg() <= 5);
     }},
    {kDecoderOnly, "SHA (0F 38 C8-CD, 0F 3A CC): not in QEMU 5.0",
     [](const Seen& s) {
       return legacy(s.l, 2, {0xC8, 0xC9, 0xCA, 0xCB, 0xCC, 0xCD}) || legacy(s.l, 3, {0xCC});
     }},
    {kDecoderOnly, "GFNI (66 0F 38 CF, 66 0F 3A CE/CF; Zen 4+): not in QEMU 5.0",
     [](const Seen& s) { return legacy(s.l, 2, {0xCF}) || legacy(s.l, 3, {0xCE, 0xCF}); }},
    {kDecoderOnly, "INVPCID (66 0F 38 82; Zen 3+): not in the EPYC-Rome model",
     [](const Seen& s) { return legacy(s.l, 2, {0x82}); }},
    {kDecoderOnly,
     "CET shadow stacks (Zen 3+): WRSS (0F 38 F6), WRUSS (66 0F 38 F5), CLRSSBSY (F3 0F AE /6 mem), INCSSP "
     "(F3 0F AE /5 reg): not in QEMU 5.0",
     [](const Seen& s) {
       return (legacy(s.l, 2, {0xF6}) && mandatory(s.l) == 0) || legacy(s.l, 2, {0xF5}) ||
              (legacy(s.l, 1, {0xAE}) && s.l.f3 && (s.l.reg() == 6 || s.l.reg() == 5));
     }},
    {kDecoderOnly, "MOVDIRI (0F 38 F9), MOVDIR64B (66 0F 38 F8) (Zen 5): not in QEMU 5.0",
     [](const Seen& s) { return legacy(s.l, 2, {0xF8, 0xF9}); }},
    {kDecoderOnly,
     "66/F2/F3 combined on an SSE opcode: the hardware takes the last F2/F3 as the mandatory prefix, QEMU 5.0 "
     "takes 66, then F3, then F2, so it sees another (undefined) instruction",
     [](const Seen& s) { return s.l.vex == 0 && s.l.map >= 1 && mixed_prefixes(s.l); }},
    {kDecoderOnly, "EVEX (62; AVX-512, Zen 4+): not in QEMU 5.0 (62 is BOUND to it)",
     [](const Seen& s) { return s.l.vex == 4 && clean_vex(s.l); }},
    {kDecoderOnly,
     "VEX (C4/C5) instructions QEMU 5.0 lacks (AVX, AVX2, FMA, F16C, VAES, VPCLMULQDQ, AVX-512 mask "
     "registers, ...), and any VEX in 16-bit code, where QEMU only knows LES/LDS",
     [](const Seen& s) { return (s.l.vex == 2 || s.l.vex == 3) && clean_vex(s.l); }},
};

bool match_unicorn_only(const Seen& s) {
  for (size_t i = 1; i < sizeof kKnown / sizeof kKnown[0]; i++)  // all but the LOCK entry
    if (kKnown[i].kind == kUnicornOnly && kKnown[i].match(s)) return true;
  return false;
}

// Sequences that abort QEMU 5.0 itself ("tcg fatal error"), so they cannot be asked: LOCK BT/BTS/
// BTR/BTC with a register operand (0F A3/AB/B3/BB, 0F BA with mod == 11) use an address that was
// never computed. The decoder refuses them (LOCK needs a memory destination), as hardware does.
bool crashes_unicorn(const Look& l) {
  return l.lock && l.vex == 0 && l.map == 1 && l.reg_form() &&
         (l.op == 0xA3 || l.op == 0xAB || l.op == 0xB3 || l.op == 0xBB || l.op == 0xBA);
}

// ---------------------------------------------------------------------------------------------
// Hand-written vectors from the opcode maps, for what Unicorn cannot judge (AVX, AVX-512, XOP, and
// the decoder's other fields). Lengths were also checked against GNU objdump where it decodes them.

struct Vector {
  CodeMode mode;
  const char* hex;
  int length;             // 0: must be refused
  int map = -1, opcode = -1, vex = -1, imm_size = -1;
  long long imm = -1;
  int operand_size = -1, address_size = -1, rex = -1, segment = -2, rep = -1;
};

constexpr CodeMode k16 = CodeMode::k16, k32 = CodeMode::k32, k64 = CodeMode::k64;

const Vector kVectors[] = {
    // MOV r, imm: Iv is 2/4/8 bytes; REX.W beats 66; a REX before another prefix is ignored.
    {k64, "48 b8 88 77 66 55 44 33 22 11", 10, 0, 0xB8, 0, 8, 0x1122334455667788, 8, 8, 0x48},
    {k64, "66 b8 34 12", 4, 0, 0xB8, 0, 2, 0x1234, 2},
    {k64, "48 66 b8 34 12", 5, 0, 0xB8, 0, 2, 0x1234, 2, 8, 0},
    {k64, "66 48 b8 01 02 03 04 05 06 07 08", 11, 0, 0xB8, 0, 8, -1, 8, 8, 0x48},
    {k32, "b8 78 56 34 12", 5, 0, 0xB8, 0, 4, 0x12345678, 4, 4},
    {k16, "b8 34 12", 3, 0, 0xB8, 0, 2, 0x1234, 2, 2},
    {k16, "66 b8 78 56 34 12", 6, 0, 0xB8, 0, 4, -1, 4, 2},
    // moffs (A0-A3) follow the address size.
    {k64, "a1 88 77 66 55 44 33 22 11", 9, 0, 0xA1, 0, 8, 0x1122334455667788, 4, 8},
    {k64, "67 a1 44 33 22 11", 6, 0, 0xA1, 0, 4, 0x11223344, 4, 4},
    {k32, "67 a1 34 12", 4, 0, 0xA1, 0, 2, -1, 4, 2},
    {k16, "67 a1 78 56 34 12", 6, 0, 0xA1, 0, 4, -1, 2, 4},
    // Near branches: 64-bit default operand size; 66 makes rel16 (AMD, and QEMU).
    {k64, "e8 00 01 00 00", 5, 0, 0xE8, 0, 4, 0x100, 8},
    {k64, "66 e8 34 12", 4, 0, 0xE8, 0, 2, 0x1234, 2},
    {k64, "48 66 e9 34 12", 5, 0, 0xE9, 0, 2, -1, 2},
    {k64, "66 48 e9 34 12 00 00", 7, 0, 0xE9, 0, 4, -1, 8},
    {k64, "0f 84 00 01 00 00", 6, 1, 0x84, 0, 4},
    {k64, "66 0f 84 34 12", 5, 1, 0x84, 0, 2},
    {k16, "e8 34 12", 3, 0, 0xE8, 0, 2},
    {k16, "66 e8 78 56 34 12", 6, 0, 0xE8, 0, 4},
    {k32, "66 e9 34 12", 4, 0, 0xE9, 0, 2},
    {k64, "eb fe", 2, 0, 0xEB, 0, 1, 0xFE},
    {k64, "ff 25 00 00 00 00", 6, 0, 0xFF, 0, 0, -1, 8},
    // PUSH imm, ENTER, RET imm16, far pointers.
    {k64, "68 78 56 34 12", 5, 0, 0x68, 0, 4, -1, 8},
    {k64, "66 68 34 12", 4, 0, 0x68, 0, 2, -1, 2},
    {k64, "6a 80", 2, 0, 0x6A, 0, 1, 0x80},
    {k64, "c8 10 00 02", 4, 0, 0xC8, 0, 3, 0x020010},
    {k16, "c8 10 00 02", 4, 0, 0xC8, 0, 3, 0x020010},
    {k64, "c2 08 00", 3, 0, 0xC2, 0, 2, 8},
    {k32, "ca 08 00", 3, 0, 0xCA, 0, 2, 8},
    {k32, "9a 78 56 34 12 00 10", 7, 0, 0x9A, 0, 6, 0x100012345678},
    {k32, "66 9a 34 12 00 10", 6, 0, 0x9A, 0, 4, 0x10001234},
    {k16, "ea 34 12 00 f0", 5, 0, 0xEA, 0, 4, 0xF0001234},
    {k64, "9a 78 56 34 12 00 10", 0},
    {k64, "ea 78 56 34 12 00 10", 0},
    // Group 3: TEST (/0, and its /1 alias) has an immediate, NOT/NEG/MUL/DIV do not.
    {k64, "f6 c0 12", 3, 0, 0xF6, 0, 1, 0x12},
    {k64, "f6 c8 12", 3, 0, 0xF6, 0, 1, 0x12},
    {k64, "f6 d0", 2, 0, 0xF6, 0, 0},
    {k64, "f7 c0 78 56 34 12", 6, 0, 0xF7, 0, 4},
    {k64, "66 f7 c0 34 12", 5, 0, 0xF7, 0, 2},
    {k64, "48 f7 c0 78 56 34 12", 7, 0, 0xF7, 0, 4, -1, 8},
    {k64, "f7 f9", 2, 0, 0xF7, 0, 0},
    // ModRM / SIB / displacement, 32/64-bit and 16-bit addressing.
    {k64, "8b 05 78 56 34 12", 6},        // RIP-relative
    {k64, "67 8b 05 78 56 34 12", 7, -1, -1, -1, -1, -1, 4, 4},
    {k64, "8b 04 25 78 56 34 12", 7},     // SIB without base: disp32
    {k64, "8b 04 05 78 56 34 12", 7},     // index only
    {k64, "8b 44 24 08", 4},
    {k64, "8b 84 24 00 01 00 00", 7},
    {k64, "8b 04 24", 3},
    {k64, "8b 45 00", 3},
    {k64, "41 8b 44 24 08", 5, -1, -1, -1, -1, -1, 4, 8, 0x41},
    {k32, "67 8b 06 34 12", 5, -1, -1, -1, -1, -1, 4, 2},   // 16-bit addressing: [disp16]
    {k16, "8b 06 34 12", 4},
    {k16, "8b 46 12", 3},
    {k16, "8b 86 34 12", 4},
    {k16, "8b 00", 2},
    {k16, "67 8b 04 24", 4, -1, -1, -1, -1, -1, 2, 4},
    {k16, "67 8b 05 78 56 34 12", 7},
    // Prefix bookkeeping: last segment, last of F2/F3, LOCK.
    {k64, "64 8b 00", 3, -1, -1, -1, -1, -1, -1, -1, 0, 4},
    {k32, "2e 3e 8b 00", 4, -1, -1, -1, -1, -1, -1, -1, -1, 3},
    {k32, "f2 f3 a4", 3, 0, 0xA4, -1, -1, -1, -1, -1, -1, -1, 0xF3},
    {k32, "f3 f2 a6", 3, 0, 0xA6, -1, -1, -1, -1, -1, -1, -1, 0xF2},
    {k64, "f0 48 0f b1 0a", 5, 1, 0xB1},
    {k64, "f0 48 01 c0", 0},   // LOCK with a register destination
    {k64, "f0 90", 0},
    // The 15-byte limit.
    {k64, "2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 90", 15},
    {k64, "2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 2e 90", 0},
    {k64, "2e 2e f0 48 81 84 24 11 22 33 44 55 66 77 88", 15},
    {k64, "2e 2e 2e f0 48 81 84 24 11 22 33 44 55 66 77 88", 0},
    // The instructions the software KVM looks for.
    {k64, "0f 01 d9", 3, 1, 0x01},               // VMMCALL
    {k64, "f3 0f 01 d9", 4, 1, 0x01, 0, 0, -1, -1, -1, -1, -2, 0xF3},  // VMGEXIT
    {k64, "f2 0f 01 ff", 4, 1, 0x01},            // PVALIDATE
    {k64, "f3 0f 01 fe", 4, 1, 0x01},            // RMPADJUST
    {k64, "0f a2", 2, 1, 0xA2},                  // CPUID
    {k64, "0f 32", 2, 1, 0x32},                  // RDMSR
    {k64, "0f 30", 2, 1, 0x30},                  // WRMSR
    {k64, "f4", 1, 0, 0xF4},                     // HLT
    {k64, "e4 60", 2, 0, 0xE4, 0, 1, 0x60},      // IN AL, imm8
    {k64, "66 e7 70", 3, 0, 0xE7, 0, 1, 0x70},   // OUT imm8, AX
    {k64, "ec", 1, 0, 0xEC},
    {k64, "f3 6e", 2, 0, 0x6E, -1, -1, -1, -1, -1, -1, -1, 0xF3},  // REP OUTSB
    {k16, "0f 01 d1", 3, 1, 0x01},               // XSETBV
    // MOV CR/DR: no SIB/displacement whatever mod says; LOCK MOV CR0 is CR8 on AMD.
    {k64, "0f 20 c0", 3, 1, 0x20, -1, -1, -1, 8},
    {k64, "0f 22 05", 3, 1, 0x22},
    {k64, "0f 22 04", 3, 1, 0x22},
    {k32, "f0 0f 22 c0", 4, 1, 0x22},
    {k64, "44 0f 20 c0", 4, 1, 0x20},
    {k64, "0f 20 c8", 0},                        // CR1
    {k64, "0f 21 f8", 3, 1, 0x21},
    {k64, "44 0f 21 c0", 0},                     // DR8
    // Odd immediates: 3DNow! suffix, EXTRQ/INSERTQ's two bytes.
    {k64, "0f 0f c1 b4", 4, 1, 0x0F, 0, 1, 0xB4},
    {k64, "0f 0f 44 24 08 9e", 6, 1, 0x0F, 0, 1, 0x9E},
    {k64, "0f 0f c1 00", 0},                     // no such 3DNow! operation
    {k64, "66 0f 78 c0 04 08", 6, 1, 0x78, 0, 2, 0x0804},
    {k64, "f2 0f 78 c1 04 08", 6, 1, 0x78, 0, 2, 0x0804},
    {k64, "66 0f 79 c1", 4, 1, 0x79, 0, 0},
    {k64, "0f 78 c1", 0},                        // VMREAD: Intel only
    {k64, "66 0f 3a 0f c1 08", 6, 3, 0x0F, 0, 1, 8},
    {k64, "66 0f 38 00 c1", 5, 2, 0x00, 0, 0},
    // Mode-dependent one-byte opcodes.
    {k64, "06", 0}, {k64, "27", 0}, {k64, "60", 0}, {k64, "d4 0a", 0}, {k64, "ce", 0}, {k64, "82 c0 01", 0},
    {k32, "06", 1}, {k32, "d4 0a", 2}, {k32, "d6", 1}, {k32, "82 c0 01", 3}, {k32, "0f 34", 2},
    {k64, "0f 34", 0}, {k64, "0f 05", 2}, {k32, "0f 05", 2},
    {k32, "40", 1, 0, 0x40}, {k32, "48 b8 00 00", 1, 0, 0x48},
    {k64, "63 c1", 2, 0, 0x63}, {k32, "63 c1", 2, 0, 0x63},
    // VEX (C4/C5): in 16/32-bit code only when the next byte has mod == 11, else LES/LDS.
    {k64, "c5 f8 77", 3, 1, 0x77, 2},            // VZEROUPPER: no ModRM
    {k64, "c5 fc 77", 3, 1, 0x77, 2},            // VZEROALL
    {k64, "c5 f9 70 c1 05", 5, 1, 0x70, 2, 1, 5},
    {k64, "c5 fc 28 84 24 00 01 00 00", 9, 1, 0x28, 2},
    {k64, "c4 e1 78 10 c1", 5, 1, 0x10, 3},
    {k64, "c4 e3 7d 18 c1 01", 6, 3, 0x18, 3, 1, 1},
    {k64, "c4 e2 7d 58 c1", 5, 2, 0x58, 3, 0},
    {k64, "c4 e2 79 a8 c1", 5, 2, 0xA8, 3},      // VFMADD213PS
    {k64, "c4 e3 79 44 c1 00", 6, 3, 0x44, 3},   // VPCLMULQDQ
    {k64, "c4 e2 f8 f2 c1", 5, 2, 0xF2, 3, 0, -1, 8},  // ANDN r64
    {k64, "c4 e3 7b f0 c1 05", 6, 3, 0xF0, 3, 1, 5},   // RORX
    {k64, "c4 e3 79 5c c1 20", 6, 3, 0x5C, 3},   // FMA4 VFMADDSUBPS (Zen 1)
    {k64, "66 c5 f8 77", 0}, {k64, "f3 c5 f8 77", 0}, {k64, "48 c5 f8 77", 0}, {k64, "f0 c5 f8 77", 0},
    {k64, "c5 f8 a2", 0},                        // no VEX CPUID
    {k64, "c4 e0 78 10 c1", 0},                  // map 0
    {k32, "c5 f8 77", 3, 1, 0x77, 2},
    {k32, "c4 00", 2, 0, 0xC4, 0},               // LES eax, [eax]
    {k32, "c5 05 78 56 34 12", 6, 0, 0xC5, 0},   // LDS eax, [disp32]
    {k16, "c4 06 34 12", 4, 0, 0xC4, 0},
    {k64, "c4 00", 0},
    // EVEX (62): BOUND in 16/32-bit code unless mod == 11; disp8 stays one byte (scaled by N).
    {k64, "62 f1 7c 48 10 00", 6, 1, 0x10, 4},
    {k64, "62 f1 7c 48 10 40 01", 7, 1, 0x10, 4},
    {k64, "62 f1 7c 48 10 84 24 00 01 00 00", 11, 1, 0x10, 4},
    {k64, "62 f3 7d 48 03 c1 05", 7, 3, 0x03, 4, 1, 5},   // VALIGND
    {k64, "62 f1 7d 48 72 c8 05", 7, 1, 0x72, 4, 1, 5},   // VPROLD
    {k64, "62 f2 7d 48 58 c1", 6, 2, 0x58, 4, 0},
    {k64, "62 f5 7c 48 58 c1", 0},               // map 5 (AVX512-FP16): not on Zen
    {k64, "62 f9 7c 48 10 c1", 0},               // reserved P0 bit 3
    {k64, "62 f1 78 48 10 c1", 0},               // P1 bit 2 must be 1
    {k32, "62 f1 7c 48 10 00", 6, 1, 0x10, 4},
    {k32, "62 00", 2, 0, 0x62, 0},               // BOUND eax, [eax]
    {k64, "66 62 f1 7c 48 10 00", 0},
    // XOP (8F with ModRM.reg != 0): map 8 imm8, map 9 none, map 10 imm32; 8F /0 is POP.
    {k64, "8f e8 78 c0 c1 05", 6, 8, 0xC0, 3, 1, 5},      // VPROTB xmm0, xmm1, 5
    {k64, "8f e9 78 81 c1", 5, 9, 0x81, 3, 0},            // VFRCZPS
    {k64, "8f ea 78 10 c1 04 03 02 01", 9, 10, 0x10, 3, 4, 0x01020304},  // BEXTR eax, ecx, imm32
    {k32, "8f e8 78 c0 c1 05", 6, 8, 0xC0, 3},
    {k64, "8f c0", 2, 0, 0x8F, 0, 0, -1, 8},              // POP rax
    {k64, "8f 00", 2, 0, 0x8F, 0},
    {k64, "8f e8 79 c0 c1 05", 0},               // XOP.pp != 0
    {k64, "8f eb 78 c0 c1", 0},                  // map 11
    {k64, "66 8f e8 78 c0 c1 05", 0},
};

bool check_vectors() {
  int bad = 0;
  for (const Vector& v : kVectors) {
    uint8_t bytes[32];
    int n = 0;
    for (const char* p = v.hex; *p;) {
      char* end;
      bytes[n++] = static_cast<uint8_t>(strtoul(p, &end, 16));
      p = end;
      while (*p == ' ') p++;
    }
    X86Insn d;
    const bool ok = decode_x86(bytes, n, v.mode, &d);
    std::string why;
    if (v.length == 0) {
      if (ok) why = "decoded (length " + std::to_string(d.length) + "), expected refused";
    } else if (!ok) {
      why = "refused";
    } else {
      auto expect = [&](const char* field, long long want, long long got) {
        if (want != -1 && want != got && why.empty())
          why = std::string(field) + " " + std::to_string(got) + ", expected " + std::to_string(want);
      };
      expect("length", v.length, d.length);
      expect("map", v.map, d.map);
      expect("opcode", v.opcode, d.opcode);
      expect("vex", v.vex, d.vex);
      expect("imm_size", v.imm_size, d.imm_size);
      expect("imm", v.imm, static_cast<long long>(d.imm));
      expect("operand_size", v.operand_size, d.operand_size);
      expect("address_size", v.address_size, d.address_size);
      expect("rex", v.rex, d.rex);
      if (v.segment != -2) expect("segment", v.segment, d.segment);
      expect("rep", v.rep, d.rep);
      // Only the full instruction decodes: one byte less is truncated.
      if (why.empty() && decode_x86(bytes, d.length - 1, v.mode, &d)) why = "decodes when truncated";
    }
    if (!why.empty()) {
      printf("# vector %s (%s): %s\n", v.hex, mode_name(v.mode), why.c_str());
      bad++;
    }
  }
  tap(bad == 0, std::to_string(sizeof kVectors / sizeof kVectors[0]) +
                    " hand-written vectors (AVX, AVX-512, XOP, fields)");
  return bad == 0;
}

// ---------------------------------------------------------------------------------------------
// Corpus.

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint8_t byte() { return static_cast<uint8_t>(next() >> 24); }
};

struct Corpus {
  std::vector<Case> cases;
  Rng rng{0x9E3779B97F4A7C15ull};

  // Appends prefix + opcode bytes + ModRM, then SIB/displacement/immediate bytes from `tail`
  // (random when empty).
  void add(CodeMode mode, std::initializer_list<uint8_t> head, std::vector<uint8_t> more = {}) {
    Case c;
    c.mode = mode;
    int n = 0;
    for (uint8_t b : head) c.bytes[n++] = b;
    for (uint8_t b : more)
      if (n < kWindow) c.bytes[n++] = b;
    while (n < kWindow) c.bytes[n++] = rng.byte();
    cases.push_back(c);
  }
  void add_raw(CodeMode mode, const std::vector<uint8_t>& bytes) {
    Case c;
    c.mode = mode;
    int n = 0;
    for (uint8_t b : bytes)
      if (n < kWindow) c.bytes[n++] = b;
    while (n < kWindow) c.bytes[n++] = rng.byte();
    cases.push_back(c);
  }
};

// The opcode bytes that lead to each map.
std::vector<uint8_t> escape(int map) {
  if (map == 1) return {0x0F};
  if (map == 2) return {0x0F, 0x38};
  if (map == 3) return {0x0F, 0x3A};
  return {};
}

// SIB bytes that exercise base = 5 (disp32 with mod 00) and others, chosen round-robin.
constexpr uint8_t kSibs[] = {0x25, 0x00, 0x24, 0x65, 0xE5, 0x1D, 0x6C, 0xAD};

void build_corpus(Corpus& c, CodeMode mode) {
  // (a) Every opcode of every map with every ModRM byte (and a rotating SIB byte).
  int k = 0;
  for (int map = 0; map <= 3; map++)
    for (int op = 0; op < 256; op++)
      for (int modrm = 0; modrm < 256; modrm++) {
        std::vector<uint8_t> v = escape(map);
        v.push_back(static_cast<uint8_t>(op));
        v.push_back(static_cast<uint8_t>(modrm));
        v.push_back(kSibs[k++ % 8]);
        c.add_raw(mode, v);
      }
  // (b) The same with prefixes (and REX in 64-bit mode), on a smaller set of ModRM bytes.
  std::vector<std::vector<uint8_t>> prefixes = {
      {0x66}, {0x67}, {0xF2}, {0xF3}, {0xF0}, {0x2E}, {0x26}, {0x64}, {0x65}, {0x36}, {0x3E},
      {0x66, 0x67}, {0x66, 0xF3}, {0xF3, 0x66}, {0x66, 0xF2}, {0xF2, 0x66}, {0xF2, 0xF3}, {0xF3, 0xF2},
      {0xF0, 0x66}, {0x67, 0xF0}, {0x66, 0x66, 0x66}, {0x26, 0x2E, 0x36, 0x3E, 0x64}};
  if (mode == CodeMode::k64) {
    std::vector<std::vector<uint8_t>> rex = {
        {0x48}, {0x41}, {0x44}, {0x4C}, {0x40}, {0x4F}, {0x66, 0x48}, {0x48, 0x66}, {0x48, 0x2E},
        {0xF3, 0x48}, {0xF2, 0x4C}, {0x66, 0x48, 0x67}, {0x48, 0x41}, {0xF0, 0x48}, {0x67, 0x49}};
    prefixes.insert(prefixes.end(), rex.begin(), rex.end());
  }
  // ModRM bytes: every mod, rm 4 (SIB), 5 (disp32/RIP) and 6 (16-bit disp16), register forms.
  constexpr uint8_t kModrms[] = {0x04, 0x05, 0x06, 0x0C, 0x44, 0x45, 0x84, 0x86, 0xC0, 0xDB, 0xF6, 0x3D};
  for (auto& pre : prefixes)
    for (int map = 0; map <= 3; map++)
      for (int op = 0; op < 256; op++)
        for (uint8_t modrm : kModrms) {
          std::vector<uint8_t> v = pre;
          for (uint8_t b : escape(map)) v.push_back(b);
          v.push_back(static_cast<uint8_t>(op));
          // Rotate the reg field so that groups see all their members.
          v.push_back(static_cast<uint8_t>((modrm & 0xC7) | (((modrm >> 3) + op) & 7) << 3));
          v.push_back(kSibs[k++ % 8]);
          c.add_raw(mode, v);
        }
  // (c) VEX (C5, C4), EVEX (62) and XOP (8F) for every opcode, with varied payloads.
  for (int op = 0; op < 256; op++)
    for (int j = 0; j < 8; j++) {
      uint8_t modrm = kModrms[(op + j) % (sizeof kModrms)];
      uint8_t r = c.rng.byte(), r2 = c.rng.byte();
      // In 16/32-bit code, R/X must be 1 (mod == 11 to the LES/LDS/BOUND reading) for most cases.
      uint8_t hi = (j < 6 || mode == CodeMode::k64) ? 0xC0 : 0x00;
      const uint8_t o = static_cast<uint8_t>(op);
      c.add_raw(mode, {0xC5, static_cast<uint8_t>(hi | (r & 0x3F) | (j & 1 ? 0x80 : 0)), o, modrm, kSibs[j]});
      uint8_t map = j < 6 ? static_cast<uint8_t>(1 + j % 3) : static_cast<uint8_t>(r & 0x1F);
      c.add_raw(mode, {0xC4, static_cast<uint8_t>(hi | (r & 0x20) | map), r2, o, modrm, kSibs[j]});
      uint8_t emap = j < 6 ? static_cast<uint8_t>(1 + j % 3) : static_cast<uint8_t>(r & 7);
      c.add_raw(mode, {0x62, static_cast<uint8_t>(hi | (r & 0x30) | emap), static_cast<uint8_t>(r2 | 4),
                       c.rng.byte(), static_cast<uint8_t>(op), modrm, kSibs[j]});
      uint8_t xmap = j < 6 ? static_cast<uint8_t>(8 + j % 3) : static_cast<uint8_t>(r & 0x1F);
      c.add_raw(mode, {0x8F, static_cast<uint8_t>((r & 0xE0) | xmap), static_cast<uint8_t>(r2 & 0xFC),
                       static_cast<uint8_t>(op), modrm, kSibs[j]});
    }
  // (d) The 15-byte limit: 0..15 prefixes before short and long instructions.
  const std::vector<std::vector<uint8_t>> insns = {
      {0x90}, {0x01, 0xC0}, {0x05, 1, 2, 3, 4}, {0x0F, 0xA2}, {0x81, 0x84, 0x24, 1, 2, 3, 4, 5, 6, 7, 8},
      {0x0F, 0x3A, 0x0F, 0xC0, 7}, {0xC7, 0x80, 1, 2, 3, 4, 5, 6, 7, 8}, {0xEB, 0}};
  const uint8_t pfx[] = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36, 0xF0};
  for (auto& ins : insns)
    for (int n = 0; n <= 15; n++)
      for (int rep = 0; rep < 4; rep++) {
        std::vector<uint8_t> v;
        for (int j = 0; j < n; j++) v.push_back(rep == 0 ? 0x3E : pfx[c.rng.next() % sizeof pfx]);
        for (uint8_t b : ins) v.push_back(b);
        c.add_raw(mode, v);
      }
  // (e) Random bytes, and random bytes after random prefixes and escapes.
  for (int j = 0; j < 60000; j++) c.add(mode, {});
  const uint8_t pfx64[] = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0xF0, 0x64, 0x48, 0x41, 0x4C, 0x40};
  for (int j = 0; j < 60000; j++) {
    std::vector<uint8_t> v;
    int n = static_cast<int>(c.rng.next() % 5);
    for (int q = 0; q < n; q++) v.push_back(mode == CodeMode::k64 ? pfx64[c.rng.next() % 11] : pfx[c.rng.next() % 11]);
    for (uint8_t b : escape(static_cast<int>(c.rng.next() % 4))) v.push_back(b);
    c.add_raw(mode, v);
  }
}

// ---------------------------------------------------------------------------------------------

struct Tally {
  long total = 0, unicorn_valid = 0, agree_valid = 0, agree_invalid = 0;
  long skipped = 0, with_3dnow = 0, len_mismatch = 0, unicorn_only = 0, decoder_only = 0;
  long unexplained = 0, trunc_bad = 0;
};

std::string class_key(const Case& c, const Look& l, const char* kind) {
  char b[96];
  snprintf(b, sizeof b, "%s %s vex%d map%d op %02x%s", mode_name(c.mode), kind, l.vex, l.map, l.op & 0xFF,
           l.lock ? " lock" : "");
  return b;
}

struct Example {
  long count = 0;
  std::string first;
};

// `oracles` run every case; 3DNow! (0F 0E, 0F 0F), which neither Zen nor the EPYC model has, is
// asked of `with_3dnow` (a Phenom model) instead.
void check_mode(CodeMode mode, std::vector<Oracle*> oracles, Oracle* with_3dnow, Tally& t,
                std::map<std::string, Example>& unexplained) {
  Corpus corpus;
  build_corpus(corpus, mode);
  for (const Case& c : corpus.cases) {
    const Look l = look(c.bytes, mode);
    if (crashes_unicorn(l)) {
      X86Insn d;
      if (decode_x86(c.bytes, kWindow, mode, &d))
        tap(false, "decoder takes LOCK BTx with a register: " + hex(c.bytes, kWindow));
      t.skipped++;
      continue;
    }
    t.total++;
    // The oracle: valid when any engine for this mode runs it (16-bit code: protected mode, else
    // real mode, which refuses what needs protected mode but may run what a PM16 segment cannot).
    UcResult u;
    std::vector<Oracle*> ask = oracles;
    if (l.vex == 0 && l.map == 1 && (l.op == 0x0E || l.op == 0x0F)) {
      ask = {with_3dnow};
      t.with_3dnow++;
    }
    for (Oracle* o : ask) {
      u = o->run(c.bytes);
      if (u.valid) break;
    }
    X86Insn d;
    const bool mine = decode_x86(c.bytes, kWindow, mode, &d);
    if (mine) {
      // Truncation: the same bytes cut one short must not decode; cut exactly, must.
      X86Insn e;
      if (decode_x86(c.bytes, d.length - 1, mode, &e) || !decode_x86(c.bytes, d.length, mode, &e) ||
          e.length != d.length) {
        if (t.trunc_bad++ < 5) printf("# truncation misbehaves on %s\n", hex(c.bytes, kWindow).c_str());
      }
    }
    if (u.valid) t.unicorn_valid++;
    Kind kind;
    if (u.valid && mine && u.length == d.length) {
      t.agree_valid++;
      continue;
    } else if (!u.valid && !mine) {
      t.agree_invalid++;
      continue;
    } else if (u.valid && mine) {
      kind = kLengthDiffers;
      t.len_mismatch++;
    } else if (u.valid) {
      kind = kUnicornOnly;
      t.unicorn_only++;
    } else {
      kind = kDecoderOnly;
      t.decoder_only++;
    }
    bool known = false;
    const Seen seen{c, l, mine ? &d : nullptr, u.valid ? u.length : 0};
    for (Known& k : kKnown) {
      if (k.kind == kind && k.match(seen)) {
        k.count++;
        known = true;
        break;
      }
    }
    if (known) continue;
    t.unexplained++;
    const char* kname = kind == kLengthDiffers ? "LENGTH" : kind == kUnicornOnly ? "unicorn-only" : "decoder-only";
    Example& ex = unexplained[class_key(c, l, kname)];
    if (ex.count++ == 0) {
      char b[160];
      snprintf(b, sizeof b, "%s  unicorn=%d (%s) decoder=%d", hex(c.bytes, kWindow).c_str(),
               u.valid ? u.length : 0, uc_strerror(u.err), mine ? d.length : 0);
      ex.first = b;
    }
  }
}

// Decode speed over real 64-bit code: the .text of node (or libc), read through objcopy.
void measure_speed() {
  const char* candidates[] = {"/usr/bin/node", "/usr/local/bin/node", "/lib/x86_64-linux-gnu/libc.so.6"};
  char tmp[] = "/tmp/x86dec-text-XXXXXX";
  int fd = mkstemp(tmp);
  if (fd < 0) return;
  close(fd);
  std::vector<uint8_t> text;
  std::string source;
  for (const char* path : candidates) {
    if (access(path, R_OK) != 0) continue;
    std::string cmd = std::string("objcopy -O binary --only-section=.text ") + path + " " + tmp + " 2>/dev/null";
    if (system(cmd.c_str()) != 0) continue;
    FILE* f = fopen(tmp, "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n > 0 && fread(text.data(), 1, text.size(), f) != text.size()) text.clear();
    fclose(f);
    if (!text.empty()) {
      source = path;
      break;
    }
  }
  unlink(tmp);
  if (text.empty()) {
    printf("# speed: no .text to measure (objcopy or node/libc missing)\n");
    return;
  }
  // Linear sweep: on an undecodable byte, step one byte.
  long insns = 0, bad = 0;
  auto t0 = std::chrono::steady_clock::now();
  int rounds = 0;
  double secs = 0;
  do {
    for (size_t i = 0; i < text.size();) {
      X86Insn d;
      if (decode_x86(text.data() + i, text.size() - i, CodeMode::k64, &d)) {
        i += d.length;
        insns++;
      } else {
        i++;
        bad++;
      }
    }
    rounds++;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < 1.0);
  printf("# speed: %s .text, %.1f MB: %.1f million instructions/s (%.0f MB/s), %.3f%% undecodable bytes\n",
         source.c_str(), text.size() / 1e6, insns / secs / 1e6, text.size() * rounds / secs / 1e6,
         100.0 * bad / (insns + bad));
}

}  // namespace

int main(int argc, char** argv) {
  Oracle real, pm16, o32, o64, pm16_3dnow, o32_3dnow, o64_3dnow;
  if (!real.open("real") || !pm16.open("pm16") || !o32.open("32") || !o64.open("64") ||
      !pm16_3dnow.open("pm16", UC_CPU_X86_PHENOM) || !o32_3dnow.open("32", UC_CPU_X86_PHENOM) ||
      !o64_3dnow.open("64", UC_CPU_X86_PHENOM)) {
    printf("not ok 1 - cannot set up Unicorn\n");
    return 1;
  }
  if (argc >= 4 && !strcmp(argv[1], "-p")) {
    // -p 16|32|64 HEX...: show what Unicorn and the decoder make of one sequence.
    CodeMode mode = !strcmp(argv[2], "16") ? CodeMode::k16 : !strcmp(argv[2], "32") ? CodeMode::k32 : CodeMode::k64;
    uint8_t bytes[kWindow];
    memset(bytes, 0x90, sizeof bytes);
    for (int i = 3; i < argc && i - 3 < kWindow; i++)
      bytes[i - 3] = static_cast<uint8_t>(strtoul(argv[i], nullptr, 16));
    std::vector<Oracle*> os = mode == CodeMode::k16 ? std::vector<Oracle*>{&real, &pm16}
                              : mode == CodeMode::k32 ? std::vector<Oracle*>{&o32} : std::vector<Oracle*>{&o64};
    for (Oracle* o : os) {
      UcResult r = o->run(bytes);
      printf("%s: valid=%d length=%d err=%s\n", o->name().c_str(), r.valid, r.length, uc_strerror(r.err));
    }
    X86Insn d;
    bool ok = decode_x86(bytes, kWindow, mode, &d);
    printf("decoder: %d length=%d vex=%d map=%d op=%02x modrm=%02x imm_size=%d\n", ok, d.length, d.vex, d.map,
           d.opcode, d.modrm, d.imm_size);
    return 0;
  }
  struct ModeRun {
    CodeMode mode;
    std::vector<Oracle*> oracles;
    Oracle* with_3dnow;
  };
  const ModeRun runs[] = {{CodeMode::k16, {&pm16, &real}, &pm16_3dnow},
                          {CodeMode::k32, {&o32}, &o32_3dnow},
                          {CodeMode::k64, {&o64}, &o64_3dnow}};
  check_vectors();
  if (argc >= 2 && !strcmp(argv[1], "-V")) return g_failed ? 1 : 0;  // the vectors only
  std::map<std::string, Example> unexplained;
  Tally all;
  for (const ModeRun& r : runs) {
    Tally t;
    auto t0 = std::chrono::steady_clock::now();
    check_mode(r.mode, r.oracles, r.with_3dnow, t, unexplained);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("# %s: %ld sequences (%.1fs; %ld 3DNow! ones asked of the Phenom model; %ld not asked: they abort "
           "QEMU): Unicorn decodes %ld; agree on %ld lengths and %ld invalid; differences: %ld lengths, "
           "%ld Unicorn-only, %ld decoder-only, of which %ld unexplained\n",
           mode_name(r.mode), t.total, s, t.with_3dnow, t.skipped, t.unicorn_valid, t.agree_valid, t.agree_invalid,
           t.len_mismatch, t.unicorn_only, t.decoder_only, t.unexplained);
    tap(t.unexplained == 0, std::string(mode_name(r.mode)) + ": " + std::to_string(t.total) +
                                " sequences, every difference from Unicorn is a known one");
    tap(t.trunc_bad == 0, std::string(mode_name(r.mode)) + ": truncated input is refused, exact input accepted");
    all.total += t.total;
  }
  for (auto& [key, ex] : unexplained) printf("#   %-48s x%-6ld e.g. %s\n", key.c_str(), ex.count, ex.first.c_str());
  for (const Known& k : kKnown)
    printf("# known (%s) x%ld: %s\n",
           k.kind == kUnicornOnly ? "Unicorn only" : k.kind == kDecoderOnly ? "decoder only" : "length", k.count,
           k.what);
  measure_speed();
  printf("1..%d\n", g_tap);
  return g_failed ? 1 : 0;
}
