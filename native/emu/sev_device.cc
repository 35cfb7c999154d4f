#include "sev_device.h"

#include <cerrno>
#include <sys/ioctl.h>

#include "platform.h"
#include "real_libc.h"

namespace sevemu {

long SevDeviceFile::ioctl(int fd, unsigned long req, unsigned long arg) {
  switch (req) {
    // do_vfs_ioctl handles these for every file before the driver sees them; they act on
    // the open file (close-on-exec, O_NONBLOCK, O_ASYNC), so let the real fd do it.
    case FIOCLEX:
    case FIONCLEX:
    case FIONBIO:
    case FIOASYNC: {
      int r = real::ioctl(fd, req, reinterpret_cast<void*>(arg));
      return r < 0 ? -errno : r;
    }
    case FIOQSIZE:  // only for regular files, directories and links
      return -ENOTTY;
    default:
      return sev_ioctl(writable_, req, arg);
  }
}

}  // namespace sevemu
