// copy_from_user / copy_to_user for the emulated kernel: a bad user pointer must give
// EFAULT, as in the kernel, never a SIGSEGV in the caller's process.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sevemu {

// Both return 0 on success or -EFAULT (any byte not accessible, or not writable for the
// store). A zero length always succeeds, like the kernel's.
int copy_from_user(void* dst, uint64_t user_src, size_t len);
int copy_to_user(uint64_t user_dst, const void* src, size_t len);

}  // namespace sevemu
