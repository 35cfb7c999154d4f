#include "generation.h"

namespace sevemu {
namespace {

// TCB_VERSION for Milan/Genoa: byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode.
// Turin moves fields (byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode).
constexpr uint64_t tcb(uint64_t b0, uint64_t b1, uint64_t b2, uint64_t b3, uint64_t b6,
                       uint64_t b7) {
  return b0 | b1 << 8 | b2 << 16 | b3 << 24 | b6 << 48 | b7 << 56;
}

// CPUID 0x8000001F: EAX bit 0 SME, 1 SEV, 2 page-flush MSR, 3 SEV-ES, 4 SNP, ...;
// EBX[5:0] C-bit position, [11:6] physical address bit reduction, [15:12] number of VMPLs;
// ECX number of encrypted guests (ASIDs); EDX minimum ASID of an SEV guest without ES.
//  - Rome and Milan values are real dumps (Rome eax=0x0001000f ebx=0x16f ecx=0x1fd;
//    Milan eax=0x0101fd3f ebx=0x4173 ecx=0x1fd). EDX is a BIOS setting ("SEV-ES ASID space
//    limit"): 1 leaves no ASID for SEV-ES and the kernel disables it, so every ES-capable
//    generation here is configured as an ES host would be, with 0x80 (seen on Milan).
//  - Naples has no SEV-ES: every ASID from 1 is an SEV ASID.
//  - Naples (C-bit 47, reduction 5, 15 ASIDs) and Genoa/Turin (1006 ASIDs) are from
//    public descriptions, not from dumps.
const Generation kGenerations[] = {
    {"naples", false, false, 0, 17, 48, 2048, {0x00000007, 0x0000016f, 15, 1}, 0},
    {"rome", true, false, 0, 24, 15, 4096, {0x0001000f, 0x0000016f, 0x1fd, 0x80}, 0},
    {"milan", true, true, 1, 55, 21, 4096, {0x0101fd3f, 0x00004173, 0x1fd, 0x80},
     tcb(3, 0, 0, 0, 22, 213)},
    {"genoa", true, true, 1, 55, 38, 4096, {0x0101fdff, 0x00004173, 0x3ee, 0x80},
     tcb(7, 0, 0, 0, 21, 84)},
    {"turin", true, true, 1, 57, 8, 4096, {0x0101fdff, 0x00004173, 0x3ee, 0x80},
     tcb(0, 1, 1, 3, 0, 72)},
};

}  // namespace

const Generation* find_generation(const std::string& name) {
  for (const auto& g : kGenerations)
    if (name == g.name) return &g;
  return nullptr;
}

const Generation& default_generation() { return kGenerations[2]; }

}  // namespace sevemu
