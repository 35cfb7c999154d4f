// A software VM's memory: its memslots (KVM_SET_USER_MEMORY_REGION, with the kernel's checks and
// errnos) and, for SEV guests, the private view of each memslot.
//
// Guest memory is the VMM's own mapping, given to Unicorn without a copy (uc_mem_map_ptr) at the
// guest-physical address. An SEV guest's private accesses (C-bit set, or paging off) go to a
// second mapping, the private view, at kPrivateAlias + GPA: the plaintext the guest sees. The
// VMM's mapping keeps the ciphertext, as the hardware's memory controller would: a page the
// guest reads privately is decrypted from it (and re-decrypted when the host changed it — garbage
// to the guest, there is no integrity on SEV/SEV-ES); a page the guest wrote privately is
// encrypted back into it when the vCPU leaves KVM_RUN.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include <linux/kvm.h>

#include "memory_crypt.h"
#include "kvm_vm.h"
#include "rmp.h"

namespace sevemu::softkvm {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPrivateAlias = 1ull << 50;  // Unicorn address of GPA x's private view: x + this
constexpr uint64_t kScratchAddr = 1ull << 51;   // one Unicorn page to complete MMIO accesses through
constexpr uint64_t kMaxGpa = kPrivateAlias;     // memslots must lie below the aliases

// A guest_memfd's memory (the kernel's gmem inode): the memfd behind the guest_memfd fd, mapped
// here for the engine. It lives as long as the fd or a memslot that was bound to it (the engine
// may still map it); whether a slot may still use it is Memslot::gmem_bound.
struct GmemInode {
  GmemInode(uint8_t* base, uint64_t size, uint64_t flags) : base(base), size(size), flags(flags), rmp(size / 4096) {}
  ~GmemInode();
  uint8_t* const base;
  const uint64_t size;
  const uint64_t flags;  // GUEST_MEMFD_FLAG_*
  // The RMP entries of its pages (SNP guests); a punched hole gives pages back to the host.
  std::vector<RmpEntry> rmp;
};

struct Memslot {
  uint32_t id = 0, flags = 0;
  uint64_t gpa = 0, size = 0, uaddr = 0;
  // KVM_MEM_GUEST_MEMFD: the slot's private pages (and, for an mmap-able guest_memfd, all its
  // pages: KVM_MEMSLOT_GMEM_ONLY) are guest_memfd's at `gmem_offset`. `gmem_bound` goes false
  // when the guest_memfd is closed (kvm_gmem_release: slot->gmem.file = NULL).
  std::shared_ptr<GmemInode> gmem;
  uint64_t gmem_offset = 0;
  std::atomic<bool> gmem_bound{false};
  std::weak_ptr<void> gmem_file;  // the GmemFile, to unbind when the slot is deleted
  ~Memslot();

  bool gmem_only() const;
  uint8_t* gmem_ptr(uint64_t a) const { return gmem->base + gmem_offset + (a - gpa); }
  // The RMP entry of the guest_memfd page behind `a` (a gmem slot's address).
  RmpEntry& rmp(uint64_t a) const { return gmem->rmp[uint64_t(gmem_ptr(a & ~(kPage - 1)) - gmem->base) / kPage]; }

  bool contains(uint64_t a) const { return a >= gpa && a - gpa < size; }
  uint8_t* host(uint64_t a) const { return reinterpret_cast<uint8_t*>(uaddr + (a - gpa)); }
  bool readonly() const { return flags & KVM_MEM_READONLY; }

  // The private view (plaintext) and, per page, the ciphertext it was derived from; created on
  // first use, then stable for the slot's life (Unicorn maps it).
  uint8_t* private_plain();
  uint8_t* private_seen() { private_plain(); return seen_; }
  std::vector<uint8_t>& private_valid() { private_plain(); return valid_; }

