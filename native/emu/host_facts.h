// Emulated host facts for `sev ok`-style probes: CPUID 0x8000001F and the kvm_amd module
// parameters sev / sev_es / sev_snp, per the emulated generation.
#pragma once

#include <cstdint>

namespace sevemu {

// Contents of /sys/module/kvm_amd/parameters/<name> when `path` is one of the emulated
// parameter files ("Y\n" or "N\n", as the kernel prints a bool param); else null.
const char* kvm_param_contents(const char* path);

}  // namespace sevemu

extern "C" {
// Returns 1 and the emulated registers (EAX, EBX, ECX, EDX) for leaf 0x8000001F, else 0.
__attribute__((visibility("default"))) int sevemu_cpuid(uint32_t leaf, uint32_t subleaf,
                                                        uint32_t out[4]);
// The emulated generation ("milan", ...).
__attribute__((visibility("default"))) const char* sevemu_generation(void);
}
