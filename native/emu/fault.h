// Fault injection for SEV_ISSUE_CMD and KVM_SEV_* (syntax documented in fault.cc).
#pragma once

#include <cstdint>

namespace sevemu {

struct Fault {
  int status = 0;  // != 0: the command's firmware call returns this status (EIO)
  int err = 0;     // != 0: the ioctl fails with this errno before reaching the firmware
};

// Counts one call of `cmd` in this process and returns the fault to apply to it, if any.
Fault fault_for_call(uint32_t cmd);
// The same for a KVM_MEMORY_ENCRYPT_OP sub-command (uapi::KVM_SEV_*).
Fault kvm_fault_for_call(uint32_t id);

}  // namespace sevemu
