#include "devices.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <climits>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <memory>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "fd_table.h"
#include "host_facts.h"
#include "kvm_backend.h"
#include "kds_files.h"
#include "kvm_emu.h"
#include "real_libc.h"
#include "sev_device.h"
#include "snp_guest.h"
#include "tsm.h"

namespace sevemu {

const char* sev_device_path() {
  static const char* path = [] {
    const char* env = getenv("SEV_EMU_DEVICE");
    return env && *env ? env : "/dev/sev";
  }();
  return path;
}

namespace {

int open_text_file(const char* text, int flags) { return open_contents(text, strlen(text), flags); }

// The device node as the kernel creates it (misc_register: crw------- root root) unless
// SEV_EMU_DEVICE_MODE (octal) and SEV_EMU_DEVICE_GROUP (a group name or gid) say otherwise, as
// a udev rule would (e.g. 0660 and kvm).
struct DeviceNode {
  mode_t mode = 0600;
  gid_t gid = 0;
};

const DeviceNode& sev_device_node() {
  static const DeviceNode node = [] {
    DeviceNode n;
    if (const char* m = getenv("SEV_EMU_DEVICE_MODE"); m && *m) {
      char* end;
      unsigned long v = strtoul(m, &end, 8);
      if (*end || v > 0777)
        log_line("SEV_EMU_DEVICE_MODE=%s is not an octal mode; using 0600", m);
      else
        n.mode = mode_t(v);
    }
    if (const char* g = getenv("SEV_EMU_DEVICE_GROUP"); g && *g) {
      char* end;
      unsigned long v = strtoul(g, &end, 10);
      if (!*end) {
        n.gid = gid_t(v);
      } else if (const group* gr = getgrnam(g)) {
        n.gid = gr->gr_gid;
      } else {
        log_line("SEV_EMU_DEVICE_GROUP=%s is not a group; using root", g);
      }
    }
    return n;
  }();
  return node;
}

bool has_cap_dac_override() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return data[0].effective & (1u << CAP_DAC_OVERRIDE);
}

bool in_group(gid_t gid, bool effective) {
  if ((effective ? getegid() : getgid()) == gid) return true;
  gid_t groups[NGROUPS_MAX];
  int n = getgroups(NGROUPS_MAX, groups);
  for (int i = 0; i < n; i++)
    if (groups[i] == gid) return true;
  return false;
}

// generic_permission on the node for `want` (R_OK/W_OK/X_OK bits), as the effective ids
// (open) or the real ones (access). The owner is root; CAP_DAC_OVERRIDE passes read and write.
bool device_permits(int want, bool effective) {
  const DeviceNode& n = sev_device_node();
  uid_t uid = effective ? geteuid() : getuid();
  mode_t bits = uid == 0 ? n.mode >> 6 : in_group(n.gid, effective) ? n.mode >> 3 : n.mode;
  if ((want & ~int(bits & 7)) == 0) return true;
  return !(want & X_OK) && (effective ? has_cap_dac_override() : uid == 0);
}

// The device gets a real fd of its own (so poll/close/dup/fcntl behave): an empty memfd, whose
// inode is unique, so the fd table can tell this open file from whatever later reuses its number
// after a close the emulator never saw (libuv closes with a raw syscall). The emulated driver,
// with the caller's access mode, sits in the fd table.
int open_sev_device(int flags) {
  int acc = flags & O_ACCMODE;
  int want = acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK : R_OK | W_OK;
  if (!device_permits(want, true)) {
    errno = EACCES;
    return -1;
  }
  int fd = memfd_create("sevemu-dev-sev", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  if ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    int e = errno;
    real::close(fd);
    errno = e;
    return -1;
  }
  fd_table::insert(fd, std::make_shared<SevDeviceFile>(acc == O_WRONLY || acc == O_RDWR));
  return fd;
}

// /dev/sev-guest as the guest kernel's misc device creates it: root only (crw-------).
int open_sev_guest(int flags) {
  if (geteuid() != 0 && !has_cap_dac_override()) {
    errno = EACCES;
    return -1;
  }
  int fd = memfd_create("sevemu-dev-sev-guest", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  fd_table::insert(fd, std::make_shared<SevGuestFile>());
  return fd;
}

// /dev/cpu/N/msr inside an SNP guest: an rdmsr is a pread at the MSR's index. Only SEV_STATUS
// (0xC0010131) is modelled: bits 0-1 SEV and SEV-ES, then the VMSA's SEV_FEATURES from bit 2
// (SNPActive, vTOM, ReflectVC, ...: SEV_EMU_GUEST_FEATURES, default 1). Other MSRs read as zero.
bool is_msr_path(const char* path) {
  const char* p = path;
  if (strncmp(p, "/dev/cpu/", 9) != 0) return false;
  p += 9;
  if (!isdigit(static_cast<unsigned char>(*p))) return false;
  while (isdigit(static_cast<unsigned char>(*p))) p++;
  return strcmp(p, "/msr") == 0;
}

int open_guest_msr(int flags) {
  if (geteuid() != 0 && !has_cap_dac_override()) {
    errno = EACCES;
    return -1;
  }
  constexpr off_t kSevStatus = 0xC0010131;
  const char* f = getenv("SEV_EMU_GUEST_FEATURES");
  uint64_t features = f && *f ? strtoull(f, nullptr, 0) : 1;
  uint64_t status = 3 | features << 2;
  int fd = memfd_create("sevemu-msr", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  if (ftruncate(fd, kSevStatus + 8) != 0 || pwrite(fd, &status, 8, kSevStatus) != 8) {
    int e = errno;
    real::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int open_kds_file(const char* path, int flags) {
  Bytes data;
  if (int r = kds_file(path, data)) {
    errno = -r;
    return -1;
  }
  return open_contents(data.data(), data.size(), flags);
}

}  // namespace

int open_contents(const void* data, size_t len, int flags) {
  if ((flags & O_ACCMODE) != O_RDONLY) {
    errno = EACCES;  // sysfs module parameters are 0444, configfs-tsm's read attributes too
    return -1;
  }
  int fd = memfd_create("sevemu-file", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  if (write(fd, data, len) != ssize_t(len) || lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    real::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

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
  if (snp_guest_enabled() && strcmp(path, "/dev/sev-guest") == 0) {
    *result = open_sev_guest(flags);
    return true;
  }
  if (snp_guest_enabled() && is_msr_path(path)) {
    *result = open_guest_msr(flags);
    return true;
  }
  if (is_kds_path(path)) {
    *result = open_kds_file(path, flags);
    return true;
  }
  return tsm::open_path(path, flags, 0, result);
}

bool access_emulated(const char* path, int mode, int* result) {
  if (!path) return false;
  if (strcmp(path, sev_device_path()) == 0) {
    *result = 0;  // access(2) asks as the real uid and gid
    if (mode != F_OK && !device_permits(mode & (R_OK | W_OK | X_OK), false)) {
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
  if (snp_guest_enabled() && strcmp(path, "/dev/sev-guest") == 0) {
    *result = 0;
    if (mode != F_OK && getuid() != 0) {
      errno = EACCES;
      *result = -1;
    }
    return true;
  }
  return tsm::access_path(path, mode, result);
}

}  // namespace sevemu
