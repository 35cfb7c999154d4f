// The emulator's view of the process's fd table. Each emulated kernel object (today the
// /dev/sev device; later KVM system/VM/vCPU fds) is an FdObject. Like a kernel `struct
// file`, one object is shared by every fd that dup() made from the same open: it lives
// until the last of those fds is closed.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>

namespace sevemu {

class FdObject {
 public:
  virtual ~FdObject() = default;
  // Short name for traces ("sev").
  virtual const char* kind() const = 0;
  // Handles ioctl(fd, req, arg). Returns >= 0 on success or -errno.
  virtual long ioctl(int fd, unsigned long req, unsigned long arg) = 0;
  // fallocate(fd, mode, offset, len): 0 or -errno; kPassThrough leaves it to the real file.
  static constexpr long kPassThrough = LONG_MIN;
  virtual long fallocate(int fd, int mode, int64_t offset, int64_t len) {
    (void)fd, (void)mode, (void)offset, (void)len;
    return kPassThrough;
  }
};

namespace fd_table {

// Registers `fd` as referring to `obj` (replacing any stale entry for that number).
void insert(int fd, std::shared_ptr<FdObject> obj);
// The object behind `fd`, or null when the fd is not ours (the common, fast path).
std::shared_ptr<FdObject> lookup(int fd);
// Forgets `fd` (close, or the target of dup2/dup3). Returns whether it was ours.
bool remove(int fd);
// Forgets every fd in [first, last] (close_range).
void remove_range(unsigned first, unsigned last);
// True when no fd is registered, so interposed calls can skip the table entirely.
bool empty();

}  // namespace fd_table
}  // namespace sevemu
