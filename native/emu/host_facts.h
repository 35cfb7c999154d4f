// Emulated host facts for `sev ok`-style probes, per the emulated generation: the CPU (CPUID,
// /proc/cpuinfo: the generation's EPYC, cpu_model.cc) and the kvm_amd module parameters
// sev / sev_es / sev_snp.
#pragma once

#include <cstdint>

namespace sevemu {

// Contents of /sys/module/kvm_amd/parameters/<name> when `path` is one of the emulated
// parameter files ("Y\n" or "N\n", as the kernel prints a bool param); else null.
const char* kvm_param_contents(const char* path);

// Contents of /proc/cpuinfo when `path` is "/proc/cpuinfo": the emulated EPYC's, one block per
// online CPU of the real machine (built once per process); else null.
const char* cpuinfo_contents(const char* path);

// The host enabled SEV-SNP (the state directory's machine: `sev-emu run --host-snp`).
bool host_snp_enabled();

}  // namespace sevemu

extern "C" {
// The emulated CPU's CPUID (EAX, EBX, ECX, EDX) for any leaf and sub-leaf; always returns 1.
// Out-of-range leaves read as zeros, as on AMD hardware (cpu_model.h).
__attribute__((visibility("default"))) int sevemu_cpuid(uint32_t leaf, uint32_t subleaf,
                                                        uint32_t out[4]);
// The emulated generation ("milan", ...).
__attribute__((visibility("default"))) const char* sevemu_generation(void);
}