 private:
  std::once_flag once_;
  uint8_t* plain_ = nullptr;
  uint8_t* seen_ = nullptr;
  std::vector<uint8_t> valid_;
};

// The fields of struct kvm_userspace_memory_region2 the memslot code reads.
struct kvm_userspace_memory_region2_fields {
  uint32_t slot, flags;
  uint64_t guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset;
  uint32_t guest_memfd;
};

class SoftMemory : public GmemAccess {
 public:
  // What a memslot change needs from the VM (kvm_set_memory_region's VM facts).
  struct RegionRules {
    bool readonly_ok;  // kvm_arch_has_readonly_mem (not for VMs with protected state)
    uint32_t address_spaces;  // kvm_arch_nr_memslot_as_ids: 1 with private memory, else 2 (SMM)
    // kvm_gmem_bind for KVM_MEM_GUEST_MEMFD: fills the slot's gmem fields, or -errno. Called
    // with the change lock held, after the overlap checks, as in the kernel.
    std::function<long(Memslot& s, uint32_t fd, uint64_t offset)> bind;
    std::function<void(Memslot& s)> unbind;
  };
  // KVM_SET_USER_MEMORY_REGION(2) (kvm_set_memory_region): returns 0 or -errno.
  // `m` is a kvm_userspace_memory_region2 (the v1 struct zero-extended).
  long set_region(const kvm_userspace_memory_region2_fields& m, const RegionRules& rules);

  // Memory attributes (KVM_SET_MEMORY_ATTRIBUTES, kvm->mem_attr_array): whether gfn is private.
  // Callers hold a RunGuard or the change lock.
  bool is_private(uint64_t gfn) const;
  // Sets [start, end) (gfns) private or shared; running vCPUs leave the engine first (KVM zaps
  // the range's mappings). Returns 0.
  long set_private(uint64_t start, uint64_t end, bool priv);
  // kvm_gmem_populate for SNP_LAUNCH_UPDATE. gmem_pages_from: how many pages from `gfn` to the
  // end of its slot when that is a slot with a bound guest_memfd, else 0 (the caller's EINVAL).
  uint64_t gmem_pages_from(uint64_t gfn) override;
  // Runs `fn` on the guest_memfd page of `gfn` and its RMP entry under the change lock: -EINVAL
  // when the gfn is not private or its slot has no bound guest_memfd, else what `fn` returns.
  long with_gmem_page(uint64_t gfn, const std::function<long(uint8_t* page, RmpEntry& rmp)>& fn) override;

  // A guest_memfd bound to some slots was closed: stops the engines (their mappings of it go)
  // after `fn` ran under the change lock.
  void invalidate(const std::function<void()>& fn);

  // The slot holding `gpa`, or null (MMIO). Callers hold a RunGuard or the change lock.
  Memslot* find(uint64_t gpa) const;
  std::vector<std::shared_ptr<Memslot>> slots() const { return slots_; }
  uint64_t generation() const { return generation_; }

  // Running vCPUs hold a RunGuard while their engine executes (it maps the slots); a memslot
  // change kicks them (`kick_all`) and waits until none holds one, so no engine ever touches a
  // slot the VMM has removed — KVM's own guarantee.
  class RunGuard {
   public:
    explicit RunGuard(SoftMemory& m);
    ~RunGuard() { m_.lock_.unlock_shared(); }

   private:
    SoftMemory& m_;
  };
  void set_kicker(std::function<void()> kick_all) { kick_all_ = std::move(kick_all); }

  // The private view of an SEV guest's page at `gpa` (in slot `s`), made current: decrypted from
  // the host's ciphertext with `key` when not yet derived or when the host changed it. Returns
  // the plaintext page.
  uint8_t* private_page(Memslot& s, uint64_t gpa, const MemoryKey& key);
  // Encrypts a private page the guest wrote back into the host's mapping.
  void write_back(Memslot& s, uint64_t gpa, const MemoryKey& key);

 private:
  std::mutex change_mu_;                          // kvm->slots_lock: one change at a time
  std::vector<std::shared_ptr<Memslot>> slots_;  // changed only under an exclusive lock_
  uint64_t generation_ = 1;
  std::shared_mutex lock_;
  std::mutex pending_mu_;
  std::condition_variable pending_cv_;
  int pending_ = 0;  // memslot changes waiting: new RunGuards wait for them
  std::function<void()> kick_all_;
  std::mutex private_mu_;  // private views (several vCPUs)
  std::map<uint64_t, uint64_t> private_gfns_;  // private ranges: start gfn -> end gfn (exclusive)

  // Runs `fn` (which changes slots or attributes) with every engine stopped; the caller holds
  // change_mu_.
  void exclusive(const std::function<void()>& fn);
};


}  // namespace sevemu::softkvm
