// Resolves the next definition of each interposed function once. The first call may come
// from any thread (or from a constructor that runs before ours), so each pointer is resolved
// lazily and published atomically; dlsym never calls open/ioctl, so no recursion here.
// Where dlsym cannot find a symbol (static binaries, old libc) we fall back to the syscall.
#include "real_libc.h"

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sevemu::real {
namespace {

template <typename Fn>
Fn resolve(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (!p) {
    p = dlsym(RTLD_NEXT, name);
    if (!p) p = reinterpret_cast<void*>(-1);  // remember "absent"
    slot.store(p, std::memory_order_release);
  }
  return p == reinterpret_cast<void*>(-1) ? nullptr : reinterpret_cast<Fn>(p);
}

#define SLOT(name) std::atomic<void*> g_##name{nullptr}
SLOT(open);
SLOT(openat);
SLOT(close);
SLOT(ioctl);
SLOT(dup);
SLOT(dup2);
SLOT(dup3);
SLOT(fcntl);
SLOT(access);
SLOT(faccessat);
SLOT(close_range);
SLOT(fopen);
SLOT(fopen64);
#undef SLOT

}  // namespace

int open(const char* path, int flags, mode_t mode) {
  using Fn = int (*)(const char*, int, ...);
  if (auto f = resolve<Fn>(g_open, "open")) return f(path, flags, mode);
  return int(syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}
int openat(int dirfd, const char* path, int flags, mode_t mode) {
  using Fn = int (*)(int, const char*, int, ...);
  if (auto f = resolve<Fn>(g_openat, "openat")) return f(dirfd, path, flags, mode);
  return int(syscall(SYS_openat, dirfd, path, flags, mode));
}
int close(int fd) {
  using Fn = int (*)(int);
  if (auto f = resolve<Fn>(g_close, "close")) return f(fd);
  return int(syscall(SYS_close, fd));
}
int ioctl(int fd, unsigned long req, void* arg) {
  using Fn = int (*)(int, unsigned long, ...);
  if (auto f = resolve<Fn>(g_ioctl, "ioctl")) return f(fd, req, arg);
  return int(syscall(SYS_ioctl, fd, req, arg));
}
int dup(int fd) {
  using Fn = int (*)(int);
  if (auto f = resolve<Fn>(g_dup, "dup")) return f(fd);
  return int(syscall(SYS_dup, fd));
}
int dup2(int oldfd, int newfd) {
  using Fn = int (*)(int, int);
  if (auto f = resolve<Fn>(g_dup2, "dup2")) return f(oldfd, newfd);
  return int(syscall(SYS_dup2, oldfd, newfd));
}
int dup3(int oldfd, int newfd, int flags) {
  using Fn = int (*)(int, int, int);
  if (auto f = resolve<Fn>(g_dup3, "dup3")) return f(oldfd, newfd, flags);
  return int(syscall(SYS_dup3, oldfd, newfd, flags));
}
int fcntl(int fd, int cmd, long arg) {
  using Fn = int (*)(int, int, ...);
  if (auto f = resolve<Fn>(g_fcntl, "fcntl")) return f(fd, cmd, arg);
  return int(syscall(SYS_fcntl, fd, cmd, arg));
}
int access(const char* path, int mode) {
  using Fn = int (*)(const char*, int);
  if (auto f = resolve<Fn>(g_access, "access")) return f(path, mode);
  return int(syscall(SYS_faccessat, AT_FDCWD, path, mode));
}
int faccessat(int dirfd, const char* path, int mode, int flags) {
  using Fn = int (*)(int, const char*, int, int);
  if (auto f = resolve<Fn>(g_faccessat, "faccessat")) return f(dirfd, path, mode, flags);
  return int(syscall(SYS_faccessat, dirfd, path, mode));
}
int close_range(unsigned first, unsigned last, int flags) {
  using Fn = int (*)(unsigned, unsigned, int);
  if (auto f = resolve<Fn>(g_close_range, "close_range")) return f(first, last, flags);
#ifdef SYS_close_range
  return int(syscall(SYS_close_range, first, last, flags));
#else
  errno = ENOSYS;
  return -1;
#endif
}

FILE* fopen(const char* path, const char* mode) {
  using Fn = FILE* (*)(const char*, const char*);
  if (auto f = resolve<Fn>(g_fopen, "fopen")) return f(path, mode);
  errno = ENOSYS;
  return nullptr;
}
FILE* fopen64(const char* path, const char* mode) {
  using Fn = FILE* (*)(const char*, const char*);
  if (auto f = resolve<Fn>(g_fopen64, "fopen64")) return f(path, mode);
  return fopen(path, mode);
}

// Not instrumented: the sanitizers' runtime reaches these (through mkdir) before it is set up.
__attribute__((no_sanitize("address", "undefined"))) int mkdirat(int dirfd, const char* path, mode_t mode) {
  return int(syscall(SYS_mkdirat, dirfd, path, mode));
}
__attribute__((no_sanitize("address", "undefined"))) int rmdir(const char* path) {
  return int(syscall(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR));
}

}  // namespace sevemu::real
