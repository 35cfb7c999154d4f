// x86 instruction-length and opcode decoder for the software KVM: finds instruction boundaries
// in guest code and names each instruction's opcode (map + byte), so that a translated block can
// be scanned for instructions the VMM must intercept (IN/OUT/INS/OUTS, RDMSR/WRMSR, CPUID, HLT,
// VMMCALL, ...) before Unicorn runs it. Lengths agree with Unicorn (QEMU 5.0 TCG) for every
// encoding Unicorn accepts; validity follows AMD EPYC (Zen 1-5) hardware. Written from the
// Intel SDM / AMD APM opcode maps; see x86_decode.cc for the rules and known differences.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sevemu::softkvm {

// The default operand/address size of the code being decoded: CS.L=1 → k64, else CS.D=1 → k32, else k16.
enum class CodeMode : uint8_t { k16, k32, k64 };

struct X86Insn {
  uint8_t length = 0;        // total bytes, 1..15
  uint8_t rex = 0;           // the REX byte (0x40..0x4F) when one applies (64-bit mode, immediately before the opcode), else 0
  bool opsize = false;       // 0x66 seen
  bool addrsize = false;     // 0x67 seen
  bool lock = false;         // 0xF0 seen
  uint8_t rep = 0;           // the last of 0xF3 / 0xF2 seen, else 0
  int8_t segment = -1;       // last segment override: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS; -1 none
  uint8_t vex = 0;           // 0 legacy; 2 = VEX2 (C5), 3 = VEX3 (C4) or XOP (8F, map 8..10), 4 = EVEX (62)
  uint8_t map = 0;           // 0 one-byte; 1 = 0F xx; 2 = 0F 38 xx; 3 = 0F 3A xx (VEX/EVEX: their mmmmm map; XOP: 8, 9, 10)
  uint8_t opcode = 0;        // the opcode byte within its map (3DNow! 0F 0F: 0x0F, its suffix byte is `imm`)
  bool has_modrm = false;
  uint8_t modrm = 0;
  uint8_t operand_size = 0;  // effective operand size in bytes for the non-byte forms: 2, 4 or 8
  uint8_t address_size = 0;  // effective address size in bytes: 2, 4 or 8
  uint8_t imm_size = 0;      // bytes of immediate (0 if none); for ENTER the 3 bytes together
  uint64_t imm = 0;          // the immediate, zero-extended as encoded (little-endian)
};

// Decodes the instruction at `code`, of which `avail` bytes are readable (may be < 15 at the end
// of a buffer). Returns false when the bytes are not a complete instruction within 15 bytes and
// `avail` (truncated, too long), or the opcode is one that is invalid (#UD) in this mode — e.g.
// 0x06/0x07/0x27/0x37/0x60/0x61/0xD4/0xD5/0xCE/0x9A/0xEA/0xC4/0xC5-as-LES/LDS... in 64-bit mode
// where applicable; then `out` is unspecified. Otherwise fills `out` and returns true.
bool decode_x86(const uint8_t* code, size_t avail, CodeMode mode, X86Insn* out);

}  // namespace sevemu::softkvm
