// The SEV-ES VMSA the kernel builds for LAUNCH_UPDATE_VMSA (sev_es_sync_vmsa in
// arch/x86/kvm/svm/sev.c, layout struct sev_es_save_area in arch/x86/include/asm/svm.h):
// the vCPU's VMCB save area as svm.c keeps it, then the GPRs, XCR0/PKRU/XSS/DR6 and
// sev_features, and for VMs created with KVM_SEV_INIT2 (vm_type != default) the x87/SSE/AVX
// state. The registers are read from the real vCPU through KVM's own ioctls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace sevemu {

constexpr size_t kVmsaSize = 4096;

// A vCPU ioctl (KVM_GET_REGS, ...) on the vCPU being measured: >= 0 or -errno.
using VcpuIoctl = std::function<long(unsigned long req, void* arg)>;

// Fills `page` for the vCPU read through `vcpu`. Returns 0, -EINVAL when DR7 has bits beyond
// DR7_FIXED_1 (the kernel's pre-encryption check), or -errno of a failing KVM ioctl.
int build_vmsa(const VcpuIoctl& vcpu, uint64_t sev_features, bool with_fpu, uint8_t page[kVmsaSize]);

}  // namespace sevemu
