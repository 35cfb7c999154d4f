#include "devices.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/mman.h>
#include <unistd.h>

#include "fd_table.h"
#include "host_facts.h"
#include "kvm_backend.h"
#include "kvm_emu.h"
#include "real_libc.h"
#include "sev_device.h"

namespace sevemu {

const char* sev_device_path() {
  static const char* path = [] {
    const char* env = getenv("SEV_EMU_DEVICE");
    return env && *env ? env : "/dev/sev";
  }();
  return path;
}

namespace {

// A memfd holding `text`, positioned at 0, for emulated read-only sysfs files.
int open_text_file(const char* text, int flags) {
  if ((flags & O_ACCMODE) != O_RDONLY) {
    errno = EACCES;  // the module parameters are 0444 (sev, sev_es, sev_snp)
    return -1;
  }
  int fd = memfd_create("sevemu-param", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  size_t len = strlen(text);
  if (write(fd, text, len) != ssize_t(len) || lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    real::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// The device gets a real fd of its own (so poll/close/dup/fcntl behave): an empty memfd, whose
// inode is unique, so the fd table can tell this open file from whatever later reuses its number
// after a close the emulator never saw (libuv closes with a raw syscall). The emulated driver,
// with the caller's access mode, sits in the fd table.
int open_sev_device(int flags) {
  int fd = memfd_create("sevemu-dev-sev", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  if ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    int e = errno;
    real::close(fd);
    errno = e;
    return -1;
  }
  int acc = flags & O_ACCMODE;
  fd_table::insert(fd, std::make_shared<SevDeviceFile>(acc == O_WRONLY || acc == O_RDWR));
  return fd;
}

}  // namespace

bool open_emulated(const char* path, int flags, int* result) {
  if (!path) return false;
  if (strcmp(path, sev_device_path()) == 0) {
    *result = open_sev_device(flags);
    return true;
  }
  if (strcmp(path, "/dev/kvm") == 0) {  // the real device with the SEV parts emulated, or the software KVM
    *result = open_kvm(path, flags, 0);
    return true;
  }
  if (const char* text = kvm_param_contents(path)) {
    *result = open_text_file(text, flags);
    return true;
  }
  if (const char* text = cpuinfo_contents(path)) {  // the emulated EPYC's /proc/cpuinfo
    *result = open_text_file(text, flags);
    return true;
  }
  return false;
}

bool access_emulated(const char* path, int mode, int* result) {
  if (!path) return false;
  if (strcmp(path, sev_device_path()) == 0) {
    *result = 0;  // crw------- root: root may read and write (X_OK is refused)
    if (mode & X_OK) {
      errno = EACCES;
      *result = -1;
    }
    return true;
  }
  if (strcmp(path, "/dev/kvm") == 0) {
    access_kvm(path, mode, result);
    return true;
  }
  if (kvm_param_contents(path)) {
    *result = 0;
    if (mode & (W_OK | X_OK)) {
      errno = EACCES;
      *result = -1;
    }
    return true;
  }
  return false;
}

}  // namespace sevemu
