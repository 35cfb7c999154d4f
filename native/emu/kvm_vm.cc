// VM and vCPU fds. A VM fd answers the SEV ioctls and observes vCPU creation and memory
// slots; a vCPU fd refuses the register ioctls once an SEV-ES VM's state is protected
// (arch/x86/kvm/x86.c, has_protected_state && guest_state_protected). Everything else is
// the real KVM's: private memory (KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2 — observed
// for the slot table, then passed on —, KVM_SET_MEMORY_ATTRIBUTES, their capabilities and
// KVM_EXIT_MEMORY_FAULT) is the host's own; the real VM behind an SEV VM is a default VM, which
// answers those capabilities as 7.2 does for SEV and SEV-ES VMs (no private attributes).
#include <cerrno>
#include <fcntl.h>
#include <linux/kvm.h>

#include "common.h"
#include "firmware_state.h"
#include "guest_registry.h"
#include "kvm_vm.h"
#include "snp_launch.h"
#include "real_libc.h"
#include "uapi/kvm_flex.h"
#include "uapi/kvm_memory.h"
#include "uapi/kvm_sev.h"
#include "user_mem.h"

namespace sevemu {

VcpuState::~VcpuState() {
  if (fd >= 0) real::close(fd);
}

VmState::VmState(uint32_t type, bool encrypts)
    : vm_type(type),
      need_init(type == uapi::KVM_X86_SEV_VM || type == uapi::KVM_X86_SEV_ES_VM || type == uapi::KVM_X86_SNP_VM),
      encrypts_memory(encrypts) {}

bool VmState::has_protected_state() const {
  return vm_type == uapi::KVM_X86_SEV_ES_VM || vm_type == uapi::KVM_X86_SNP_VM;
}

bool VmState::snp_active() const { return es_active && (vmsa_features & kVmsaFeatureSnpActive); }

std::shared_ptr<const MemoryKey> VmState::memory_key() const {
  std::lock_guard<std::mutex> l(key_lock_);
  return key_;
}

void VmState::set_memory_key(std::shared_ptr<const MemoryKey> key) {
  std::lock_guard<std::mutex> l(key_lock_);
  key_ = std::move(key);
}

// One firmware command at teardown, under the PSP lock: failures are logged, never thrown.
template <typename Fn>
static void at_teardown(const char* what, uint32_t id, Fn fn) {
  try {
    std::lock_guard<std::mutex> psp(fw::cmd_mutex());
    NvSession nv;
    fn(nv);
    nv.commit();
  } catch (const std::exception& e) {
    log_line("internal error %s %u: %s", what, id, e.what());
  }
}

void release_asid(uint32_t asid) {
  at_teardown("freeing ASID", asid, [&](NvSession& nv) { registry::free_asid(nv, asid); });
}

void release_guest(fw::Guest& g) {
  at_teardown("decommissioning guest", g.handle, [&](NvSession& nv) { fw::decommission(nv, g); });
}

void release_snp_guest(fw::SnpGuest& g) {
  at_teardown("decommissioning SNP guest", g.id, [&](NvSession& nv) { fw::snp_decommission(nv, g); });
}

// sev_vm_destroy, when the last fd of the VM (VM or vCPU) is closed: registered regions
// are unpinned (nothing to do here), the guest is decommissioned, the ASID freed.
VmState::~VmState() {
  if (!active) return;
  if (guest) release_guest(*guest);
  if (snp) release_snp_guest(*snp);
  if (asid) release_asid(asid);
}

long KvmVm::create_vcpu(int fd, unsigned long arg) {
  // Under kvm->lock, so KVM_SEV_INIT's "no vCPUs yet" check cannot race with creation.
  std::lock_guard<std::mutex> lock(s_->lock);
  long vcpufd = forward_ioctl(fd, KVM_CREATE_VCPU, arg);
  if (vcpufd < 0) return vcpufd;
  auto v = std::make_shared<VcpuState>();
  v->fd = real::fcntl(int(vcpufd), F_DUPFD_CLOEXEC, 0);
  if (v->fd < 0) log_line("cannot keep a handle on vCPU fd %ld: %s", vcpufd, strerror(errno));
  int own = v->fd;
  v->kernel_ioctl = [own](unsigned long req, void* a) -> long {
    int r = real::ioctl(own, req, a);
    return r < 0 ? -errno : r;
  };
  s_->vcpus.push_back(v);
  fd_table::insert(int(vcpufd), std::make_shared<KvmVcpu>(s_, v));
  return vcpufd;
}

// KVM_SET_USER_MEMORY_REGION and KVM_SET_USER_MEMORY_REGION2 (whose first 32 bytes are the v1
// struct; guest_memfd, its offset and binding are the real KVM's business).
long KvmVm::set_memory_region(int fd, unsigned long req, unsigned long arg) {
  kvm_userspace_memory_region m;
  if (copy_from_user(&m, arg, sizeof m)) return -EFAULT;
  if (req == uapi::KVMIO_SET_USER_MEMORY_REGION2) {
    uapi::kvm_userspace_memory_region2 m2;
    if (copy_from_user(&m2, arg, sizeof m2)) return -EFAULT;
  }
  // check_memory_region_flags, before anything else: protected state has no read-only
  // memory (kvm_arch_has_readonly_mem), whatever the host KVM, which sees a default VM.
  if (s_->has_protected_state() && (m.flags & KVM_MEM_READONLY)) return -EINVAL;
  long r = forward_ioctl(fd, req, arg);
  if (r < 0) return r;
  std::lock_guard<std::mutex> lock(s_->slots_lock);
  if (m.memory_size == 0)
    s_->slots.erase(m.slot);
  else
    s_->slots[m.slot] = {m.flags, m.guest_phys_addr, m.memory_size, m.userspace_addr};
  return r;
}

long KvmVm::ioctl(int fd, unsigned long req, unsigned long arg) {
  switch (req) {
    case uapi::KVMIO_MEMORY_ENCRYPT_OP:
      return sev_mem_enc_ioctl(*s_, arg);
    case uapi::KVMIO_MEMORY_ENCRYPT_REG_REGION:
      return sev_mem_enc_region(*s_, true, arg);
    case uapi::KVMIO_MEMORY_ENCRYPT_UNREG_REGION:
      return sev_mem_enc_region(*s_, false, arg);
    case KVM_CREATE_VCPU:
      return create_vcpu(fd, arg);
    case KVM_SET_USER_MEMORY_REGION:
    case uapi::KVMIO_SET_USER_MEMORY_REGION2:
      return set_memory_region(fd, req, arg);
    case KVM_CHECK_EXTENSION:
      if (arg == uapi::CAP_VM_TYPES) return check_vm_types(fd, req, arg);
      // kvm_vm_ioctl_check_extension: a VM with protected state has neither read-only memory
      // nor kvm_run sync regs (the host KVM made a default VM and would say it has both).
      if ((arg == KVM_CAP_READONLY_MEM || arg == KVM_CAP_SYNC_REGS) && s_->has_protected_state())
        return 0;
      break;
  }
  return forward_ioctl(fd, req, arg);
}

namespace {

// The vCPU ioctls x86.c refuses with EINVAL for protected state (the KVM_SET_* ones after
// copying their argument in, so a bad pointer is still EFAULT).
bool protected_state_ioctl(unsigned long req, bool* copies_in) {
  switch (req) {
    case KVM_SET_REGS:
    case KVM_SET_SREGS:
    case KVM_SET_SREGS2:
    case KVM_SET_FPU:
    case KVM_SET_DEBUGREGS:
    case uapi::KVMIO_SET_XSAVE:
    case KVM_SET_XCRS:
      *copies_in = true;
      return true;
    case KVM_GET_REGS:
    case KVM_GET_SREGS:
    case KVM_GET_SREGS2:
    case KVM_GET_FPU:
    case KVM_GET_DEBUGREGS:
    case uapi::KVMIO_GET_XSAVE:
    case uapi::KVMIO_GET_XSAVE2:
    case KVM_GET_XCRS:
      *copies_in = false;
      return true;
  }
  return false;
}

}  // namespace

long KvmVcpu::ioctl(int fd, unsigned long req, unsigned long arg) {
  bool prot = s_->state_protected.load(std::memory_order_acquire);
  bool copies_in = false;
  if (prot && vm_->has_protected_state() && protected_state_ioctl(req, &copies_in)) {
    if (copies_in) {
      Bytes tmp(_IOC_SIZE(req));
      if (copy_from_user(tmp.data(), arg, tmp.size())) return -EFAULT;
    }
    return -EINVAL;
  }
  if (req != KVM_SET_GUEST_DEBUG) return forward_ioctl(fd, req, arg);
  // kvm_arch_vcpu_ioctl_set_guest_debug: no single-step / hardware breakpoints on
  // protected state; vcpu->guest_debug remembered for LAUNCH_UPDATE_VMSA.
  kvm_guest_debug dbg;
  if (copy_from_user(&dbg, arg, sizeof dbg)) return -EFAULT;
  if (prot && (dbg.control & (KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP))) return -EINVAL;
  long r = forward_ioctl(fd, req, arg);
  if (r == 0) s_->guest_debug.store(dbg.control & KVM_GUESTDBG_ENABLE ? dbg.control : 0);
  return r;
}

}  // namespace sevemu
