// /dev/kvm (kvm_dev_ioctl, kvm_arch_dev_ioctl): SEV VM types on KVM_CREATE_VM and
// KVM_CAP_VM_TYPES, the SEV device attribute; everything else goes to the real /dev/kvm.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/kvm.h>

#include "common.h"
#include "generation.h"
#include "host_facts.h"
#include "kvm_backend.h"
#include "kvm_emu.h"
#include "kvm_vm.h"
#include "real_libc.h"
#include "uapi/kvm_sev.h"
#include "user_mem.h"

namespace sevemu {

const KvmSevFacts& kvm_sev_facts() {
  static const KvmSevFacts facts = [] {
    KvmSevFacts f;
    uint32_t r[4] = {};
    if (!sevemu_cpuid(0x8000001F, 0, r)) return f;
    const Generation* gen = find_generation(sevemu_generation());
    f.max_sev_asid = r[2];
    f.min_sev_asid = r[3];
    f.sev = f.max_sev_asid != 0;
    // sev_hardware_setup: "Has the system been allocated ASIDs for SEV-ES?"
    f.es = f.sev && gen && gen->es && (r[0] & (1u << 3)) && f.min_sev_asid > 1;
    // DebugSwap is CPUID 0x8000001F EAX[14] (NO_NESTED_DATA_BP is present on all of these).
    if (f.es && (r[0] & (1u << 14))) f.vmsa_features |= 1u << 5;  // SVM_SEV_FEAT_DEBUG_SWAP
    f.snp = f.es && gen && gen->snp && (r[0] & (1u << 4)) && host_snp_enabled() && soft_kvm_answers();
    return f;
  }();
  return facts;
}

// sev_dev_get_attr, through kvm_x86_dev_get_attr (the value stored at `addr`) or
// kvm_x86_dev_has_attr (nothing stored).
long sev_dev_attr(unsigned long req, uint64_t attr, uint64_t addr, bool snp_vms) {
  uint64_t val;
  switch (attr) {
    case uapi::KVM_X86_SEV_VMSA_FEATURES:
      val = kvm_sev_facts().vmsa_features;
      break;
    // snp_supported_policy_bits and sev_snp_enabled: set only where SNP VMs can be created.
    case uapi::KVM_X86_SNP_POLICY_BITS:
      val = snp_vms ? kSnpSupportedPolicyBits : 0;
      break;
    case uapi::KVM_X86_SEV_SNP_REQ_CERTS:
      val = snp_vms ? 1 : 0;
      break;
    default:
      return -ENXIO;
  }
  if (req == KVM_HAS_DEVICE_ATTR) return 0;
  return copy_to_user(addr, &val, sizeof val) ? -EFAULT : 0;
}

int open_kvm_device(const char* path, int flags, unsigned mode) {
  int fd = real::open(path, flags, mode);
  if (fd >= 0) fd_table::insert(fd, std::make_shared<KvmSystem>());
  return fd;
}

long forward_ioctl(int fd, unsigned long req, unsigned long arg) {
  int r = real::ioctl(fd, req, reinterpret_cast<void*>(arg));
  return r < 0 ? -errno : r;
}

// kvm_caps.supported_vm_types |= BIT(KVM_X86_SEV_VM) / BIT(KVM_X86_SEV_ES_VM) (sev_set_cpu_caps).
long check_vm_types(int fd, unsigned long req, unsigned long arg) {
  long r = forward_ioctl(fd, req, arg);
  if (r < 0) return r;
  const KvmSevFacts& f = kvm_sev_facts();
  // A real SNP host's KVM offers SNP VMs; on this path the emulated host does not (the real KVM
  // behind it cannot run them: SNP VMs are the software KVM's), so never let that type through
  // to a real KVM that would bypass the emulated firmware.
  r &= ~(1L << uapi::KVM_X86_SNP_VM);
  r |= 1L << uapi::KVM_X86_DEFAULT_VM;
  if (f.sev) r |= 1L << uapi::KVM_X86_SEV_VM;
  if (f.es) r |= 1L << uapi::KVM_X86_SEV_ES_VM;
  return r;
}

namespace {

long create_vm(int fd, unsigned long type) {
  const KvmSevFacts& f = kvm_sev_facts();
  bool sev_type = type == uapi::KVM_X86_SEV_VM || type == uapi::KVM_X86_SEV_ES_VM;
  if (sev_type && !(type == uapi::KVM_X86_SEV_VM ? f.sev : f.es))
    return -EINVAL;  // kvm_is_vm_type_supported
  if (type == uapi::KVM_X86_SNP_VM) return -EINVAL;  // not offered (check_vm_types)
  if (!sev_type && type != uapi::KVM_X86_DEFAULT_VM) return forward_ioctl(fd, KVM_CREATE_VM, type);
  // The real VM is a default one; the emulated kernel remembers what was asked for.
  long vmfd = forward_ioctl(fd, KVM_CREATE_VM, uapi::KVM_X86_DEFAULT_VM);
  if (vmfd >= 0)
    fd_table::insert(int(vmfd), std::make_shared<KvmVm>(std::make_shared<VmState>(uint32_t(type), false)));
  return vmfd;
}

// The host path: group KVM_X86_GRP_SEV is answered here, other groups by the real KVM.
long host_dev_attr(int fd, unsigned long req, unsigned long arg) {
  kvm_device_attr attr;
  if (copy_from_user(&attr, arg, sizeof attr)) return -EFAULT;
  if (attr.group != uapi::KVM_X86_GRP_SEV) return forward_ioctl(fd, req, arg);
  return sev_dev_attr(req, attr.attr, attr.addr, false);
}

}  // namespace

long KvmSystem::ioctl(int fd, unsigned long req, unsigned long arg) {
  switch (req) {
    case KVM_CREATE_VM:
      return create_vm(fd, arg);
    case KVM_CHECK_EXTENSION:
      if (arg == uapi::CAP_VM_TYPES) return check_vm_types(fd, req, arg);
      break;
    case KVM_GET_DEVICE_ATTR:
    case KVM_HAS_DEVICE_ATTR:
      return host_dev_attr(fd, req, arg);
  }
  return forward_ioctl(fd, req, arg);
}

namespace {
const char* const kSevCommands[] = {
    "INIT",           "ES_INIT",          "LAUNCH_START",        "LAUNCH_UPDATE_DATA",
    "LAUNCH_UPDATE_VMSA", "LAUNCH_SECRET", "LAUNCH_MEASURE",     "LAUNCH_FINISH",
    "SEND_START",     "SEND_UPDATE_DATA", "SEND_UPDATE_VMSA",    "SEND_FINISH",
    "RECEIVE_START",  "RECEIVE_UPDATE_DATA", "RECEIVE_UPDATE_VMSA", "RECEIVE_FINISH",
    "GUEST_STATUS",   "DBG_DECRYPT",      "DBG_ENCRYPT",         "CERT_EXPORT",
    "GET_ATTESTATION_REPORT", "SEND_CANCEL", "INIT2",
};
constexpr uint32_t kNumSevCommands = sizeof kSevCommands / sizeof kSevCommands[0];
static_assert(kNumSevCommands == uapi::KVM_SEV_INIT2 + 1, "KVM_SEV_* names");
// From KVM_SEV_SNP_LAUNCH_START (100) on.
const char* const kSnpCommands[] = {"SNP_LAUNCH_START", "SNP_LAUNCH_UPDATE", "SNP_LAUNCH_FINISH", "SNP_ENABLE_REQ_CERTS"};
constexpr uint32_t kNumSnpCommands = sizeof kSnpCommands / sizeof kSnpCommands[0];
static_assert(uapi::KVM_SEV_SNP_LAUNCH_START + kNumSnpCommands == uapi::KVM_SEV_NR_MAX, "KVM_SEV_SNP_* names");
}  // namespace

const char* kvm_sev_command_name(uint32_t id) {
  if (id < kNumSevCommands) return kSevCommands[id];
  if (id >= uapi::KVM_SEV_SNP_LAUNCH_START && id < uapi::KVM_SEV_NR_MAX) return kSnpCommands[id - uapi::KVM_SEV_SNP_LAUNCH_START];
  return nullptr;
}

bool kvm_sev_command_from_name(const char* name, uint32_t& id) {
  for (uint32_t i = 0; i < kNumSevCommands; i++)
    if (strcmp(name, kSevCommands[i]) == 0) {
      id = i;
      return true;
    }
  for (uint32_t i = 0; i < kNumSnpCommands; i++)
    if (strcmp(name, kSnpCommands[i]) == 0) {
      id = uapi::KVM_SEV_SNP_LAUNCH_START + i;
      return true;
    }
  return false;
}

}  // namespace sevemu
