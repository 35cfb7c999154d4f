// process_vm_readv/writev on our own pid go through the kernel's page-table walk, so an
// unmapped or read-only (for writes) address yields EFAULT instead of a fault in this
// process — the same outcome as the kernel's copy_{from,to}_user. If a sandbox forbids
// those syscalls we fall back to a pipe: write(2)/read(2) also report EFAULT for bad
// user buffers, and honour page protections.
#include "user_mem.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "real_libc.h"

// Memcheck does not see stores that process_vm_writev makes into our own address space;
// tell it, so programs run under valgrind + the emulator get no false "uninitialised"
// reports for what the emulated kernel wrote. The macros are no-ops outside valgrind.
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#else
#define MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

namespace sevemu {
namespace {

bool vm_rw_unavailable(int err) { return err == ENOSYS || err == EPERM; }

// Moves bytes through a pipe in chunks; `to_user` selects the direction.
int pipe_copy(void* kernel_buf, uint64_t user, size_t len, bool to_user) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -EFAULT;
  int rc = 0;
  uint8_t* kb = static_cast<uint8_t*>(kernel_buf);
  for (size_t off = 0; off < len && rc == 0;) {
    size_t n = std::min<size_t>(len - off, 4096);
    const void* wsrc = to_user ? static_cast<const void*>(kb + off)
                               : reinterpret_cast<const void*>(user + off);
    void* rdst = to_user ? reinterpret_cast<void*>(user + off) : static_cast<void*>(kb + off);
    if (write(p[1], wsrc, n) != ssize_t(n) || read(p[0], rdst, n) != ssize_t(n)) rc = -EFAULT;
    off += n;
  }
  real::close(p[0]);
  real::close(p[1]);
  return rc;
}

}  // namespace

int copy_from_user(void* dst, uint64_t user_src, size_t len) {
  if (len == 0) return 0;
  if (user_src + len < user_src) return -EFAULT;  // wraps around
  iovec local{dst, len};
  iovec remote{reinterpret_cast<void*>(user_src), len};
  ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (n == ssize_t(len)) {
    MARK_DEFINED(dst, len);  // what the caller passed may be partly undefined; so is the kernel's copy
    return 0;
  }
  if (n < 0 && vm_rw_unavailable(errno)) return pipe_copy(dst, user_src, len, false);
  return -EFAULT;
}

int copy_to_user(uint64_t user_dst, const void* src, size_t len) {
  if (len == 0) return 0;
  if (user_dst + len < user_dst) return -EFAULT;
  iovec local{const_cast<void*>(src), len};
  iovec remote{reinterpret_cast<void*>(user_dst), len};
  ssize_t n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
  if (n == ssize_t(len)) {
    MARK_DEFINED(reinterpret_cast<void*>(user_dst), len);
    return 0;
  }
  if (n < 0 && vm_rw_unavailable(errno))
    return pipe_copy(const_cast<void*>(src), user_dst, len, true);
  return -EFAULT;
}

}  // namespace sevemu
