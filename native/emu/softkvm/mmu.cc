#include "mmu.h"

namespace sevemu::softkvm {
namespace {

enum : uint64_t {
  kP = 1, kRw = 2, kUs = 4, kA = 1u << 5, kD = 1u << 6, kPs = 1u << 7, kNx = 1ull << 63,
};
constexpr uint64_t kCr0Pg = 1ull << 31, kCr0Wp = 1ull << 16;
constexpr uint64_t kCr4Pse = 1ull << 4, kCr4Pae = 1ull << 5, kCr4La57 = 1ull << 12, kCr4Smep = 1ull << 20;
constexpr uint64_t kEferLma = 1ull << 10, kEferNxe = 1ull << 11;

struct Walk {
  const PagingState& ps;
  PageTableMemory& mem;
  Access access;
  bool update;
  uint64_t addr_mask;  // physical address bits of an entry (C-bit excluded)
  uint64_t rsvd;       // reserved physical bits of an entry
  bool user = true, writable = true, nx = false;

  // Reads the entry at `gpa`; false when no memory is there.
  bool read(uint64_t gpa, uint64_t** e) { return (*e = mem.entry(gpa)) != nullptr; }
  void combine(uint64_t e) {
    user &= bool(e & kUs);
    writable &= bool(e & kRw);
    nx |= bool(e & kNx);
  }
  void set_accessed(uint64_t gpa, uint64_t* e, bool leaf) {
    if (!update) return;
    uint64_t want = kA | (leaf && access == Access::kWrite ? uint64_t(kD) : 0);
    if ((*e & want) != want) {
      __atomic_fetch_or(e, want, __ATOMIC_RELAXED);
      mem.changed(gpa);
    }
  }
};

uint32_t fault_bits(const PagingState& ps, Access a) {
  uint32_t e = 0;
  if (a == Access::kWrite) e |= kPfWrite;
  if (ps.cpl == 3) e |= kPfUser;
  if (a == Access::kFetch && ((ps.efer & kEferNxe) || (ps.cr4 & kCr4Smep))) e |= kPfFetch;
  return e;
}

// Permission checks on the combined bits of a present translation.
bool allowed(const PagingState& ps, const Walk& w) {
  const bool user_mode = ps.cpl == 3;
  if (user_mode && !w.user) return false;
  if (w.access == Access::kWrite && !w.writable && (user_mode || (ps.cr0 & kCr0Wp))) return false;
  if (w.access == Access::kFetch) {
    if (w.nx && (ps.efer & kEferNxe)) return false;
    if (!user_mode && w.user && (ps.cr4 & kCr4Smep)) return false;
  }
  return true;
}

}  // namespace

WalkResult translate(const PagingState& ps, PageTableMemory& mem, uint64_t va, Access access, bool update,
                     Translation* out, uint32_t* error) {
  *out = Translation{};
  if (!(ps.cr0 & kCr0Pg)) {
    out->gpa = va & 0xffffffffull;
    out->private_access = ps.c_bit != 0;  // with paging off every SEV access is private
    out->writable = out->executable = true;
    return WalkResult::kOk;
  }
  const uint64_t c_mask = ps.c_bit ? (1ull << ps.c_bit) : 0;
  const uint64_t phys_bits = ((1ull << 52) - 1) & ~((1ull << ps.maxphyaddr) - 1);
  Walk w{ps, mem, access, update, 0, 0};
  w.rsvd = phys_bits & ~c_mask;
  *error = fault_bits(ps, access);

  const bool pae = ps.cr4 & kCr4Pae;
  const bool nxe = ps.efer & kEferNxe;
  if (!nxe) w.rsvd |= kNx;

  if (!pae) {
    // 32-bit paging: 4 KiB pages or 4 MiB pages (PSE, PSE-36). No C-bit: every access private.
    const uint32_t lin = uint32_t(va);
    uint64_t* pde;
    const uint64_t pde_gpa = (ps.cr3 & 0xfffff000u) + ((lin >> 22) << 2);
    if (!w.read(pde_gpa, &pde)) return WalkResult::kNoTable;
    const uint32_t d = uint32_t(*pde);
    if (!(d & kP)) return WalkResult::kFault;
    w.combine(d & ~uint64_t(kNx));
    uint64_t gpa;
    if ((d & kPs) && (ps.cr4 & kCr4Pse)) {
      const uint64_t high = uint64_t((d >> 13) & 0xff) << 32;
      if (high & phys_bits) return *error |= kPfPresent | kPfReserved, WalkResult::kFault;
      if (d & (1u << 21)) return *error |= kPfPresent | kPfReserved, WalkResult::kFault;
      if (!allowed(ps, w)) return *error |= kPfPresent, WalkResult::kFault;
      w.set_accessed(pde_gpa, pde, true);
      gpa = (d & 0xffc00000u) | high | (lin & 0x3fffff);
    } else {
      uint64_t* pte;
      const uint64_t pte_gpa = (d & 0xfffff000u) + (((lin >> 12) & 0x3ff) << 2);
      if (!w.read(pte_gpa, &pte)) return WalkResult::kNoTable;
      const uint32_t t = uint32_t(*pte);
      if (!(t & kP)) return WalkResult::kFault;
      w.combine(t);
      if (!allowed(ps, w)) return *error |= kPfPresent, WalkResult::kFault;
      w.set_accessed(pde_gpa, pde, false);
      w.set_accessed(pte_gpa, pte, true);
      gpa = (t & 0xfffff000u) | (lin & 0xfff);
    }
    out->gpa = gpa;
    out->private_access = ps.c_bit != 0;
    out->writable = w.writable || !(ps.cr0 & kCr0Wp);
    out->executable = true;
    return WalkResult::kOk;
  }

  // PAE and long mode: 64-bit entries, 9 bits per level.
  const uint64_t addr_bits = ((1ull << 52) - 1) & ~0xfffull & ~c_mask;
  int levels;
  uint64_t table;
  if (ps.efer & kEferLma) {
    levels = (ps.cr4 & kCr4La57) ? 5 : 4;
    table = ps.cr3 & addr_bits;
  } else {
    // PAE: four PDPTEs at CR3[31:5]; they have no R/W, U/S or NX bits.
    uint64_t* pdpte;
    const uint64_t pdpte_gpa = (ps.cr3 & 0xffffffe0u) + (((va >> 30) & 3) << 3);
    if (!w.read(pdpte_gpa, &pdpte)) return WalkResult::kNoTable;
    if (!(*pdpte & kP)) return WalkResult::kFault;
    if (*pdpte & (w.rsvd | 0x1e6 | kNx)) return *error |= kPfPresent | kPfReserved, WalkResult::kFault;
    levels = 2;
    table = *pdpte & addr_bits;
  }
  uint64_t* entries[5];
  uint64_t entry_gpa[5];
  bool private_leaf = true;
  for (int level = levels; level >= 1; level--) {
    const int shift = 12 + 9 * (level - 1);
    const uint64_t gpa = table + (((va >> shift) & 0x1ff) << 3);
    uint64_t* e;
    if (!w.read(gpa, &e)) return WalkResult::kNoTable;
    const uint64_t v = *e;
    entries[level - 1] = e;
    entry_gpa[level - 1] = gpa;
    if (!(v & kP)) return WalkResult::kFault;
    // PS is reserved in PML5E/PML4E; 1 GiB pages exist at the PDPT level.
    uint64_t rsvd = w.rsvd;
    if (level >= 4 || (level == 3 && !(ps.efer & kEferLma))) rsvd |= kPs;
    if (v & rsvd) return *error |= kPfPresent | kPfReserved, WalkResult::kFault;
    w.combine(v);
    const bool leaf = level == 1 || (v & kPs);
    if (!leaf) {
      table = v & addr_bits;
      continue;
    }
    const uint64_t page = 1ull << shift;
    // A large page's frame must be aligned (bits 12.. of the frame below the page size, minus PAT).
    if (level > 1 && (v & addr_bits & (page - 1) & ~0x1fffull))
      return *error |= kPfPresent | kPfReserved, WalkResult::kFault;
    if (!allowed(ps, w)) return *error |= kPfPresent, WalkResult::kFault;
    for (int l = levels; l > level; l--) w.set_accessed(entry_gpa[l - 1], entries[l - 1], false);
    w.set_accessed(gpa, e, true);
    private_leaf = c_mask ? bool(v & c_mask) : false;
    out->gpa = (v & addr_bits & ~(page - 1)) | (va & (page - 1));
    break;
  }
  out->private_access = private_leaf;
  out->writable = w.writable || (ps.cpl != 3 && !(ps.cr0 & kCr0Wp));
  out->executable = !(w.nx && nxe) && !(ps.cpl != 3 && w.user && (ps.cr4 & kCr4Smep));
  if (ps.cpl == 3 && !w.user) out->executable = false;
  return WalkResult::kOk;
}

}  // namespace sevemu::softkvm
