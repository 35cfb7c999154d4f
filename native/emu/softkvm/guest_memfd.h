// guest_memfd (virt/kvm/guest_memfd.c): the fd KVM_CREATE_GUEST_MEMFD returns, which holds a VM's
// private memory. Here it is a memfd of the requested size (so fstat, fallocate and close behave
// as on a file), mapped by the emulator; memslots made with KVM_MEM_GUEST_MEMFD take their
// private pages (all pages, for GUEST_MEMFD_FLAG_MMAP) from it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "fd_table.h"
#include "memory.h"

namespace sevemu::softkvm {

class SoftVm;

class GmemFile : public FdObject, public std::enable_shared_from_this<GmemFile> {
 public:
  GmemFile(std::shared_ptr<SoftVm> vm, std::shared_ptr<GmemInode> inode) : vm_(std::move(vm)), inode_(std::move(inode)) {}
  // kvm_gmem_release: the slots bound to it lose it (a later private access is a memory fault).
  ~GmemFile() override;
  const char* kind() const override { return "kvm-gmem"; }
  long ioctl(int, unsigned long, unsigned long) override;
  // kvm_gmem_fallocate: KEEP_SIZE required (EOPNOTSUPP), only PUNCH_HOLE besides, page-aligned
  // (EINVAL); allocation within the size only. A punched range reads as zeros again.
  long fallocate(int fd, int mode, int64_t offset, int64_t len) override;

  // kvm_gmem_bind: -EINVAL when the file belongs to another VM or the range does not fit,
  // -EEXIST when part of it is bound to another slot.
  long bind(const SoftVm* vm, Memslot& s, uint64_t offset);
  void unbind(const Memslot& s);

 private:
  struct Binding {
    uint64_t start, end;  // pages of the file
    Memslot* slot;
  };
  std::shared_ptr<SoftVm> vm_;  // a guest_memfd keeps its VM alive (kvm_get_kvm)
  std::shared_ptr<GmemInode> inode_;
  std::mutex mu_;
  std::vector<Binding> bindings_;
};

// KVM_CREATE_GUEST_MEMFD on `vm`: the new fd or -errno.
long create_guest_memfd(const std::shared_ptr<SoftVm>& vm, unsigned long arg);

}  // namespace sevemu::softkvm
