// The emulator's KVM side, as seen by the rest of native/emu: /dev/kvm opens are handed
// here (devices.cc), and the firmware facts KVM derives from CPUID 0x8000001F.
#pragma once

#include <cstdint>

namespace sevemu {

// The kvm_amd facts sev_hardware_setup derives from CPUID 0x8000001F (emulated per
// generation by sevemu_cpuid) and the emulated generation.
struct KvmSevFacts {
  bool sev = false;           // max_sev_asid != 0
  bool es = false;            // generation has SEV-ES and min_sev_asid > 1
  uint32_t min_sev_asid = 0;  // EDX: SEV-ES guests use 1 .. min - 1
  uint32_t max_sev_asid = 0;  // ECX
  uint64_t vmsa_features = 0;  // sev_supported_vmsa_features (DEBUG_SWAP)
  // sev_snp_supported: the CPU has SNP and the host enabled it (CPUID 0x8000001F EAX[4]). Only
  // the software KVM creates SNP VMs (the host path forwards to a KVM that cannot run them).
  bool snp = false;
};
// snp_supported_policy_bits: SNP_POLICY_MASK_BASE within KVM's valid mask (the firmware's
// optional policy features are not offered).
constexpr uint64_t kSnpSupportedPolicyBits = 0xFFFFull | 1ull << 16 | 1ull << 17 | 1ull << 19 | 1ull << 20;
const KvmSevFacts& kvm_sev_facts();

// KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR (`req`) on /dev/kvm for group KVM_X86_GRP_SEV
// (sev_dev_get_attr): 0, -ENXIO for an unknown attribute, -EFAULT when `addr` is not writable.
// `snp_vms`: this KVM creates SNP VMs (the SNP attributes are 0 otherwise).
long sev_dev_attr(unsigned long req, uint64_t attr, uint64_t addr, bool snp_vms);

// Opens the real /dev/kvm and registers it as an emulated KVM system fd. Returns the fd
// or -1 with errno set, like open(2).
int open_kvm_device(const char* path, int flags, unsigned mode);

// Name of a KVM_SEV_* sub-command without the prefix ("LAUNCH_START"), null if unknown;
// and the inverse. For traces and SEV_EMU_FAULT rules.
const char* kvm_sev_command_name(uint32_t id);
bool kvm_sev_command_from_name(const char* name, uint32_t& id);

}  // namespace sevemu
