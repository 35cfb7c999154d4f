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

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include <linux/kvm.h>

#include "memory_crypt.h"

namespace sevemu::softkvm {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPrivateAlias = 1ull << 50;  // Unicorn address of GPA x's private view: x + this
constexpr uint64_t kScratchAddr = 1ull << 51;   // one Unicorn page to complete MMIO accesses through
constexpr uint64_t kMaxGpa = kPrivateAlias;     // memslots must lie below the aliases

struct Memslot {
  uint32_t id = 0, flags = 0;
  uint64_t gpa = 0, size = 0, uaddr = 0;
  ~Memslot();

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

class SoftMemory {
 public:
  // KVM_SET_USER_MEMORY_REGION (kvm_set_memory_region): returns 0 or -errno. `readonly_ok`:
  // kvm_arch_has_readonly_mem (not for VMs with protected state).
  long set_region(const kvm_userspace_memory_region& m, bool readonly_ok);

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
};

}  // namespace sevemu::softkvm
