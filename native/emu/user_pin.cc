// One check per call, not per page: madvise(MADV_POPULATE_READ/WRITE) walks the whole range
// in the kernel like get_user_pages does (faulting pages in, breaking COW for writes) and
// fails for unmapped, PROT_NONE or (for writes) read-only memory. Where it is unsupported
// (kernels before 5.14, VM_IO/VM_PFNMAP mappings) a batched process_vm_readv/writev of one
// byte per page gives the same answer.
#include "user_pin.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

namespace sevemu {
namespace {

// capable(CAP_IPC_LOCK): the effective set, read fresh (tests drop it with setpriv).
bool has_ipc_lock() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32));
}

// totalram_pages(): the machine's RAM in pages.
uint64_t totalram_pages() {
  struct sysinfo si {};
  if (sysinfo(&si) != 0) return UINT64_MAX;
  return uint64_t(si.totalram) * si.mem_unit / kPageSize;
}

uint64_t memlock_limit_pages() {
  rlimit r{};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return uint64_t(r.rlim_cur) / kPageSize;
}

// Fallback: touch one byte of every page through the kernel's page walk.
bool touch_pages(uint64_t first, uint64_t npages, bool write) {
  constexpr size_t kBatch = 1024;  // IOV_MAX
  std::vector<uint8_t> bytes(std::min<uint64_t>(npages, kBatch));
  std::vector<iovec> local(bytes.size()), remote(bytes.size());
  for (uint64_t done = 0; done < npages;) {
    size_t n = size_t(std::min<uint64_t>(npages - done, kBatch));
    for (size_t i = 0; i < n; i++) {
      local[i] = {&bytes[i], 1};
      remote[i] = {reinterpret_cast<void*>(first + (done + i) * kPageSize), 1};
    }
    if (process_vm_readv(getpid(), local.data(), n, remote.data(), n, 0) != ssize_t(n))
      return false;
    // Writing back the byte just read is what a FOLL_WRITE pin checks: the page is
    // writable (and a COW page gets its own copy).
    if (write && process_vm_writev(getpid(), local.data(), n, remote.data(), n, 0) != ssize_t(n))
      return false;
    done += n;
  }
  return true;
}

bool pin_pages(uint64_t first, uint64_t npages, bool write) {
  void* addr = reinterpret_cast<void*>(first);
  for (;;) {
    if (madvise(addr, npages * kPageSize, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
      return true;
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == EINVAL) return touch_pages(first, npages, write);
    return false;  // ENOMEM (not mapped), EFAULT (not accessible), EHWPOISON
  }
}

// sev_check_pin_count: more pages than the machine has is EINVAL whatever the limits; over
// RLIMIT_MEMLOCK without CAP_IPC_LOCK is ENOMEM.
long check_pin_count(uint64_t pages_locked, uint64_t npages) {
  uint64_t total = pages_locked + npages;
  if (total > totalram_pages()) return -EINVAL;
  if (total > memlock_limit_pages() && !has_ipc_lock()) return -ENOMEM;
  return 0;
}

}  // namespace

long sev_pin_memory(uint64_t pages_locked, uint64_t uaddr, uint64_t ulen, bool write) {
  if (ulen == 0 || uaddr + ulen < uaddr) return -EINVAL;
  uint64_t first = uaddr / kPageSize, last = (uaddr + ulen - 1) / kPageSize;
  uint64_t npages = last - first + 1;
  // pin_user_pages_fast takes an int count; checked before the limits, as the kernel does.
  if (npages > uint64_t(INT_MAX)) return -EINVAL;
  if (long r = check_pin_count(pages_locked, npages)) return r;
  if (!pin_pages(first * kPageSize, npages, write)) return -ENOMEM;  // "Failure locking pages"
  return long(npages);
}

long sev_pin_page(uint64_t pages_locked, uint64_t page_addr, bool write) {
  if (long r = check_pin_count(pages_locked, 1)) return r;
  if (!pin_pages(page_addr, 1, write)) return -ENOMEM;
  return 1;
}

}  // namespace sevemu
