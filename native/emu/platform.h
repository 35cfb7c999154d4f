// The emulated kernel driver for /dev/sev (drivers/crypto/ccp/sev-dev.c, sev_ioctl): the
// checks, implicit INIT/SHUTDOWN, bounce buffers and copy-back the kernel performs around
// each firmware command, on top of the firmware model in firmware.cc.
#pragma once

namespace sevemu {

// ioctl(2) on a /dev/sev fd; `writable` is the fd's FMODE_WRITE. Returns 0 or -errno.
long sev_ioctl(bool writable, unsigned long req, unsigned long arg);

}  // namespace sevemu
