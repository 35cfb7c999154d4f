// The emulated CPU: the CPUID and /proc/cpuinfo of a real EPYC of the emulated generation
// (Naples, Rome, Milan, Genoa, Turin), whatever CPU the emulator really runs on. Leaf
// 0x8000001F is Generation::cpuid_8000001f (generation.cc stays its single source).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generation.h"

namespace sevemu {

// KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic, as in linux/kvm.h): the leaf has sub-leaves (ECX).
constexpr uint32_t kCpuidFlagSignificantIndex = 1;

// One CPUID leaf in the shape of struct kvm_cpuid_entry2.
struct CpuidLeaf {
  uint32_t function, index, flags, eax, ebx, ecx, edx;
};

// Every non-zero leaf of the generation's CPU, sorted by (function, index). Values are those
// logical CPU 0 reports (APIC IDs 0).
const std::vector<CpuidLeaf>& cpuid_leaves(const Generation& g);

// CPUID as the emulated CPU executes it. Out-of-range leaves (above CPUID 0's EAX for the
// basic range, above CPUID 0x80000000's EAX for 0x80000000 and up) return false with all
// four registers 0: AMD answers zeros there (Intel instead repeats its highest basic leaf;
// KVM's get_out_of_range_cpuid_entry makes the same distinction). In-range leaves the table
// lacks (reserved ones, unused sub-leaves) return true with zeros, as the hardware does,
// except CPUID 0xB, which echoes the sub-leaf in ECX[7:0] (level type 0 = invalid).
bool cpu_model_cpuid(const Generation& g, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

// /proc/cpuinfo as a recent Linux kernel (~6.12) prints it on this CPU for an SEV host booted
// with memory encryption active (mem_encrypt=on): `ncpus` processor blocks, flags derived from
// the CPUID table with the kernel's names and rules (sme because memory encryption is
// active; sev/sev_es from CPUID 0x8000001F; sev_snp when the generation has SNP and the host
// enabled it, `host_snp`),
// physical address bits reduced by CPUID 0x8000001F EBX[11:6].
std::string cpuinfo_text(const Generation& g, bool host_snp, unsigned ncpus);

}  // namespace sevemu
