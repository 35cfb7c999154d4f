// The emulated kernel's sev_pin_memory (arch/x86/kvm/svm/sev.c): the RLIMIT_MEMLOCK
// accounting and the pin itself, which fails (ENOMEM) for memory that is not mapped, or not
// writable when the command writes to it (FOLL_WRITE). Nothing is really pinned: the
// emulator only checks what pin_user_pages_fast would refuse and faults the pages in.
#pragma once

#include <cstdint>

namespace sevemu {

// Returns the number of pages of [uaddr, uaddr + ulen) (> 0), or -EINVAL / -ENOMEM as the
// kernel would, checked in its order: empty or wrapping range, more than INT_MAX pages, more
// than the machine's RAM (EINVAL), over RLIMIT_MEMLOCK without CAP_IPC_LOCK (ENOMEM), then the
// pin (ENOMEM). `pages_locked` is the VM's sev->pages_locked; the caller adds the result
// to it while the pages count as pinned (and subtracts it again on unpin).
long sev_pin_memory(uint64_t pages_locked, uint64_t uaddr, uint64_t ulen, bool write);
// sev_pin_page: one page at a page-aligned address (the limits counted for one page, no range
// check). Returns 1 or -EINVAL / -ENOMEM.
long sev_pin_page(uint64_t pages_locked, uint64_t page_addr, bool write);

constexpr uint64_t kPageSize = 4096;

}  // namespace sevemu
