#include "cpu_context.h"

#include <cstdlib>
#include <mutex>
#include <vector>

namespace sevemu::softkvm {

namespace {

// Unicorn's mode bits ("hflags"), verified by the probe below where they matter.
enum : uint32_t {
  kHfCplMask = 3, kHfCs32 = 1u << 4, kHfSs32 = 1u << 5, kHfAddseg = 1u << 6, kHfPe = 1u << 7,
  kHfMp = 1u << 9, kHfEm = 1u << 10, kHfTs = 1u << 11, kHfLma = 1u << 14, kHfCs64 = 1u << 15,
  kHfSvme = 1u << 20, kHfOsfxsr = 1u << 22, kHfSmap = 1u << 23,
};
constexpr uint64_t kCr0Pe = 1, kCr4Osfxsr = 1u << 9, kCr4Smap = 1u << 21;
constexpr uint64_t kEferSvme = 1u << 12, kEferLma = 1u << 10;
constexpr uint32_t kMsrEfer = 0xC0000080;

// A scratch engine with 64 KiB of RAM at 0, for the probe.
struct Scratch {
  const UnicornApi& uc;
  uc_engine* e = nullptr;
  uc_context* ctx = nullptr;
  std::vector<uint8_t> ram = std::vector<uint8_t>(0x10000 + 4096);
  uint8_t* mem = nullptr;
  int intno = -1;
  explicit Scratch(const UnicornApi& u) : uc(u) {
    mem = reinterpret_cast<uint8_t*>((uintptr_t(ram.data()) + 4095) & ~uintptr_t(4095));
    if (uc.open(UC_ARCH_X86, UC_MODE_64, &e) != UC_ERR_OK) e = nullptr;
    if (e && uc.mem_map_ptr(e, 0, 0x10000, UC_PROT_ALL, mem) != UC_ERR_OK) {
      uc.close(e);
      e = nullptr;
    }
    if (e && uc.context_alloc(e, &ctx) != UC_ERR_OK) ctx = nullptr;
  }
  ~Scratch() {
    if (ctx) uc.context_free(ctx);
    if (e) uc.close(e);
  }
  void write_reg(int id, uint64_t v) { uc.reg_write(e, id, &v); }
  uint64_t msr(uint32_t id) {
    uc_x86_msr m{id, 0};
    uc.reg_read(e, UC_X86_REG_MSR, &m);
    return m.value;
  }
  void set_msr(uint32_t id, uint64_t v) {
    uc_x86_msr m{id, v};
    uc.reg_write(e, UC_X86_REG_MSR, &m);
  }
};

void on_intr(uc_engine* e, uint32_t intno, void* user) {
  auto* s = static_cast<Scratch*>(user);
  s->intno = int(intno);
  s->uc.context_save(e, s->ctx);
  s->uc.emu_stop(e);
}

template <typename T>
T at(const uint8_t* state, size_t off) {
  T v;
  memcpy(&v, state + off, sizeof v);
  return v;
}

// Offsets (step `align`) in [from, to) where the value equals `v`.
template <typename T>
std::vector<size_t> find_all(const uint8_t* state, size_t from, size_t to, T v) {
  std::vector<size_t> out;
  for (size_t o = from; o + sizeof(T) <= to; o += sizeof(T))
    if (at<T>(state, o) == v) out.push_back(o);
  return out;
}

bool probe(const UnicornApi& uc, CpuLayout& L, std::string& why) {
  Scratch s(uc);
  if (!s.e || !s.ctx) return why = "cannot create a Unicorn x86-64 engine", false;
  L.size = *reinterpret_cast<const size_t*>(s.ctx);  // uc_context starts with the state's size
  const size_t total = uc.context_size(s.e);
  if (L.size < 1024 || L.size > total) return why = "unexpected uc_context header", false;

  // The state starts with the general registers (x86 order: RAX RCX RDX RBX RSP RBP RSI RDI
  // R8..R15), then RIP; its offset is after a small header that differs between versions.
  s.write_reg(UC_X86_REG_RAX, 0x1122334455667788ull);
  s.write_reg(UC_X86_REG_RCX, 0x99aabbccddeeff01ull);
  s.write_reg(UC_X86_REG_R15, 0x0f0e0d0c0b0a0908ull);
  s.write_reg(UC_X86_REG_RIP, 0x123456789aull);
  uc.context_save(s.e, s.ctx);
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(s.ctx);
  auto rax_at = find_all<uint64_t>(raw, 0, total - L.size + 8, 0x1122334455667788ull);
  for (size_t o = sizeof(size_t); o < total - L.size + 8 && rax_at.empty(); o++)
    if (at<uint64_t>(raw, o) == 0x1122334455667788ull) rax_at.push_back(o);
  if (rax_at.size() != 1) return why = "general registers not found", false;
  L.data = rax_at[0];
  auto state = [&] { return reinterpret_cast<const uint8_t*>(s.ctx) + L.data; };
  L.regs = 0;
  L.rip = 16 * 8;
  if (at<uint64_t>(state(), 0) != 0x1122334455667788ull || at<uint64_t>(state(), 8) != 0x99aabbccddeeff01ull ||
      at<uint64_t>(state(), 15 * 8) != 0x0f0e0d0c0b0a0908ull || at<uint64_t>(state(), L.rip) != 0x123456789aull)
    return why = "general registers not where expected", false;

  // Mode bits follow RIP, RFLAGS and Unicorn's four flag-computation words: a fresh 64-bit engine
  // is in long mode with 32/64-bit code and stack, protected mode, OSFXSR.
  L.hflags = L.rip + 8 * 5 + 8;
  const uint32_t want = kHfCs32 | kHfSs32 | kHfCs64 | kHfLma | kHfPe;
  if ((at<uint32_t>(state(), L.hflags) & want) != want) return why = "mode bits not where expected", false;
  uint64_t cr4 = 0;
  uc.reg_read(s.e, UC_X86_REG_CR4, &cr4);
  s.write_reg(UC_X86_REG_CR4, cr4 ^ kCr4Osfxsr);
  uc.context_save(s.e, s.ctx);
  bool flipped = bool(at<uint32_t>(state(), L.hflags) & kHfOsfxsr) == !bool(cr4 & kCr4Osfxsr);
  s.write_reg(UC_X86_REG_CR4, cr4);
  if (!flipped) return why = "OSFXSR mode bit not where expected", false;

  // Segments: load FS from a descriptor in a GDT at 0x2000 (the API loads FS/GS through the GDT).
  uint8_t* gdt = s.mem + 0x2000;
  const uint64_t desc = 0x0000ffffull | (0x5000ull << 16) | (0x34ull << 32) | (0x93ull << 40) | (0x4aull << 48) |
                        (0x00ull << 56);  // base 0x345000, limit 0xaffff, P DPL0 S type 3, D/B, AVL
  memcpy(gdt + 8, &desc, 8);
  uc_x86_mmr gdtr{0, 0x2000, 0x17, 0};
  uc.reg_write(s.e, UC_X86_REG_GDTR, &gdtr);
  uint16_t sel = 8;
  if (uc.reg_write(s.e, UC_X86_REG_FS, &sel) != UC_ERR_OK) return why = "cannot load FS from a GDT", false;
  uc.context_save(s.e, s.ctx);
  L.segs = L.hflags + 8;
  const size_t fs = L.segs + 24 * kFs;
  if (at<uint32_t>(state(), fs) != 8 || at<uint64_t>(state(), fs + 8) != 0x345000 ||
      at<uint32_t>(state(), fs + 16) != 0xaffff || !(at<uint32_t>(state(), fs + 20) & kDescP) ||
      ((at<uint32_t>(state(), fs + 20) >> kDescTypeShift) & 0xf) != 3)
    return why = "segment registers not where expected", false;

  // Control registers after the six segments and LDTR, TR, GDTR, IDTR.
  L.cr = L.segs + 24 * 10;
  s.write_reg(UC_X86_REG_CR3, 0x5000);
  uc.context_save(s.e, s.ctx);
  if (at<uint64_t>(state(), L.cr + 3 * 8) != 0x5000) return why = "control registers not where expected", false;

  // EFER: the one 64-bit field after the control registers that follows two different writes.
  std::vector<size_t> efer;
  for (int round = 0; round < 2; round++) {
    s.set_msr(kMsrEfer, (s.msr(kMsrEfer) & ~0x801ull) | (round ? 0x800 : 0x001));  // NXE / SCE
    uc.context_save(s.e, s.ctx);
    auto hits = find_all<uint64_t>(state(), L.cr + 5 * 8, std::min(L.size, L.cr + 1024), s.msr(kMsrEfer));
    if (round == 0) efer = hits;
    std::vector<size_t> both;
    for (size_t o : efer)
      for (size_t h : hits)
        if (o == h) both.push_back(o);
    efer = both;
  }
  if (efer.size() != 1) return why = "EFER not found", false;
  L.efer = efer[0];

  // Exceptions: mov ax, 0x1238; mov ds, ax → #GP(0x1238) (selector beyond the GDT limit).
  const uint8_t code[] = {0x66, 0xb8, 0x38, 0x12, 0x8e, 0xd8, 0xf4};
  memcpy(s.mem + 0x1000, code, sizeof code);
  uc_hook h;
  if (uc.hook_add(s.e, &h, UC_HOOK_INTR, reinterpret_cast<void*>(on_intr), &s, 1, 0) != UC_ERR_OK)
    return why = "cannot hook interrupts", false;
  std::vector<uint8_t> before(state(), state() + L.size);
  uc.emu_start(s.e, 0x1000, 0, 0, 0);
  if (s.intno != 13) return why = "probe #GP not raised", false;
  std::vector<size_t> err = find_all<int32_t>(state(), 0, L.size, 0x1238), old;
  for (size_t o : find_all<int32_t>(state(), 0, L.size, 13))
    if (at<int32_t>(before.data(), o) == -1) old.push_back(o);
  // Confirm: with the marker cleared a second #GP stays a #GP (else it becomes #DF, 8) and its
  // error code lands in the same place.
  for (size_t o : old) {
    uint8_t* st = reinterpret_cast<uint8_t*>(s.ctx) + L.data;
    int32_t minus1 = -1;
    memcpy(st + o, &minus1, 4);
    uc.context_restore(s.e, s.ctx);
    const uint8_t code2[] = {0x66, 0xb8, 0x40, 0x23, 0x8e, 0xd8, 0xf4};  // #GP(0x2340)
    memcpy(s.mem + 0x1100, code2, sizeof code2);  // new address: Unicorn keeps translated code
    s.intno = -1;
    uc.emu_start(s.e, 0x1100, 0, 0, 0);
    if (s.intno != 13) continue;
    for (size_t e : err)
      if (at<int32_t>(state(), e) == 0x2340) {
        L.error_code = e;
        L.old_exception = o;
      }
    if (L.error_code) break;
  }
  if (!L.error_code) return why = "exception state not found", false;
  // "Software interrupt" follows the error code: 0 after the #GP, 1 after INT 0x21.
  L.exception_is_int = L.error_code + 4;
  if (at<int32_t>(state(), L.exception_is_int) != 0) return why = "interrupt kind not found", false;
  const uint8_t code3[] = {0xcd, 0x21, 0xf4};  // int 0x21
  memcpy(s.mem + 0x1200, code3, sizeof code3);
  s.intno = -1;
  uc.emu_start(s.e, 0x1200, 0, 0, 0);
  uint64_t rip = 0;
  uc.reg_read(s.e, UC_X86_REG_RIP, &rip);
  if (s.intno != 0x21 || at<int32_t>(state(), L.exception_is_int) != 1 || rip != 0x1202)
    return why = "software interrupt state not found", false;
  uc.hook_del(s.e, h);
  return true;
}

}  // namespace

const CpuLayout* cpu_layout(std::string* why) {
  static std::once_flag once;
  static CpuLayout layout;
  static bool ok = false;
  static std::string reason;
  std::call_once(once, [] {
    const UnicornApi* uc = unicorn();
    if (!uc) {
      reason = unicorn_unavailable_reason();
      return;
    }
    std::string w;
    ok = probe(*uc, layout, w);
    if (!ok) {
      unsigned major = 0, minor = 0;
      uc->version(&major, &minor);
      reason = "Unicorn " + std::to_string(major) + "." + std::to_string(minor) +
               " keeps its CPU state differently from what the software KVM knows (" + w +
               "); Unicorn 2.1.1 to 2.1.4 are known to work";
    }
  });
  if (!ok && why) *why = reason;
  return ok ? &layout : nullptr;
}

CpuContext::CpuContext(const UnicornApi& uc, uc_engine* engine, const CpuLayout& layout)
    : uc_(uc), engine_(engine), layout_(layout) {
  if (uc_.context_alloc(engine_, &ctx_) != UC_ERR_OK) ctx_ = nullptr;
}

CpuContext::~CpuContext() {
  if (ctx_) uc_.context_free(ctx_);
}

void CpuContext::load() { uc_.context_save(engine_, ctx_); }
void CpuContext::store() { uc_.context_restore(engine_, ctx_); }

SegmentCache CpuContext::segment(int seg) const {
  size_t o = layout_.segs + 24 * size_t(seg);
  return {get<uint32_t>(o), get<uint64_t>(o + 8), get<uint32_t>(o + 16), get<uint32_t>(o + 20)};
}

void CpuContext::set_segment(int seg, const SegmentCache& s) {
  size_t o = layout_.segs + 24 * size_t(seg);
  put<uint32_t>(o, s.selector);
  put<uint64_t>(o + 8, s.base);
  put<uint32_t>(o + 16, s.limit);
  put<uint32_t>(o + 20, s.flags);
}

int CpuContext::cpl() const { return int(hflags() & kHfCplMask); }

bool CpuContext::vm86() const { return get<uint64_t>(layout_.rip + 8) & (1u << 17); }  // env eflags follows eip

void CpuContext::recompute_mode() {
  uint32_t hf = hflags() & ~(kHfCplMask | kHfCs32 | kHfSs32 | kHfAddseg | kHfPe | kHfMp | kHfEm | kHfTs | kHfLma |
                             kHfCs64 | kHfSvme | kHfOsfxsr | kHfSmap);
  const uint64_t cr0 = cr(0), cr4 = cr(4), efer_v = efer();
  const SegmentCache cs = segment(kCs), ss = segment(kSs);
  const bool pe = cr0 & kCr0Pe;
  if (pe) hf |= kHfPe;
  hf |= uint32_t((cr0 << 8) & (kHfMp | kHfEm | kHfTs));  // CR0.MP/EM/TS (bits 1-3) → bits 9-11
  if (cr4 & kCr4Osfxsr) hf |= kHfOsfxsr;
  if (cr4 & kCr4Smap) hf |= kHfSmap;
  if (efer_v & kEferSvme) hf |= kHfSvme;
  const bool lma = efer_v & kEferLma;
  if (lma) hf |= kHfLma;
  // CPL is SS.DPL (as on SVM, where the VMCB keeps CPL with SS); real mode runs at 0.
  if (pe) hf |= (ss.flags >> kDescDplShift) & 3;
  if (lma && (cs.flags & kDescL)) {
    hf |= kHfCs32 | kHfSs32 | kHfCs64;
  } else {
    if (cs.flags & kDescB) hf |= kHfCs32;
    if (ss.flags & kDescB) hf |= kHfSs32;
    // Segment bases must be added unless every data segment is flat in 32-bit protected mode.
    if (!pe || vm86() || !(hf & kHfCs32) || (segment(kDs).base | segment(kEs).base | ss.base) != 0)
      hf |= kHfAddseg;
  }
  set_hflags(hf);
}

}  // namespace sevemu::softkvm
