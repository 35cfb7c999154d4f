// An open /dev/sev: the kernel's struct file for the misc device (FMODE_WRITE matters).
#pragma once

#include "fd_table.h"

namespace sevemu {

class SevDeviceFile : public FdObject {
 public:
  explicit SevDeviceFile(bool writable) : writable_(writable) {}
  const char* kind() const override { return "sev"; }
  long ioctl(int fd, unsigned long req, unsigned long arg) override;

 private:
  bool writable_;
};

}  // namespace sevemu
