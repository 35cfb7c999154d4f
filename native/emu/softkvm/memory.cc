#include "memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace sevemu::softkvm {
namespace {

constexpr uint32_t kUserMemSlots = 32764;                // KVM_USER_MEM_SLOTS on x86
constexpr uint64_t kMaxNrPages = (1ull << 31) - 1;       // KVM_MEM_MAX_NR_PAGES
constexpr uint64_t kTaskSize = 0x00007ffffffff000ull;    // access_ok on x86-64 (4-level)
constexpr uint32_t kAddressSpaces = 2;                   // kvm_arch_nr_memslot_as_ids: SMM

uint8_t* anon(uint64_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
}

}  // namespace

Memslot::~Memslot() {
  if (plain_) munmap(plain_, size);
  if (seen_) munmap(seen_, size);
}

uint8_t* Memslot::private_plain() {
  std::call_once(once_, [this] {
    plain_ = anon(size);
    seen_ = anon(size);
    valid_.assign(size / kPage, 0);
  });
  return plain_;
}

SoftMemory::RunGuard::RunGuard(SoftMemory& m) : m_(m) {
  std::unique_lock<std::mutex> l(m.pending_mu_);
  m.pending_cv_.wait(l, [&] { return m.pending_ == 0; });
  l.unlock();
  m.lock_.lock_shared();
}

Memslot* SoftMemory::find(uint64_t gpa) const {
  for (const auto& s : slots_)
    if (s->contains(gpa)) return s.get();
  return nullptr;
}

long SoftMemory::set_region(const kvm_userspace_memory_region& m, bool readonly_ok) {
  uint32_t valid_flags = KVM_MEM_LOG_DIRTY_PAGES | (readonly_ok ? KVM_MEM_READONLY : 0);
  if (m.flags & ~valid_flags) return -EINVAL;
  const uint32_t as_id = m.slot >> 16, id = uint16_t(m.slot);
  if (id >= kUserMemSlots) return -EINVAL;
  if (m.memory_size % kPage || m.guest_phys_addr % kPage) return -EINVAL;
  if (m.userspace_addr % kPage || m.userspace_addr > kTaskSize || m.memory_size > kTaskSize - m.userspace_addr)
    return -EINVAL;
  if (as_id >= kAddressSpaces) return -EINVAL;
  if (m.guest_phys_addr + m.memory_size < m.guest_phys_addr) return -EINVAL;
  if (m.memory_size / kPage > kMaxNrPages) return -EINVAL;
  std::lock_guard<std::mutex> change(change_mu_);
  // The software machine has no System Management Mode: address space 1 is accepted and never
  // used by the CPU. Its slots are kept apart by their id's high half.
  std::shared_ptr<Memslot> old;
  for (const auto& s : slots_)
    if (s->id == m.slot) old = s;
  auto overlaps = [&](uint64_t gpa, uint64_t size) {
    for (const auto& s : slots_)
      if (s->id != m.slot && (s->id >> 16) == as_id && gpa < s->gpa + s->size && s->gpa < gpa + size) return true;
    return false;
  };
  if (m.memory_size == 0) {
    if (!old) return -EINVAL;
  } else if (old) {
    if (m.userspace_addr != old->uaddr || m.memory_size != old->size || ((m.flags ^ old->flags) & KVM_MEM_READONLY))
      return -EINVAL;
    if (m.guest_phys_addr == old->gpa && m.flags == old->flags) return 0;
    if (m.guest_phys_addr != old->gpa && overlaps(m.guest_phys_addr, m.memory_size)) return -EEXIST;
  } else if (overlaps(m.guest_phys_addr, m.memory_size)) {
    return -EEXIST;
  }
  // The machine cannot place memory where its own private and scratch mappings live.
  if (m.memory_size && m.guest_phys_addr + m.memory_size > kMaxGpa) return -EINVAL;

  // Stop every engine that maps the old slots, then change them.
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    pending_++;
  }
  if (kick_all_) kick_all_();
  lock_.lock();
  std::vector<std::shared_ptr<Memslot>> next;
  for (const auto& s : slots_)
    if (s != old) next.push_back(s);
  if (m.memory_size) {
    auto s = std::make_shared<Memslot>();
    s->id = m.slot;
    s->flags = m.flags;
    s->gpa = m.guest_phys_addr;
    s->size = m.memory_size;
    s->uaddr = m.userspace_addr;
    next.push_back(std::move(s));
  }
  slots_ = std::move(next);
  generation_++;
  lock_.unlock();
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    pending_--;
  }
  pending_cv_.notify_all();
  return 0;
}

uint8_t* SoftMemory::private_page(Memslot& s, uint64_t gpa, const MemoryKey& key) {
  const uint64_t page = (gpa & ~(kPage - 1)) - s.gpa, idx = page / kPage;
  uint8_t* plain = s.private_plain() + page;
  uint8_t* seen = s.private_seen() + page;
  const uint8_t* host = s.host(s.gpa + page);
  std::lock_guard<std::mutex> l(private_mu_);
  auto& valid = s.private_valid();
  if (!valid[idx] || memcmp(seen, host, kPage) != 0) {
    memcpy(seen, host, kPage);
    key.decrypt(s.uaddr + page, seen, plain, kPage);
    valid[idx] = 1;
  }
  return plain;
}

void SoftMemory::write_back(Memslot& s, uint64_t gpa, const MemoryKey& key) {
  const uint64_t page = (gpa & ~(kPage - 1)) - s.gpa;
  std::lock_guard<std::mutex> l(private_mu_);
  uint8_t* seen = s.private_seen() + page;
  key.encrypt(s.uaddr + page, s.private_plain() + page, seen, kPage);
  memcpy(s.host(s.gpa + page), seen, kPage);
  s.private_valid()[page / kPage] = 1;
}

}  // namespace sevemu::softkvm
