#include "memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "uapi/kvm_memory.h"

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

GmemInode::~GmemInode() { munmap(base, size); }

bool Memslot::gmem_only() const { return gmem && (gmem->flags & uapi::GMEM_FLAG_MMAP); }

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

long SoftMemory::set_region(const kvm_userspace_memory_region2_fields& m, const RegionRules& rules) {
  // check_memory_region_flags: guest_memfd slots have no dirty logging and are never read-only.
  const bool gmem = m.flags & uapi::MEM_GUEST_MEMFD;
  uint32_t valid_flags = uapi::MEM_GUEST_MEMFD;
  if (!gmem) valid_flags |= KVM_MEM_LOG_DIRTY_PAGES;
  if (rules.readonly_ok && !gmem) valid_flags |= KVM_MEM_READONLY;
  if (m.flags & ~valid_flags) return -EINVAL;
  const uint32_t as_id = m.slot >> 16, id = uint16_t(m.slot);
  if (m.memory_size % kPage || m.guest_phys_addr % kPage) return -EINVAL;
  if (m.userspace_addr % kPage || m.userspace_addr > kTaskSize || m.memory_size > kTaskSize - m.userspace_addr)
    return -EINVAL;
  if (gmem && (m.guest_memfd_offset % kPage || m.guest_memfd_offset + m.memory_size < m.guest_memfd_offset))
    return -EINVAL;
  if (as_id >= rules.address_spaces || id >= kUserMemSlots) return -EINVAL;
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
    if (gmem) return -EINVAL;  // private memslots are immutable: they can only be deleted
    if (m.userspace_addr != old->uaddr || m.memory_size != old->size ||
        ((m.flags ^ old->flags) & (KVM_MEM_READONLY | uapi::MEM_GUEST_MEMFD)))
      return -EINVAL;
    if (m.guest_phys_addr == old->gpa && m.flags == old->flags) return 0;
    if (m.guest_phys_addr != old->gpa && overlaps(m.guest_phys_addr, m.memory_size)) return -EEXIST;
  } else if (overlaps(m.guest_phys_addr, m.memory_size)) {
    return -EEXIST;
  }
  // The machine cannot place memory where its own private and scratch mappings live.
  if (m.memory_size && m.guest_phys_addr + m.memory_size > kMaxGpa) return -EINVAL;

  std::shared_ptr<Memslot> fresh;
  if (m.memory_size) {
    fresh = std::make_shared<Memslot>();
    fresh->id = m.slot;
    fresh->flags = m.flags;
    fresh->gpa = m.guest_phys_addr;
    fresh->size = m.memory_size;
    fresh->uaddr = m.userspace_addr;
    if (gmem) {
      if (!rules.bind) return -EINVAL;
      if (long r = rules.bind(*fresh, m.guest_memfd, m.guest_memfd_offset); r < 0) return r;
    }
  }
  if (old && old->gmem && !fresh && rules.unbind) rules.unbind(*old);

  // Stop every engine that maps the old slots, then change them.
  exclusive([&] {
    std::vector<std::shared_ptr<Memslot>> next;
    for (const auto& s : slots_)
      if (s != old) next.push_back(s);
    if (fresh) next.push_back(std::move(fresh));
    slots_ = std::move(next);
  });
  return 0;
}

void SoftMemory::exclusive(const std::function<void()>& fn) {
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    pending_++;
  }
  if (kick_all_) kick_all_();
  lock_.lock();
  fn();
  generation_++;
  lock_.unlock();
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    pending_--;
  }
  pending_cv_.notify_all();
}

void SoftMemory::invalidate(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> change(change_mu_);
  exclusive(fn);
}

uint64_t SoftMemory::gmem_pages_from(uint64_t gfn) {
  std::lock_guard<std::mutex> change(change_mu_);
  const Memslot* s = find(gfn * kPage);
  if (!s || !s->gmem || !s->gmem_bound.load()) return 0;
  return (s->gpa + s->size) / kPage - gfn;
}

long SoftMemory::with_gmem_page(uint64_t gfn, const std::function<long(uint8_t*, RmpEntry&)>& fn) {
  std::lock_guard<std::mutex> change(change_mu_);
  const Memslot* s = find(gfn * kPage);
  if (!s || !s->gmem || !s->gmem_bound.load() || !is_private(gfn)) return -EINVAL;
  uint8_t* page = s->gmem_ptr(gfn * kPage);
  return fn(page, s->rmp(gfn * kPage));
}

bool SoftMemory::is_private(uint64_t gfn) const {
  auto it = private_gfns_.upper_bound(gfn);
  if (it == private_gfns_.begin()) return false;
  --it;
  return gfn < it->second;
}

long SoftMemory::set_private(uint64_t start, uint64_t end, bool priv) {
  std::lock_guard<std::mutex> change(change_mu_);
  // kvm_vm_set_mem_attributes: nothing to do when the whole range already has the attributes.
  bool all = true;
  for (uint64_t g = start; g < end && all;) {
    auto it = private_gfns_.upper_bound(g);
    bool in = false;
    uint64_t next = end;
    if (it != private_gfns_.begin()) {
      auto p = std::prev(it);
      if (g < p->second) {
        in = true;
        next = std::min(end, p->second);
      }
    }
    if (!in && it != private_gfns_.end()) next = std::min(end, it->first);
    if (in != priv) all = false;
    g = next;
  }
  if (all) return 0;
  exclusive([&] {
    // Cut [start, end) out of every range, then add it back when private; merge neighbours.
    std::map<uint64_t, uint64_t> next;
    for (const auto& [a, b] : private_gfns_) {
      if (b <= start || a >= end) {
        next[a] = b;
        continue;
      }
      if (a < start) next[a] = start;
      if (b > end) next[end] = b;
    }
    if (priv) next[start] = end;
    private_gfns_.clear();
    for (const auto& [a, b] : next) {
      if (!private_gfns_.empty() && std::prev(private_gfns_.end())->second == a)
        std::prev(private_gfns_.end())->second = b;
      else
        private_gfns_[a] = b;
    }
  });
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
