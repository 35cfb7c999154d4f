// x86 instruction decoder: boundaries and opcodes (see x86_decode.h).
//
// Written from the opcode maps of the AMD APM (Vol. 3, App. A) and the Intel SDM (Vol. 2, App. A).
// The decoder walks: legacy prefixes / REX → opcode escape (0F, 0F 38, 0F 3A, VEX, EVEX, XOP) →
// ModRM/SIB/displacement → immediate, driven by the attribute tables below.
//
// Lengths are those of AMD hardware, which Unicorn (QEMU 5.0 TCG) shares for every instruction it
// decodes, including the cases where AMD and Intel differ: 66 on a near branch (E8, E9, 0F 8x) in
// 64-bit mode makes its displacement 16-bit (Intel ignores the 66 there). The one exception is XOP
// (8F with ModRM.reg != 0), which QEMU decodes as POP Ev.
//
// Validity (false = #UD) follows AMD Zen 1-5: undefined opcodes and group members, opcodes removed
// in 64-bit mode, register forms of memory-only instructions (and the reverse), mandatory-prefix
// combinations, LOCK on what is not lockable. Where QEMU and the hardware read a prefix
// combination differently, an instruction either one defines is accepted. Not checked: VEX.L/W/
// vvvv constraints, EVEX opcodes, CPUID feature presence, privilege and CPU-state conditions.
// test/c/x86_decode_test.cc checks all this against Unicorn itself and lists every difference.
#include "x86_decode.h"

#include <array>
#include <initializer_list>
#include <utility>

