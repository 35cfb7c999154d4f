// The guest's own page-table walk (AMD APM vol. 2 ch. 5): paging off, 32-bit, PAE, 4- and
// 5-level long mode; large pages; present/write/user/NX/WP/SMEP checks; reserved bits above
// MAXPHYADDR; accessed and dirty bits; and SEV's C-bit, which is not a reserved bit in an SEV
// guest but selects private (C=1) or shared (C=0) memory, and is stripped from the address.
// Unicorn's own walk knows no C-bit, so the software KVM walks for it (UC_TLB_VIRTUAL).
#pragma once

#include <cstdint>

namespace sevemu::softkvm {

enum class Access { kRead, kWrite, kFetch };

struct PagingState {
  uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
  int cpl = 0;
  unsigned maxphyaddr = 48;
  unsigned c_bit = 0;  // SEV guests: the C-bit position; 0 otherwise
};

// Where the walk reads and updates page-table entries: guest-physical → host pointer (null when
// no memory is there), and a note that an entry was changed (accessed/dirty bits).
class PageTableMemory {
 public:
  virtual ~PageTableMemory() = default;
  virtual uint64_t* entry(uint64_t gpa) = 0;
  virtual void changed(uint64_t gpa) = 0;
};

struct Translation {
  uint64_t gpa = 0;
  bool private_access = false;  // SEV: C-bit set, or paging off
  bool writable = false, executable = false;
};

enum class WalkResult { kOk, kFault, kNoTable };

// #PF error code bits.
enum : uint32_t { kPfPresent = 1, kPfWrite = 2, kPfUser = 4, kPfReserved = 8, kPfFetch = 16 };

// Translates linear address `va` for `access`. kFault sets *error (the #PF error code); kNoTable
// means a table lies outside guest memory. With `update` the accessed (and for writes dirty)
// bits are set as the hardware would.
WalkResult translate(const PagingState& ps, PageTableMemory& mem, uint64_t va, Access access, bool update,
                     Translation* out, uint32_t* error);

}  // namespace sevemu::softkvm
