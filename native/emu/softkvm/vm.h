// The software KVM's kernel objects: /dev/kvm, VM fds and vCPU fds, answering the same ioctls
// with the same structs, errnos and exit reasons as KVM (Documentation/virt/kvm/api.rst), so that
// a VMM cannot tell it from the real one. Each fd is a memfd of its own (the vCPU's holds struct
// kvm_run, which the VMM mmaps), registered in the emulator's fd table.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fd_table.h"
#include "memory.h"

namespace sevemu {
struct VmState;
}

namespace sevemu::softkvm {

class SoftVcpu;

// KVM_X86_GET_MCE_CAP_SUPPORTED: MCG_CTL_P | MCG_SER_P, as kvm_caps.supported_mce_cap.
constexpr uint64_t kMceCapSupported = (1ull << 8) | (1ull << 24);

class SoftVm : public std::enable_shared_from_this<SoftVm> {
 public:
  explicit SoftVm(uint32_t type);
  ~SoftVm();

  const uint32_t type;
  // kvm->arch.has_private_mem: KVM_X86_SW_PROTECTED_VM and KVM_X86_SNP_VM. Its gfns are private
  // or shared by their memory attributes, and private ones come from guest_memfd.
  bool has_private_mem() const;
  std::shared_ptr<VmState> sev;  // the SEV state the KVM_MEMORY_ENCRYPT_* ops keep
  SoftMemory memory;
  unsigned c_bit = 0;            // from the emulated CPUID 0x8000001F
  uint64_t hypercall_exits = 0;  // KVM_CAP_EXIT_HYPERCALL: hypercalls that exit to user space
  unsigned maxphyaddr = 48;

  // KVM_CREATE_VCPU: returns the vCPU fd or -errno.
  long create_vcpu(unsigned long id);
  void kick_all();

 private:
  std::mutex vcpus_mu_;
  std::vector<std::unique_ptr<SoftVcpu>> vcpus_;  // destroyed first: they map `memory`
};

// Opens the software /dev/kvm: a new fd, or -1 with errno set (and the reason logged once when
// the software KVM cannot run here).
int open_soft_kvm(int flags);
// Null when the software KVM can run here; else the one-line reason and what to install.
const char* soft_kvm_unavailable();

}  // namespace sevemu::softkvm