namespace sevemu::softkvm {
namespace {

// Per-opcode attributes of the one-byte and 0F maps.
constexpr uint32_t kM = 1u << 0;      // has a ModRM byte
constexpr uint32_t kIb = 1u << 1;     // imm8 / rel8
constexpr uint32_t kIw = 1u << 2;     // imm16 (RET/RETF imm16)
constexpr uint32_t kIz = 1u << 3;     // imm16/32 by operand size (also rel16/32)
constexpr uint32_t kIv = 1u << 4;     // imm16/32/64 by operand size (MOV r, imm: B8-BF)
constexpr uint32_t kMoffs = 1u << 5;  // memory offset of address size (A0-A3)
constexpr uint32_t kFar = 1u << 6;    // far pointer: offset of operand size + 16-bit selector (9A, EA)
constexpr uint32_t kEnter = 1u << 7;  // ENTER: imm16 + imm8
constexpr uint32_t kIbb = 1u << 8;    // two imm8 (AMD SSE4a EXTRQ/INSERTQ, 0F 78)
constexpr uint32_t kGrp3 = 1u << 9;   // F6/F7: TEST (/0, /1) has an immediate, the rest do not
constexpr uint32_t kNo64 = 1u << 10;  // #UD in 64-bit mode
constexpr uint32_t kD64 = 1u << 11;   // 64-bit default operand size in 64-bit mode (stack, near branches)
constexpr uint32_t kBad = 1u << 12;   // undefined: #UD in every mode
constexpr uint32_t kMem = 1u << 13;   // ModRM must name memory (mod != 3): #UD otherwise
constexpr uint32_t kGrp = 1u << 14;   // validity depends on ModRM (see group_rule / special cases)
constexpr uint32_t kSse = 1u << 15;   // validity depends on the mandatory prefix (see the column tables)
constexpr uint32_t kLock = 1u << 16;  // LOCK allowed with a memory destination
constexpr uint32_t kNoEA = 1u << 17;  // ModRM names registers only, mod is ignored (MOV CR/DR)
constexpr uint32_t kX87 = 1u << 18;   // x87 escape D8-DF (see kX87Rules)
constexpr uint32_t k3DNow = 1u << 19;  // 0F 0F: ModRM, then an opcode suffix byte

// Shorthands for the opcode tables.
constexpr uint32_t M = kM, Ib = kIb, Iz = kIz, X = kNo64, D = kD64, BAD = kBad, L = kLock, S = kSse;
constexpr uint32_t PFX = 0;  // a prefix: consumed before the table is consulted

// Legacy prefix bytes: 1 + their X86Insn meaning (segment number, or one of the kPfx* codes).
constexpr uint8_t kPfxLock = 10, kPfxRepne = 11, kPfxRep = 12, kPfxOpsize = 13, kPfxAddrsize = 14;
constexpr std::array<uint8_t, 256> build_prefix_table() {
  std::array<uint8_t, 256> t{};
  t[0x26] = 1 + 0, t[0x2E] = 1 + 1, t[0x36] = 1 + 2, t[0x3E] = 1 + 3, t[0x64] = 1 + 4, t[0x65] = 1 + 5;
  t[0xF0] = 1 + kPfxLock, t[0xF2] = 1 + kPfxRepne, t[0xF3] = 1 + kPfxRep;
  t[0x66] = 1 + kPfxOpsize, t[0x67] = 1 + kPfxAddrsize;
  return t;
}
constexpr std::array<uint8_t, 256> kPrefix = build_prefix_table();

// One-byte opcode map.
constexpr uint32_t kOneByte[256] = {
    /* 00 */ M | L, M | L, M, M, Ib, Iz, X, X, M | L, M | L, M, M, Ib, Iz, X, 0 /* 0F escape */,
    /* 10 */ M | L, M | L, M, M, Ib, Iz, X, X, M | L, M | L, M, M, Ib, Iz, X, X,
    /* 20 */ M | L, M | L, M, M, Ib, Iz, PFX, X, M | L, M | L, M, M, Ib, Iz, PFX, X,
    /* 30 */ M | L, M | L, M, M, Ib, Iz, PFX, X, M, M, M, M, Ib, Iz, PFX, X,
    /* 40 INC/DEC (REX in 64-bit mode) */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 PUSH/POP */ D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    /* 60 PUSHA POPA BOUND ARPL/MOVSXD, FS GS 66 67, PUSH Iz IMUL PUSH Ib IMUL, INS OUTS */
    X, X, M | kMem | X, M, PFX, PFX, PFX, PFX, Iz | D, M | Iz, Ib | D, M | Ib, 0, 0, 0, 0,
    /* 70 Jcc rel8 */ Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D,
    Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D, Ib | D,
    /* 80 group 1, TEST, XCHG, MOV, MOV Sreg, LEA, POP Ev (or XOP) */
    M | Ib | kGrp, M | Iz | kGrp, M | Ib | kGrp | X, M | Ib | kGrp, M, M, M | L, M | L,
    M, M, M, M, M | kGrp, M | kMem, M | kGrp, M | D | kGrp,
    /* 90 XCHG/NOP, CBW CWD, CALLF Ap, FWAIT, PUSHF POPF SAHF LAHF */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, kFar | X, 0, D, D, 0, 0,
    /* A0 MOV moffs, string ops, TEST Ib/Iz */
    kMoffs, kMoffs, kMoffs, kMoffs, 0, 0, 0, 0, Ib, Iz, 0, 0, 0, 0, 0, 0,
    /* B0 MOV r8, Ib; MOV r, Iv */ Ib, Ib, Ib, Ib, Ib, Ib, Ib, Ib, kIv, kIv, kIv, kIv, kIv, kIv, kIv, kIv,
    /* C0 shifts Ib, RET Iw, RET, LES LDS (or VEX), MOV Eb,Ib / Ev,Iz, ENTER LEAVE RETF INT3 INT INTO IRET */
    M | Ib | kGrp, M | Ib | kGrp, kIw | D, D, M | kMem | X, M | kMem | X, M | Ib | kGrp, M | Iz | kGrp,
    kEnter | D, D, kIw, 0, 0, Ib, X, 0,
    /* D0 shifts, AAM AAD SALC XLAT, x87 */
    M | kGrp, M | kGrp, M | kGrp, M | kGrp, Ib | X, Ib | X, X, 0,
    M | kX87, M | kX87, M | kX87, M | kX87, M | kX87, M | kX87, M | kX87, M | kX87,
    /* E0 LOOPcc JrCXZ, IN OUT Ib, CALL JMP rel, JMPF Ap, JMP rel8, IN OUT DX */
    Ib | D, Ib | D, Ib | D, Ib | D, Ib, Ib, Ib, Ib, Iz | D, Iz | D, kFar | X, Ib | D, 0, 0, 0, 0,
    /* F0 LOCK INT1 REPNE REP HLT CMC, group 3, CLC STC CLI STI CLD STD, group 4, group 5 */
    PFX, 0, PFX, PFX, 0, 0, M | kGrp3 | kGrp, M | kGrp3 | kGrp, 0, 0, 0, 0, 0, 0, M | kGrp, M | kGrp,
};

// Two-byte (0F xx) opcode map. kSse entries take their validity from kSseForms0F.
constexpr uint32_t kTwoByte[256] = {
    /* 00 group 6, group 7, LAR LSL, -, SYSCALL CLTS SYSRET, INVD WBINVD - UD2 - PREFETCH FEMMS 3DNow! */
    M | kGrp, M | kGrp, M, M, BAD, 0, 0, 0, 0, 0, BAD, 0, BAD, M | kMem, 0, M | k3DNow,
    /* 10 SSE moves; 18-1F hint NOPs (prefetch, ENDBR, NOP Ev) */
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | kGrp, M, M, M, M, M, M, M,
    /* 20 MOV CR/DR, (MOV TR: gone), SSE */
    M | kNoEA | kGrp, M | kNoEA | kGrp, M | kNoEA | kGrp, M | kNoEA | kGrp, BAD, BAD, BAD, BAD,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    /* 30 WRMSR RDTSC RDMSR RDPMC SYSENTER SYSEXIT (AMD: not in 64-bit mode), GETSEC (Intel), escapes */
    0, 0, 0, 0, X, X, BAD, BAD, 0 /* 0F 38 */, BAD, 0 /* 0F 3A */, BAD, BAD, BAD, BAD, BAD,
    /* 40 CMOVcc */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    /* 60 */ M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    /* 70 PSHUF Ib, shift groups Ib, PCMPEQ, EMMS, EXTRQ/INSERTQ (AMD SSE4a), -, -, HADD HSUB MOVD MOVQ */
    M | Ib | S, M | Ib | S | kGrp, M | Ib | S | kGrp, M | Ib | S | kGrp, M | S, M | S, M | S, S,
    M | kIbb | S | kGrp, M | S, BAD, BAD, M | S, M | S, M | S, M | S,
    /* 80 Jcc rel16/32 */ Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D,
    Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D, Iz | D,
    /* 90 SETcc */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 PUSH/POP FS, CPUID, BT, SHLD, -, -, PUSH/POP GS, RSM, BTS, SHRD, group 15, IMUL */
    D, D, 0, M, M | Ib, M, BAD, BAD, D, D, 0, M | L, M | Ib, M, M | kGrp, M,
    /* B0 CMPXCHG, LSS, BTR, LFS LGS, MOVZX, POPCNT, UD1, group 8, BTC, BSF/TZCNT BSR/LZCNT, MOVSX */
    M | L, M | L, M | kMem, M | L, M | kMem, M | kMem, M, M, M | S, M, M | Ib | kGrp, M | L, M, M, M, M,
    /* C0 XADD, CMPPS Ib, MOVNTI, PINSRW PEXTRW SHUFPS Ib, group 9, BSWAP */
    M | L, M | L, M | Ib | S, M | kMem, M | Ib | S, M | Ib | S, M | Ib | S, M | kGrp, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    /* E0 */ M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    /* F0 */ M | S, M | S, M | S, M | S, M | S, M | S, M | S, M | S,
    M | S, M | S, M | S, M | S, M | S, M | S, M | S, M /* UD0 */,
};

// Mandatory-prefix columns: for each opcode, what each of {none, 66, F3, F2} makes of it:
// '.' undefined (#UD), 'a' valid, 'm' valid with a memory operand only, 'r' register only.
struct SseForm {
  uint8_t op;
  char cols[5];
};

constexpr SseForm kSseForms0F[] = {
    {0x10, "aaaa"}, {0x11, "aaaa"}, {0x12, "amaa"}, {0x13, "mm.."}, {0x14, "aa.."}, {0x15, "aa.."},
    {0x16, "ama."}, {0x17, "mm.."},
    {0x28, "aa.."}, {0x29, "aa.."}, {0x2A, "aaaa"}, {0x2B, "mmmm"}, {0x2C, "aaaa"}, {0x2D, "aaaa"},
    {0x2E, "aa.."}, {0x2F, "aa.."},
    {0x50, "rr.."}, {0x51, "aaaa"}, {0x52, "a.a."}, {0x53, "a.a."}, {0x54, "aa.."}, {0x55, "aa.."},
    {0x56, "aa.."}, {0x57, "aa.."}, {0x58, "aaaa"}, {0x59, "aaaa"}, {0x5A, "aaaa"}, {0x5B, "aaa."},
    {0x5C, "aaaa"}, {0x5D, "aaaa"}, {0x5E, "aaaa"}, {0x5F, "aaaa"},
    {0x60, "aa.."}, {0x61, "aa.."}, {0x62, "aa.."}, {0x63, "aa.."}, {0x64, "aa.."}, {0x65, "aa.."},
    {0x66, "aa.."}, {0x67, "aa.."}, {0x68, "aa.."}, {0x69, "aa.."}, {0x6A, "aa.."}, {0x6B, "aa.."},
    {0x6C, ".a.."}, {0x6D, ".a.."}, {0x6E, "aa.."}, {0x6F, "aaa."},
    {0x70, "aaaa"}, {0x71, "rr.."}, {0x72, "rr.."}, {0x73, "rr.."}, {0x74, "aa.."}, {0x75, "aa.."},
    {0x76, "aa.."}, {0x77, "a..."}, {0x78, ".r.r"}, {0x79, ".r.r"}, {0x7C, ".a.a"}, {0x7D, ".a.a"},
    {0x7E, "aaa."}, {0x7F, "aaa."},
    {0xB8, "..a."},
    {0xC2, "aaaa"}, {0xC4, "aa.."}, {0xC5, "rr.."}, {0xC6, "aa.."},
    {0xD0, ".a.a"}, {0xD1, "aa.."}, {0xD2, "aa.."}, {0xD3, "aa.."}, {0xD4, "aa.."}, {0xD5, "aa.."},
    {0xD6, ".arr"}, {0xD7, "rr.."}, {0xD8, "aa.."}, {0xD9, "aa.."}, {0xDA, "aa.."}, {0xDB, "aa.."},
    {0xDC, "aa.."}, {0xDD, "aa.."}, {0xDE, "aa.."}, {0xDF, "aa.."},
    {0xE0, "aa.."}, {0xE1, "aa.."}, {0xE2, "aa.."}, {0xE3, "aa.."}, {0xE4, "aa.."}, {0xE5, "aa.."},
    {0xE6, ".aaa"}, {0xE7, "mm.."}, {0xE8, "aa.."}, {0xE9, "aa.."}, {0xEA, "aa.."}, {0xEB, "aa.."},
    {0xEC, "aa.."}, {0xED, "aa.."}, {0xEE, "aa.."}, {0xEF, "aa.."},
    {0xF0, "...m"}, {0xF1, "aa.."}, {0xF2, "aa.."}, {0xF3, "aa.."}, {0xF4, "aa.."}, {0xF5, "aa.."},
    {0xF6, "aa.."}, {0xF7, "rr.."}, {0xF8, "aa.."}, {0xF9, "aa.."}, {0xFA, "aa.."}, {0xFB, "aa.."},
    {0xFC, "aa.."}, {0xFD, "aa.."}, {0xFE, "aa.."},
};

// 0F 38 xx (all have ModRM, no immediate). Undefined opcodes are #UD.
constexpr SseForm kSseForms0F38[] = {
    // SSSE3 (MMX and XMM forms)
    {0x00, "aa.."}, {0x01, "aa.."}, {0x02, "aa.."}, {0x03, "aa.."}, {0x04, "aa.."}, {0x05, "aa.."},
    {0x06, "aa.."}, {0x07, "aa.."}, {0x08, "aa.."}, {0x09, "aa.."}, {0x0A, "aa.."}, {0x0B, "aa.."},
    {0x1C, "aa.."}, {0x1D, "aa.."}, {0x1E, "aa.."},
    // SSE4.1 / SSE4.2
    {0x10, ".a.."}, {0x14, ".a.."}, {0x15, ".a.."}, {0x17, ".a.."},
    {0x20, ".a.."}, {0x21, ".a.."}, {0x22, ".a.."}, {0x23, ".a.."}, {0x24, ".a.."}, {0x25, ".a.."},
    {0x28, ".a.."}, {0x29, ".a.."}, {0x2A, ".m.."}, {0x2B, ".a.."},
    {0x30, ".a.."}, {0x31, ".a.."}, {0x32, ".a.."}, {0x33, ".a.."}, {0x34, ".a.."}, {0x35, ".a.."},
    {0x37, ".a.."}, {0x38, ".a.."}, {0x39, ".a.."}, {0x3A, ".a.."}, {0x3B, ".a.."}, {0x3C, ".a.."},
    {0x3D, ".a.."}, {0x3E, ".a.."}, {0x3F, ".a.."}, {0x40, ".a.."}, {0x41, ".a.."},
    {0x82, ".m.."},  // INVPCID
    // SHA, GFNI, AES-NI
    {0xC8, "a..."}, {0xC9, "a..."}, {0xCA, "a..."}, {0xCB, "a..."}, {0xCC, "a..."}, {0xCD, "a..."},
    {0xCF, ".a.."}, {0xDB, ".a.."}, {0xDC, ".a.."}, {0xDD, ".a.."}, {0xDE, ".a.."}, {0xDF, ".a.."},
    // MOVBE (66 = operand size) / CRC32, WRUSS, WRSS / ADCX / ADOX, MOVDIR64B, MOVDIRI
    {0xF0, "mm.a"}, {0xF1, "mm.a"}, {0xF5, ".m.."}, {0xF6, "maa."}, {0xF8, ".m.."}, {0xF9, "m..."},
};

// 0F 3A xx (all have ModRM and imm8).
constexpr SseForm kSseForms0F3A[] = {
    {0x08, ".a.."}, {0x09, ".a.."}, {0x0A, ".a.."}, {0x0B, ".a.."}, {0x0C, ".a.."}, {0x0D, ".a.."},
    {0x0E, ".a.."}, {0x0F, "aa.."}, {0x14, ".a.."}, {0x15, ".a.."}, {0x16, ".a.."}, {0x17, ".a.."},
    {0x20, ".a.."}, {0x21, ".a.."}, {0x22, ".a.."}, {0x40, ".a.."}, {0x41, ".a.."}, {0x42, ".a.."},
    {0x44, ".a.."}, {0x60, ".a.."}, {0x61, ".a.."}, {0x62, ".a.."}, {0x63, ".a.."},
    {0xCC, "a..."}, {0xCE, ".a.."}, {0xCF, ".a.."}, {0xDF, ".a.."},
};

// Packs a column string into 2 bits per prefix (0 undefined, 1 any, 2 memory only, 3 register only).
constexpr uint8_t pack_cols(const char* c) {
  uint8_t v = 0;
  for (int i = 0; i < 4; i++) {
    uint8_t k = c[i] == 'a' ? 1 : c[i] == 'm' ? 2 : c[i] == 'r' ? 3 : 0;
    v |= static_cast<uint8_t>(k << (2 * i));
  }
  return v;
}

template <size_t N>
constexpr std::array<uint8_t, 256> build_cols(const SseForm (&forms)[N]) {
  std::array<uint8_t, 256> t{};
  for (size_t i = 0; i < N; i++) t[forms[i].op] = pack_cols(forms[i].cols);
  return t;
}

constexpr std::array<uint8_t, 256> kCols0F = build_cols(kSseForms0F);
constexpr std::array<uint8_t, 256> kCols0F38 = build_cols(kSseForms0F38);
constexpr std::array<uint8_t, 256> kCols0F3A = build_cols(kSseForms0F3A);

// VEX.0F (map 1): AVX, and the AVX-512 mask-register instructions (VEX-encoded, Zen 4+), with VEX.pp
// as the mandatory prefix. MMX forms and the non-SSE 0F instructions have no VEX form (#UD).
constexpr SseForm kVexForms0F[] = {
    {0x10, "aaaa"}, {0x11, "aaaa"}, {0x12, "amaa"}, {0x13, "mm.."}, {0x14, "aa.."}, {0x15, "aa.."},
    {0x16, "ama."}, {0x17, "mm.."},
    {0x28, "aa.."}, {0x29, "aa.."}, {0x2A, "..aa"}, {0x2B, "mm.."}, {0x2C, "..aa"}, {0x2D, "..aa"},
    {0x2E, "aa.."}, {0x2F, "aa.."},
    {0x41, "rr.."}, {0x42, "rr.."}, {0x44, "rr.."}, {0x45, "rr.."}, {0x46, "rr.."}, {0x47, "rr.."},
    {0x4A, "rr.."}, {0x4B, "rr.."},
    {0x50, "rr.."}, {0x51, "aaaa"}, {0x52, "a.a."}, {0x53, "a.a."}, {0x54, "aa.."}, {0x55, "aa.."},
    {0x56, "aa.."}, {0x57, "aa.."}, {0x58, "aaaa"}, {0x59, "aaaa"}, {0x5A, "aaaa"}, {0x5B, "aaa."},
    {0x5C, "aaaa"}, {0x5D, "aaaa"}, {0x5E, "aaaa"}, {0x5F, "aaaa"},
    {0x60, ".a.."}, {0x61, ".a.."}, {0x62, ".a.."}, {0x63, ".a.."}, {0x64, ".a.."}, {0x65, ".a.."},
    {0x66, ".a.."}, {0x67, ".a.."}, {0x68, ".a.."}, {0x69, ".a.."}, {0x6A, ".a.."}, {0x6B, ".a.."},
    {0x6C, ".a.."}, {0x6D, ".a.."}, {0x6E, ".a.."}, {0x6F, ".aa."},
    {0x70, ".aaa"}, {0x71, ".r.."}, {0x72, ".r.."}, {0x73, ".r.."}, {0x74, ".a.."}, {0x75, ".a.."},
    {0x76, ".a.."}, {0x77, "a..."}, {0x7C, ".a.a"}, {0x7D, ".a.a"}, {0x7E, ".aa."}, {0x7F, ".aa."},
    {0x90, "aa.."}, {0x91, "mm.."}, {0x92, "rr.r"}, {0x93, "rr.r"}, {0x98, "rr.."}, {0x99, "rr.."},
    {0xAE, "m..."},  // VLDMXCSR /2, VSTMXCSR /3
    {0xC2, "aaaa"}, {0xC4, ".a.."}, {0xC5, ".r.."}, {0xC6, "aa.."},
    {0xD0, ".a.a"}, {0xD1, ".a.."}, {0xD2, ".a.."}, {0xD3, ".a.."}, {0xD4, ".a.."}, {0xD5, ".a.."},
    {0xD6, ".a.."}, {0xD7, ".r.."}, {0xD8, ".a.."}, {0xD9, ".a.."}, {0xDA, ".a.."}, {0xDB, ".a.."},
    {0xDC, ".a.."}, {0xDD, ".a.."}, {0xDE, ".a.."}, {0xDF, ".a.."},
    {0xE0, ".a.."}, {0xE1, ".a.."}, {0xE2, ".a.."}, {0xE3, ".a.."}, {0xE4, ".a.."}, {0xE5, ".a.."},
    {0xE6, ".aaa"}, {0xE7, ".m.."}, {0xE8, ".a.."}, {0xE9, ".a.."}, {0xEA, ".a.."}, {0xEB, ".a.."},
    {0xEC, ".a.."}, {0xED, ".a.."}, {0xEE, ".a.."}, {0xEF, ".a.."},
    {0xF0, "...m"}, {0xF1, ".a.."}, {0xF2, ".a.."}, {0xF3, ".a.."}, {0xF4, ".a.."}, {0xF5, ".a.."},
    {0xF6, ".a.."}, {0xF7, ".r.."}, {0xF8, ".a.."}, {0xF9, ".a.."}, {0xFA, ".a.."}, {0xFB, ".a.."},
    {0xFC, ".a.."}, {0xFD, ".a.."}, {0xFE, ".a.."},
};
constexpr std::array<uint8_t, 256> kColsVex0F = build_cols(kVexForms0F);

// A 256-bit set of opcode bytes.
struct ByteSet {
  uint64_t w[4];
  constexpr bool has(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
};

constexpr ByteSet make_set(std::initializer_list<std::pair<uint8_t, uint8_t>> ranges) {
  ByteSet s{};
  for (auto r : ranges)
    for (int b = r.first; b <= r.second; b++) s.w[b >> 6] |= uint64_t{1} << (b & 63);
  return s;
}

// VEX.0F38 (map 2): AVX/AVX2, F16C, FMA, AES/VAES, GFNI, AVX-VNNI (Zen 5), BMI1/BMI2.
constexpr ByteSet kVexMap2 = make_set({{0x00, 0x0F}, {0x13, 0x13}, {0x16, 0x1A}, {0x1C, 0x1E}, {0x20, 0x25},
                                       {0x28, 0x2F}, {0x30, 0x41}, {0x45, 0x47}, {0x50, 0x53}, {0x58, 0x5A},
                                       {0x78, 0x79}, {0x8C, 0x8C}, {0x8E, 0x8E}, {0x90, 0x93}, {0x96, 0x9F},
                                       {0xA6, 0xAF}, {0xB6, 0xBF}, {0xCF, 0xCF}, {0xDB, 0xDF}, {0xF2, 0xF3},
                                       {0xF5, 0xF7}});
// VEX.0F3A (map 3): AVX/AVX2, F16C, PCLMUL, GFNI, AES, the AVX-512 mask shifts (Zen 4+), RORX, and
// FMA4 (5C-5F, 68-6F, 78-7F), which Zen 1 still executes.
constexpr ByteSet kVexMap3 = make_set({{0x00, 0x02}, {0x04, 0x06}, {0x08, 0x0F}, {0x14, 0x19}, {0x1D, 0x1D},
                                       {0x20, 0x22}, {0x30, 0x33}, {0x38, 0x39}, {0x40, 0x42}, {0x44, 0x44},
                                       {0x46, 0x46}, {0x4A, 0x4C}, {0x5C, 0x5F}, {0x60, 0x63}, {0x68, 0x6F},
                                       {0x78, 0x7F}, {0xCE, 0xCF}, {0xDF, 0xDF}, {0xF0, 0xF0}});
// AMD XOP maps 8 (imm8: VPMACS*, VPCMOV, VPPERM, VPROT* imm, VPCOM*), 9 (TBM, LWP, VFRCZ*, VPROT*,
// VPSH*, VPHADD*/VPHSUB*) and 10 (imm32: BEXTR, LWPINS/LWPVAL).
constexpr ByteSet kXopMap8 = make_set({{0x85, 0x87}, {0x8E, 0x8F}, {0x95, 0x97}, {0x9E, 0x9F}, {0xA2, 0xA3},
                                       {0xA6, 0xA6}, {0xB6, 0xB6}, {0xC0, 0xC3}, {0xCC, 0xCF}, {0xEC, 0xEF}});
constexpr ByteSet kXopMap9 = make_set({{0x01, 0x02}, {0x12, 0x12}, {0x80, 0x83}, {0x90, 0x9B}, {0xC1, 0xC3},
                                       {0xC6, 0xC7}, {0xCB, 0xCB}, {0xD1, 0xD3}, {0xD6, 0xD7}, {0xDB, 0xDB},
                                       {0xE1, 0xE3}});
constexpr ByteSet kXopMap10 = make_set({{0x10, 0x10}, {0x12, 0x12}});

// VEX/EVEX map-1 opcodes with an imm8 (the rest of map 1 has none; map 3 always has one).
constexpr ByteSet kVexMap1Imm = make_set({{0x70, 0x73}, {0xC2, 0xC2}, {0xC4, 0xC6}});

// 3DNow! opcode suffixes (0F 0F ModRM suffix), including the Athlon extensions.
constexpr ByteSet k3DNowOps = make_set({{0x0C, 0x0D}, {0x1C, 0x1D}, {0x8A, 0x8A}, {0x8E, 0x8E},
                                        {0x90, 0x90}, {0x94, 0x94}, {0x96, 0x97}, {0x9A, 0x9A},
                                        {0x9E, 0x9E}, {0xA0, 0xA0}, {0xA4, 0xA4}, {0xA6, 0xA7},
                                        {0xAA, 0xAA}, {0xAE, 0xAE}, {0xB0, 0xB0}, {0xB4, 0xB4},
                                        {0xB6, 0xB7}, {0xBB, 0xBB}, {0xBF, 0xBF}});

// 0F 01 with mod == 3: which ModRM bytes C0..FF are instructions on AMD (bit = modrm - 0xC0).
// C8-CB MONITOR MWAIT CLAC STAC; D0-D1 XGETBV XSETBV; D8-DF SVM (VMRUN VMMCALL VMLOAD VMSAVE
// STGI CLGI SKINIT INVLPGA); E0-E7 SMSW r; E8 SETSSBSY, EA SAVEPREVSSP (F3), EE-EF RDPKRU WRPKRU;
// F0-F7 LMSW r; F8 SWAPGS (64-bit only) RDTSCP MONITORX/MCOMMIT MWAITX CLZERO RDPRU INVLPGB/
// RMPADJUST/RMPUPDATE TLBSYNC/PVALIDATE/PSMASH.
constexpr uint64_t bits(int lo, int hi) {
  uint64_t v = 0;
  for (int i = lo; i <= hi; i++) v |= uint64_t{1} << (i - 0xC0);
  return v;
}
constexpr uint64_t k0F01Reg = bits(0xC8, 0xCB) | bits(0xD0, 0xD1) | bits(0xD8, 0xDF) | bits(0xE0, 0xE8) |
                              bits(0xEA, 0xEA) | bits(0xEE, 0xFF);

// x87 (D8-DF): memory forms by ModRM.reg, register forms by ModRM & 0x3F. The register forms
// include the aliases the x87 decoders have always executed (FSTP1, FCOM2, FXCH4, FFREEP, ...).
struct X87Rule {
  uint8_t mem;   // bit r: /r with a memory operand is valid
  uint64_t reg;  // bit (modrm - 0xC0): the register form is valid
};
constexpr X87Rule kX87Rules[8] = {
    /* D8 */ {0xFF, ~uint64_t{0}},
    /* D9: no /1 mem; FLD FXCH FNOP FSTP1, FCHS FABS FTST FXAM, FLD1..FLDZ, F2XM1..FCOS */
    {0xFD, bits(0xC0, 0xD0) | bits(0xD8, 0xE1) | bits(0xE4, 0xE5) | bits(0xE8, 0xEE) | bits(0xF0, 0xFF)},
    /* DA: FCMOVcc, FUCOMPP */ {0xFF, bits(0xC0, 0xDF) | bits(0xE9, 0xE9)},
    /* DB: no /4 /6 mem; FCMOVNcc, FNENI FNDISI FNCLEX FNINIT FNSETPM, FUCOMI FCOMI */
    {0xAF, bits(0xC0, 0xDF) | bits(0xE0, 0xE4) | bits(0xE8, 0xF7)},
    /* DC */ {0xFF, ~uint64_t{0}},
    /* DD: no /5 mem; FFREE FXCH4 FST FSTP FUCOM FUCOMP */ {0xDF, bits(0xC0, 0xEF)},
    /* DE: FADDP FMULP FCOMP5, FCOMPP, FSUBRP FSUBP FDIVRP FDIVP */
    {0xFF, bits(0xC0, 0xD7) | bits(0xD9, 0xD9) | bits(0xE0, 0xFF)},
    /* DF: FFREEP FXCH7 FSTP8 FSTP9, FNSTSW AX, FUCOMIP FCOMIP */
    {0xFF, bits(0xC0, 0xE0) | bits(0xE8, 0xF7)},
};

// Validity of a group opcode by ModRM.reg: which /r are valid with memory and with a register
// operand, and which accept LOCK (memory forms only).
struct GroupRule {
  uint8_t mem, reg, lock;
};
constexpr uint8_t R(int lo, int hi) {
  uint8_t v = 0;
  for (int i = lo; i <= hi; i++) v |= static_cast<uint8_t>(1u << i);
  return v;
}

GroupRule group_rule(int map, uint8_t op) {
  if (map == 0) {
    switch (op) {
      case 0x80: case 0x81: case 0x82: case 0x83: return {0xFF, 0xFF, R(0, 6)};  // CMP (/7) not lockable
      case 0x8C: return {R(0, 5), R(0, 5), 0};                                // MOV Ev, Sreg: ES..GS
      case 0x8E: return {R(0, 5) & ~R(1, 1), R(0, 5) & ~R(1, 1), 0};          // MOV Sreg, Ew: not CS
      case 0x8F: return {R(0, 0), R(0, 0), 0};                                // POP Ev (others: XOP)
      case 0xC0: case 0xC1: case 0xD0: case 0xD1: case 0xD2: case 0xD3:
        return {0xFF, 0xFF, 0};  // /6 is the SHL alias
      case 0xC6: case 0xC7: return {R(0, 0), R(0, 0), 0};  // MOV; XABORT/XBEGIN (/7) are Intel RTM
      case 0xF6: case 0xF7: return {0xFF, 0xFF, R(2, 3)};  // /1 is the TEST alias; NOT NEG lockable
      case 0xFE: return {R(0, 1), R(0, 1), R(0, 1)};
      case 0xFF: return {R(0, 6), R(0, 6) & ~R(3, 3) & ~R(5, 5), R(0, 1)};  // far CALL/JMP: memory
    }
  } else {
    switch (op) {
      case 0x00: return {R(0, 5), R(0, 5), 0};             // SLDT STR LLDT LTR VERR VERW
      case 0x18: return {0xFF, R(4, 7), 0};                // PREFETCHh need memory; /4-/7 hint NOPs
      case 0xBA: return {R(4, 7), R(4, 7), R(5, 7)};       // BT BTS BTR BTC Ib
      // Group 9: CMPXCHG8B/16B XRSTORS XSAVEC XSAVES; registers: RDRAND RDSEED/RDPID.
      case 0xC7: return {R(1, 1) | R(3, 5), R(6, 7), R(1, 1)};
    }
  }
  return {0xFF, 0xFF, 0};
}

inline uint64_t read_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Whether column `col` of a packed column byte allows the given operand kind.
inline bool col_ok(uint8_t cols, int col, bool reg_form) {
  switch ((cols >> (2 * col)) & 3) {
    case 1: return true;
    case 2: return !reg_form;
    case 3: return reg_form;
    default: return false;
  }
}

// Group 15 (0F AE) for one mandatory-prefix column (0 none, 1 66, 2 F3, 3 F2). Memory forms:
// FXSAVE FXRSTOR LDMXCSR STMXCSR (prefix ignored), XSAVE XRSTOR, XSAVEOPT / 66 CLWB / F3 CLRSSBSY,
// CLFLUSH / 66 CLFLUSHOPT. Register forms: F3 RDFSBASE RDGSBASE WRFSBASE WRGSBASE (64-bit mode),
// LFENCE (F3: INCSSP) MFENCE SFENCE.
bool group15_ok(int col, int reg, bool reg_form, bool m64) {
  if (reg_form) return reg <= 3 ? col == 2 && m64 : reg >= 5;
  switch (reg) {
    case 4: case 5: return col == 0;
    case 6: return col != 3;
    case 7: return col <= 1;
    default: return true;
  }
}

// Shift-by-immediate groups 0F 71-73 (MMX, and XMM with 66 or VEX.66): words and dwords /2 /4 /6,
// qwords /2 /6, and with 66 also the byte shifts of the whole register /3 /7.
bool shift_group_ok(uint8_t op, int reg, bool xmm) {
  if (op == 0x73) return reg == 2 || reg == 6 || (xmm && (reg == 3 || reg == 7));
  return reg == 2 || reg == 4 || reg == 6;
}

}  // namespace

bool decode_x86(const uint8_t* code, size_t avail, CodeMode mode, X86Insn* out) {
  X86Insn& d = *out;  // filled in place: on failure its content is unspecified
  d = X86Insn{};
  const bool m64 = mode == CodeMode::k64;
  const size_t limit = avail < 15 ? avail : 15;
  size_t i = 0;
  bool f2 = false, f3 = false, rex_seen = false;

  // Legacy prefixes in any order and number, and REX. A REX that is not the last byte before the
  // opcode is ignored (as on hardware and in QEMU).
  for (;; i++) {
    if (i >= limit) return false;
    const uint8_t b = code[i];
    if (const uint8_t p = kPrefix[b]) {
      switch (p - 1) {
        case kPfxLock: d.lock = true; break;
        case kPfxRepne: d.rep = b; f2 = true; break;
        case kPfxRep: d.rep = b; f3 = true; break;
        case kPfxOpsize: d.opsize = true; break;
        case kPfxAddrsize: d.addrsize = true; break;
        default: d.segment = static_cast<int8_t>(p - 1); break;
      }
      d.rex = 0;
    } else if (m64 && (b & 0xF0) == 0x40) {
      d.rex = b;
      rex_seen = true;
    } else {
      break;
    }
  }

  const bool rex_w = (d.rex & 8) != 0;
  d.address_size = m64 ? (d.addrsize ? 4 : 8) : (mode == CodeMode::k32) != d.addrsize ? 4 : 2;
  // The mandatory-prefix column (0 none, 1 66, 2 F3, 3 F2) as the hardware reads it (the last of
  // F2/F3, else 66) and as QEMU reads it (66, then F3, then F2). Either one defining the
  // instruction makes it valid, so that nothing QEMU runs is called invalid. VEX: its pp field.
  int col_hw = d.rep == 0xF3 ? 2 : d.rep == 0xF2 ? 3 : d.opsize ? 1 : 0;
  int col_qemu = d.opsize ? 1 : f3 ? 2 : f2 ? 3 : 0;
  uint8_t b = code[i++];
  uint32_t attr = 0;
  uint8_t cols = 0;  // mandatory-prefix columns, for kSse opcodes
  bool vex_w = false;

  if (b == 0x0F) {
    if (i >= limit) return false;
    b = code[i++];
    if (b == 0x38 || b == 0x3A) {
      if (i >= limit) return false;
      d.map = b == 0x38 ? 2 : 3;
      b = code[i++];
      cols = (d.map == 2 ? kCols0F38 : kCols0F3A)[b];
      if (!cols) return false;
      attr = M | S | (d.map == 3 ? Ib : 0);
    } else {
      d.map = 1;
      attr = kTwoByte[b];
      cols = kCols0F[b];
    }
  } else if ((b == 0xC4 || b == 0xC5 || b == 0x62) && (m64 || (i < limit && (code[i] & 0xC0) == 0xC0))) {
    // VEX (C4 3-byte, C5 2-byte) and EVEX (62). Outside 64-bit mode these bytes are LES/LDS/BOUND
    // unless the next byte has mod == 11, which those cannot have. No 66/F2/F3/LOCK/REX may precede.
    if (d.opsize || f2 || f3 || d.lock || rex_seen) return false;
    const size_t payload = b == 0xC5 ? 1 : b == 0xC4 ? 2 : 3;
    if (i + payload >= limit) return false;  // the payload and the opcode byte
    const uint8_t p0 = code[i], p1 = code[i + 1];
    if (b == 0xC5) {
      d.vex = 2;
      d.map = 1;
      col_hw = p0 & 3;
    } else if (b == 0xC4) {
      d.vex = 3;
      d.map = p0 & 0x1F;
      vex_w = (p1 & 0x80) != 0;
      col_hw = p1 & 3;
      if (d.map < 1 || d.map > 3) return false;
    } else {
      d.vex = 4;
      d.map = p0 & 7;
      vex_w = (p1 & 0x80) != 0;
      col_hw = p1 & 3;
      // P0 bit 3 is reserved (0), P1 bit 2 is fixed (1); maps 1-3 (Zen has no AVX512-FP16 maps 5/6).
      if ((p0 & 8) || !(p1 & 4) || d.map < 1 || d.map > 3) return false;
    }
    col_qemu = col_hw;
    i += payload;
    b = code[i++];
    if (d.map == 1) {
      // VZEROUPPER/VZEROALL (VEX.0F 77) is the one without ModRM; EVEX has no such instruction.
      if (b == 0x77 && d.vex == 4) return false;
      attr = (b == 0x77 ? 0 : M) | (kVexMap1Imm.has(b) ? Ib : 0);
      if (d.vex != 4) {
        cols = kColsVex0F[b];
        if (!cols) return false;
        attr |= S | (b == 0xAE || (b >= 0x71 && b <= 0x73) ? kGrp : 0);
      }
    } else {
      // VEX maps 2 and 3 are checked against their opcode lists; EVEX opcodes are not checked.
      if (d.vex != 4 && !(d.map == 2 ? kVexMap2 : kVexMap3).has(b)) return false;
      attr = M | (d.map == 3 ? Ib : 0);
    }
  } else if (b == 0x8F && i < limit && (code[i] & 0x38) != 0) {
    // AMD XOP: 8F with ModRM.reg != 0 (POP Ev is /0); the map-select field is 8, 9 or 10.
    if (d.opsize || f2 || f3 || d.lock || rex_seen) return false;
    if (i + 2 >= limit) return false;
    d.vex = 3;
    d.map = code[i] & 0x1F;
    vex_w = (code[i + 1] & 0x80) != 0;
    if (d.map < 8 || d.map > 10 || (code[i + 1] & 3) != 0) return false;  // XOP.pp must be 0
    i += 2;
    b = code[i++];
    if (!(d.map == 8 ? kXopMap8 : d.map == 9 ? kXopMap9 : kXopMap10).has(b)) return false;
    // Map 8 has imm8; map 10 (BEXTR, LWPINS/LWPVAL) has imm32.
    attr = M | (d.map == 8 ? Ib : 0) | (d.map == 10 ? Iz : 0);
  } else {
    attr = kOneByte[b];
  }
  d.opcode = b;

  if (attr & kBad) return false;
  if ((attr & kNo64) && m64) return false;
  if (d.vex) {
    d.operand_size = m64 && vex_w ? 8 : 4;
  } else if (m64) {
    d.operand_size = rex_w ? 8 : (attr & kD64) ? (d.opsize ? 2 : 8) : (d.opsize ? 2 : 4);
  } else {
    d.operand_size = (mode == CodeMode::k32) != d.opsize ? 4 : 2;
  }

  // ModRM, SIB and displacement.
  bool reg_form = true;
  if (attr & kM) {
    if (i >= limit) return false;
    d.has_modrm = true;
    d.modrm = code[i++];
    const int mod = d.modrm >> 6, rm = d.modrm & 7;
    reg_form = mod == 3 || (attr & kNoEA);
    size_t disp = 0;
    if (reg_form) {
      // a register operand (or MOV CR/DR): nothing follows
    } else if (d.address_size == 2) {
      disp = mod == 1 ? 1 : mod == 2 || rm == 6 ? 2 : 0;
    } else {
      int base = rm;
      if (rm == 4) {
        if (i >= limit) return false;
        base = code[i++] & 7;  // SIB
      }
      disp = mod == 1 ? 1 : mod == 2 || base == 5 ? 4 : 0;  // mod 00 + rm/base 101: disp32 (RIP-relative)
    }
    i += disp;
    if (i > limit) return false;
  }
  const int reg = (d.modrm >> 3) & 7;

  // Immediates.
  int imm = 0;
  const int z = d.operand_size == 2 ? 2 : 4;
  if (attr & kIb) imm = 1;
  if (attr & kIw) imm = 2;
  if (attr & kIz) imm = z;
  if (attr & kIv) imm = d.operand_size;
  if (attr & kMoffs) imm = d.address_size;
  if (attr & kFar) imm = z + 2;
  if (attr & kEnter) imm = 3;
  if (attr & kIbb) imm = 2;
  if (attr & k3DNow) imm = 1;
  if ((attr & kGrp3) && reg < 2) imm = b == 0xF6 ? 1 : z;
  if (i + imm > limit) return false;
  d.imm_size = static_cast<uint8_t>(imm);
  d.imm = read_le(code + i, imm);
  i += imm;
  d.length = static_cast<uint8_t>(i);

  // Validity.
  if ((attr & kMem) && reg_form) return false;
  if (attr & kX87) {
    const X87Rule& r = kX87Rules[b - 0xD8];
    if (reg_form ? !((r.reg >> (d.modrm - 0xC0)) & 1) : !((r.mem >> reg) & 1)) return false;
  }
  if ((attr & k3DNow) && !k3DNowOps.has(static_cast<uint8_t>(d.imm))) return false;
  if ((attr & kSse) && !col_ok(cols, col_hw, reg_form) && !col_ok(cols, col_qemu, reg_form)) return false;
  bool lock_ok = (attr & kLock) && !reg_form;
  if (attr & kGrp) {
    if (d.map == 1 && b >= 0x20 && b <= 0x23) {
      // MOV CR/DR: CR0 CR2 CR3 CR4 CR8, DR0-DR7. LOCK MOV CR0 is AMD's alternative encoding of CR8.
      const int n = reg | ((d.rex & 4) << 1) | (d.lock && !(b & 1) ? 8 : 0);
      if (b & 1 ? n > 7 : !(n == 0 || n == 2 || n == 3 || n == 4 || n == 8)) return false;
      if (d.lock && (b & 1 || reg != 0 || (d.rex & 4))) return false;
      lock_ok = true;
      d.operand_size = m64 ? 8 : 4;
    } else if (d.map == 1 && b == 0x01) {
      // Group 7: memory forms SGDT SIDT LGDT LIDT SMSW (F3 /5: RSTORSSP) LMSW INVLPG; register
      // forms by the whole ModRM byte (k0F01Reg).
      if (reg_form ? !((k0F01Reg >> (d.modrm - 0xC0)) & 1) || (d.modrm == 0xF8 && !m64)
                   : reg == 5 && d.rep != 0xF3)
        return false;
      if ((d.modrm == 0xD0 || d.modrm == 0xD1) && (d.opsize || d.rep)) return false;  // XGETBV XSETBV
    } else if (d.map == 1 && b == 0xAE) {
      if (d.vex ? reg_form || (reg != 2 && reg != 3)
                : !group15_ok(col_hw, reg, reg_form, m64) && !group15_ok(col_qemu, reg, reg_form, m64))
        return false;
    } else if (d.map == 1 && b >= 0x71 && b <= 0x73) {
      if (!shift_group_ok(b, reg, col_hw == 1) && !shift_group_ok(b, reg, col_qemu == 1)) return false;
    } else if (d.map == 1 && b == 0x78) {
      // 66: EXTRQ xmm, imm8, imm8 is /0; F2: INSERTQ xmm, xmm, imm8, imm8.
      auto ok = [&](int col) { return col == 3 || (col == 1 && reg == 0); };
      if (!ok(col_hw) && !ok(col_qemu)) return false;
    } else {
      const GroupRule g = group_rule(d.map, b);
      if (!(((reg_form ? g.reg : g.mem) >> reg) & 1)) return false;
      lock_ok = !reg_form && ((g.lock >> reg) & 1);
      if (d.map == 0 && b == 0xFF && (reg == 2 || reg == 4 || reg == 6) && m64 && !rex_w)
        d.operand_size = d.opsize ? 2 : 8;  // near CALL/JMP and PUSH default to 64 bits
      // Group 9 registers: RDRAND (/6) and RDSEED (/7) take no F2/F3; F3 /7 is RDPID.
      auto rd_ok = [&](int col) { return col <= 1 || (col == 2 && reg == 7); };
      if (d.map == 1 && b == 0xC7 && reg_form && !rd_ok(col_hw) && !rd_ok(col_qemu)) return false;
    }
  }
  return !d.lock || lock_ok;
}

}  // namespace sevemu::softkvm
