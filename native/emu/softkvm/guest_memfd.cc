#include "guest_memfd.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common.h"
#include "real_libc.h"
#include "uapi/kvm_memory.h"
#include "user_mem.h"
#include "vm.h"

namespace sevemu::softkvm {

GmemFile::~GmemFile() {
  if (trace_enabled()) log_line("software KVM: guest_memfd released (%zu bindings)", bindings_.size());
  // kvm_gmem_release, under slots_lock: every binding's slot->gmem.file = NULL, and the mappings
  // of the file's pages are zapped (the engines stop; their next fill sees the slot unbound).
  vm_->memory.invalidate([this] {
    std::lock_guard<std::mutex> l(mu_);
    for (const Binding& b : bindings_) b.slot->gmem_bound.store(false);
    bindings_.clear();
  });
}

// kvm_gmem_fops has no unlocked_ioctl.
long GmemFile::ioctl(int, unsigned long, unsigned long) { return -ENOTTY; }

long GmemFile::fallocate(int fd, int mode, int64_t offset, int64_t len) {
  if (offset < 0 || len <= 0) return -EINVAL;  // vfs_fallocate
  if (!(mode & FALLOC_FL_KEEP_SIZE)) return -EOPNOTSUPP;
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -EOPNOTSUPP;
  if (offset % int64_t(kPage) || len % int64_t(kPage)) return -EINVAL;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    const uint64_t end = std::min<uint64_t>(uint64_t(offset) + uint64_t(len), inode_->size);
    if (uint64_t(offset) < end && syscall(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                                          int64_t(end - uint64_t(offset))) < 0)
      return -errno;
    // kvm_arch_gmem_invalidate: freed pages go back to the hypervisor (rmp_make_shared).
    for (uint64_t p = uint64_t(offset) / kPage; p < end / kPage; p++) inode_->rmp[p] = RmpEntry{};
    return 0;
  }
  if (uint64_t(offset) + uint64_t(len) > inode_->size) return -EINVAL;  // guest_memfd is immutable
  return 0;
}

long GmemFile::bind(const SoftVm* vm, Memslot& s, uint64_t offset) {
  if (vm != vm_.get()) return -EINVAL;  // f->kvm != kvm
  const uint64_t pages = s.size / kPage;
  if (offset % kPage || offset + s.size < offset || offset + s.size > inode_->size) return -EINVAL;
  const uint64_t start = offset / kPage, end = start + pages;
  std::lock_guard<std::mutex> l(mu_);
  for (const Binding& b : bindings_)
    if (start < b.end && b.start < end) return -EEXIST;
  bindings_.push_back({start, end, &s});
  s.gmem = inode_;
  s.gmem_offset = offset;
  s.gmem_bound.store(true);
  s.gmem_file = shared_from_this();
  return 0;
}

void GmemFile::unbind(const Memslot& s) {
  std::lock_guard<std::mutex> l(mu_);
  for (size_t i = 0; i < bindings_.size(); i++)
    if (bindings_[i].slot == &s) {
      bindings_.erase(bindings_.begin() + long(i));
      return;
    }
}

long create_guest_memfd(const std::shared_ptr<SoftVm>& vm, unsigned long arg) {
  uapi::kvm_create_guest_memfd args;
  if (copy_from_user(&args, arg, sizeof args)) return -EFAULT;
  // kvm_gmem_create: flags the VM supports (kvm_gmem_get_supported_flags), then a positive,
  // page-aligned size (loff_t: a size with bit 63 set is negative). The reserved words are not
  // checked.
  uint64_t supported = uapi::GMEM_FLAG_MMAP;
  if (!vm->has_private_mem()) supported |= uapi::GMEM_FLAG_INIT_SHARED;
  if (args.flags & ~supported) return -EINVAL;
  if (int64_t(args.size) <= 0 || args.size % kPage) return -EINVAL;
  // get_unused_fd_flags(0): the kernel's guest_memfd fd is not close-on-exec.
  int fd = memfd_create("kvm-gmem", 0);
  if (fd < 0) return -errno;
  if (ftruncate(fd, off_t(args.size)) < 0) {
    int e = errno;
    real::close(fd);
    return e == EFBIG || e == EINVAL ? -ENOMEM : -e;
  }
  void* p = mmap(nullptr, args.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    real::close(fd);
    return -ENOMEM;
  }
  auto inode = std::make_shared<GmemInode>(static_cast<uint8_t*>(p), args.size, args.flags);
  fd_table::insert(fd, std::make_shared<GmemFile>(vm, std::move(inode)));
  if (trace_enabled())
    log_line("software KVM: guest_memfd of 0x%llx bytes, flags 0x%llx (fd %d)", (unsigned long long)args.size,
             (unsigned long long)args.flags, fd);
  return fd;
}

}  // namespace sevemu::softkvm
