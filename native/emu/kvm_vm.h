// The emulated kernel objects behind KVM fds (virt/kvm/kvm_main.c, arch/x86/kvm/x86.c,
// arch/x86/kvm/svm/sev.c): /dev/kvm, VMs and vCPUs. Every ioctl the emulator does not
// answer itself is passed to the real /dev/kvm, so a guest launched as SEV really runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "fd_table.h"
#include "guest_context.h"
#include "memory_crypt.h"
#include "rmp.h"

namespace sevemu {

namespace fw {
struct SnpGuest;
}

// An SNP VM's private memory as SNP_LAUNCH_UPDATE reaches it (kvm_gmem_populate): the
// software KVM's memory (only it has SNP VMs). See softkvm::SoftMemory.
struct GmemAccess {
  virtual ~GmemAccess() = default;
  virtual uint64_t gmem_pages_from(uint64_t gfn) = 0;
  virtual long with_gmem_page(uint64_t gfn, const std::function<long(uint8_t* page, RmpEntry& rmp)>& fn) = 0;
};

struct VcpuState {
  // A vCPU ioctl issued by the emulated kernel itself (LAUNCH_UPDATE_VMSA reads the registers
  // with KVM_GET_*), on the real vCPU (host KVM) or the software one. Returns >= 0 or -errno.
  std::function<long(unsigned long req, void* arg)> kernel_ioctl;
  int fd = -1;  // host KVM: our own duplicate of the vCPU fd, so its registers stay readable
  std::atomic<bool> state_protected{false};  // vcpu->arch.guest_state_protected
  std::atomic<uint32_t> guest_debug{0};      // vcpu->guest_debug
  ~VcpuState();
};

// struct kvm_sev_info and the parts of struct kvm the SEV code looks at.
struct VmState {
  // `encrypts_memory`: the machine (software KVM) applies each guest's memory key; with the
  // host's real KVM guest memory stays plaintext.
  VmState(uint32_t type, bool encrypts_memory);
  ~VmState();  // sev_vm_destroy: unpin regions, DEACTIVATE/DECOMMISSION, free the ASID

  std::mutex lock;  // kvm->lock: held for each KVM_MEMORY_ENCRYPT_* ioctl
  const uint32_t vm_type;
  bool need_init;  // SEV VM types until KVM_SEV_INIT2
  bool active = false, es_active = false;
  bool snp_active() const;  // sev_snp_guest: INIT2 made it an SNP guest (vmsa_features has SNP_ACTIVE)
  uint64_t vmsa_features = 0;
  uint16_t ghcb_version = 0;
  uint32_t asid = 0;
  // The /dev/sev fd LAUNCH_START was issued on. kvm_sev_info starts zeroed, so before that the
  // guest commands go to fd 0 (EBADF unless fd 0 happens to be /dev/sev).
  int sev_fd = 0;
  std::shared_ptr<fw::Guest> guest;  // sev->handle
  std::shared_ptr<fw::SnpGuest> snp;  // sev->snp_context
  bool snp_certs_enabled = false;     // KVM_SEV_SNP_ENABLE_REQ_CERTS
  GmemAccess* gmem = nullptr;         // set by the software VM that owns this state
  std::mutex guest_req_mutex;         // sev->guest_req_mutex: one guest request at a time
  uint64_t pages_locked = 0;
  struct Region {
    uint64_t addr, size, npages;
  };
  std::vector<Region> regions;
  std::vector<std::shared_ptr<VcpuState>> vcpus;  // kvm_for_each_vcpu order

  struct Slot {
    uint32_t flags;
    uint64_t gpa, size, uaddr;
  };
  std::mutex slots_lock;
  std::map<uint32_t, Slot> slots;  // KVM_SET_USER_MEMORY_REGION, by slot id

  bool has_protected_state() const;  // kvm->arch.has_protected_state

  const bool encrypts_memory;
  // The guest's memory key once LAUNCH_START made one (read by the software CPU while running).
  std::shared_ptr<const MemoryKey> memory_key() const;
  void set_memory_key(std::shared_ptr<const MemoryKey> key);

 private:
  mutable std::mutex key_lock_;
  std::shared_ptr<const MemoryKey> key_;
};

// sev_asid_free / sev_unbind_asid (DEACTIVATE + DECOMMISSION), each under the PSP lock.
void release_asid(uint32_t asid);
void release_guest(fw::Guest& g);
void release_snp_guest(fw::SnpGuest& g);  // SNP_DECOMMISSION
// SVM_SEV_FEAT_SNP_ACTIVE: set in an SNP VM's VMSA features by KVM_SEV_INIT2.
constexpr uint64_t kVmsaFeatureSnpActive = 1;

// snp_handle_guest_req's firmware part: SNP_GUEST_REQUEST on the VM's guest context through the
// /dev/sev fd its launch used (EBADF once that is closed). Returns 0, or -EIO with *fw_err set
// for a firmware failure, or another -errno (*fw_err 0).
long snp_guest_request(VmState& vm, const uint8_t* req, uint8_t* resp, uint32_t* fw_err);

// KVM_MEMORY_ENCRYPT_OP (sev_mem_enc_ioctl). `arg` is the user pointer.
long sev_mem_enc_ioctl(VmState& vm, unsigned long arg);
// KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION.
long sev_mem_enc_region(VmState& vm, bool reg, unsigned long arg);

class KvmVm : public FdObject {
 public:
  explicit KvmVm(std::shared_ptr<VmState> s) : s_(std::move(s)) {}
  const char* kind() const override { return "kvm-vm"; }
  long ioctl(int fd, unsigned long req, unsigned long arg) override;

 private:
  long create_vcpu(int fd, unsigned long arg);
  long set_memory_region(int fd, unsigned long req, unsigned long arg);
  std::shared_ptr<VmState> s_;
};

class KvmVcpu : public FdObject {
 public:
  KvmVcpu(std::shared_ptr<VmState> vm, std::shared_ptr<VcpuState> s)
      : vm_(std::move(vm)), s_(std::move(s)) {}
  const char* kind() const override { return "kvm-vcpu"; }
  long ioctl(int fd, unsigned long req, unsigned long arg) override;

 private:
  std::shared_ptr<VmState> vm_;  // a vCPU fd keeps its VM alive, as in the kernel
  std::shared_ptr<VcpuState> s_;
};

class KvmSystem : public FdObject {
 public:
  const char* kind() const override { return "kvm"; }
  long ioctl(int fd, unsigned long req, unsigned long arg) override;
};

// The real ioctl, as -errno on failure.
long forward_ioctl(int fd, unsigned long req, unsigned long arg);
// KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES) on /dev/kvm or a VM: the real mask plus SEV types.
long check_vm_types(int fd, unsigned long req, unsigned long arg);

}  // namespace sevemu
