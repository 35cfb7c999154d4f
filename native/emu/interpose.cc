// The libc entry points the emulator interposes when preloaded (LD_PRELOAD). Each one
// decides "is this ours?" — an emulated path or a registered fd — and otherwise calls
// straight through to the real libc. Device behaviour lives behind devices.cc and the
// fd table; nothing here knows what /dev/sev does.
//
// Built without _FILE_OFFSET_BITS/_FORTIFY_SOURCE so that <fcntl.h> declares plain
// open/open64/... and does not redirect or wrap the names we define.
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <cerrno>
#include <cstdarg>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices.h"
#include "fd_table.h"
#include "real_libc.h"
#include "tsm.h"
#if SEVEMU_SOFTKVM
#include <signal.h>

#include "softkvm/signals.h"
#endif

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace sevemu;

bool takes_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

int do_open(const char* path, int flags, mode_t mode) {
  int fd;
  if (open_emulated(path, flags, &fd)) return fd;
  return real::open(path, flags, mode);
}

int do_openat(int dirfd, const char* path, int flags, mode_t mode) {
  int fd;
  // Absolute paths ignore dirfd; emulated paths are absolute.
  if (path && path[0] == '/' && open_emulated(path, flags, &fd)) return fd;
  return real::openat(dirfd, path, flags, mode);
}

// After a successful dup of `oldfd` into `newfd`: the new number refers to the same open
// file, and whatever `newfd` referred to before was closed by the kernel.
void note_dup(int oldfd, int newfd) {
  fd_table::remove(newfd);
  if (auto obj = fd_table::lookup(oldfd)) fd_table::insert(newfd, obj);
}

mode_t va_mode(int flags, va_list ap) { return takes_mode(flags) ? va_arg(ap, mode_t) : 0; }

// fopen's mode string as open flags (man 3 fopen): r, w, a, with +, and glibc's e (O_CLOEXEC).
int fopen_flags(const char* mode) {
  int flags = 0;
  switch (mode[0]) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
  }
  for (const char* m = mode + 1; *m; m++) {
    if (*m == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
    if (*m == 'e') flags |= O_CLOEXEC;
  }
  return flags;
}

// glibc's fopen opens through an internal call the preload cannot see: emulated paths
// (/proc/cpuinfo, /dev/sev, ...) are opened here and wrapped with fdopen.
FILE* do_fopen(const char* path, const char* mode, FILE* (*real_fopen)(const char*, const char*)) {
  const int flags = mode ? fopen_flags(mode) : -1;
  int fd;
  if (flags < 0 || !open_emulated(path, flags, &fd)) return real_fopen(path, mode);
  if (fd < 0) return nullptr;
  FILE* f = fdopen(fd, mode);
  if (!f) {
    const int e = errno;
    fd_table::remove(fd);
    real::close(fd);
    errno = e;
  }
  return f;
}

}  // namespace

EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_mode(flags, ap);
  va_end(ap);
  return do_open(path, flags, mode);
}

EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_mode(flags, ap);
  va_end(ap);
  return do_open(path, flags | O_LARGEFILE, mode);
}

EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_mode(flags, ap);
  va_end(ap);
  return do_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_mode(flags, ap);
  va_end(ap);
  return do_openat(dirfd, path, flags | O_LARGEFILE, mode);
}

// _FORTIFY_SOURCE variants (no mode argument: O_CREAT is not allowed with them).
EXPORT int __open_2(const char* path, int flags) { return do_open(path, flags, 0); }
EXPORT int __open64_2(const char* path, int flags) {
  return do_open(path, flags | O_LARGEFILE, 0);
}
EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  return do_openat(dirfd, path, flags, 0);
}
EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  return do_openat(dirfd, path, flags | O_LARGEFILE, 0);
}

EXPORT FILE* fopen(const char* path, const char* mode) { return do_fopen(path, mode, real::fopen); }
EXPORT FILE* fopen64(const char* path, const char* mode) { return do_fopen(path, mode, real::fopen64); }

EXPORT int close(int fd) {
  fd_table::remove(fd);
  return real::close(fd);
}

EXPORT int close_range(unsigned first, unsigned last, int flags) noexcept {
  int r = real::close_range(first, last, flags);
  if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) fd_table::remove_range(first, last);
  return r;
}

EXPORT int ioctl(int fd, unsigned long req, ...) noexcept {
  va_list ap;
  va_start(ap, req);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  if (auto obj = fd_table::lookup(fd)) {
    // The syscall takes `unsigned int cmd`: callers that pass the request through an int (QEMU's
    // kvm_vm_ioctl does) sign-extend it, and the kernel ignores the upper half. So do we.
    long r = obj->ioctl(fd, static_cast<unsigned int>(req), arg);
    if (r < 0) {
      errno = int(-r);
      return -1;
    }
    return int(r);
  }
  return real::ioctl(fd, req, reinterpret_cast<void*>(arg));
}

// fallocate on an emulated object's fd (guest_memfd) answers as that object's file does.
static int do_fallocate(int fd, int mode, int64_t offset, int64_t len) {
  if (!fd_table::empty()) {
    if (auto obj = fd_table::lookup(fd)) {
      long r = obj->fallocate(fd, mode, offset, len);
      if (r != FdObject::kPassThrough) {
        if (r < 0) {
          errno = int(-r);
          return -1;
        }
        return 0;
      }
    }
  }
  return int(syscall(SYS_fallocate, fd, mode, offset, len));
}

EXPORT int fallocate(int fd, int mode, off_t offset, off_t len) { return do_fallocate(fd, mode, offset, len); }
EXPORT int fallocate64(int fd, int mode, off64_t offset, off64_t len) { return do_fallocate(fd, mode, offset, len); }

EXPORT int dup(int fd) noexcept {
  int r = real::dup(fd);
  if (r >= 0) note_dup(fd, r);
  return r;
}

EXPORT int dup2(int oldfd, int newfd) noexcept {
  int r = real::dup2(oldfd, newfd);
  if (r >= 0 && oldfd != newfd) note_dup(oldfd, r);
  return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags) noexcept {
  int r = real::dup3(oldfd, newfd, flags);
  if (r >= 0) note_dup(oldfd, r);
  return r;
}

static int do_fcntl(int fd, int cmd, unsigned long arg) {
  int r = real::fcntl(fd, cmd, long(arg));
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) note_dup(fd, r);
  return r;
}

EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return do_fcntl(fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return do_fcntl(fd, cmd, arg);
}

EXPORT int access(const char* path, int mode) noexcept {
  int r;
  if (access_emulated(path, mode, &r)) return r;
  return real::access(path, mode);
}

static bool is_absolute(const char* path) { return path && path[0] == '/'; }

EXPORT int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  int r;
  if (is_absolute(path) && access_emulated(path, mode, &r)) return r;
  return real::faccessat(dirfd, path, mode, flags);
}

// configfs-tsm items inside an emulated SNP guest are made and removed with mkdir/rmdir.
// AddressSanitizer's runtime calls mkdir while it initializes (log_path), before its shadow
// memory exists: these entry points are not instrumented, and any path outside configfs goes
// straight to the system call without touching instrumented code.
#define NOT_SANITIZED __attribute__((no_sanitize("address", "undefined")))

NOT_SANITIZED static bool under_configfs(const char* path) {
  static const char prefix[] = "/sys/kernel/config/";
  if (!path) return false;
  for (size_t i = 0; i + 1 < sizeof prefix; i++)
    if (path[i] != prefix[i]) return false;
  return true;
}

EXPORT NOT_SANITIZED int mkdir(const char* path, mode_t mode) {
  int r;
  if (under_configfs(path) && tsm::mkdir_path(path, mode, &r)) return r;
  return real::mkdirat(AT_FDCWD, path, mode);
}

EXPORT NOT_SANITIZED int mkdirat(int dirfd, const char* path, mode_t mode) {
  int r;
  if (under_configfs(path) && tsm::mkdir_path(path, mode, &r)) return r;
  return real::mkdirat(dirfd, path, mode);
}

EXPORT NOT_SANITIZED int rmdir(const char* path) {
  int r;
  if (under_configfs(path) && tsm::rmdir_path(path, &r)) return r;
  return real::rmdir(path);
}

#if SEVEMU_SOFTKVM
// Signal handlers are wrapped so that a signal interrupts a software vCPU's KVM_RUN (EINTR), as
// it interrupts the kernel's (softkvm/signals.h).
EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return sevemu::softkvm::wrapped_sigaction(sig, act, old);
}

// signal(): BSD semantics (SA_RESTART), as glibc's.
EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  struct sigaction act {}, old {};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  act.sa_flags = SA_RESTART;
  if (sevemu::softkvm::wrapped_sigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}
#endif
