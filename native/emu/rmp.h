// One entry of the Reverse Map Table (APM vol. 2, "SEV-SNP: Reverse Map Table"): who owns a
// 4 KiB page of host memory. A page starts hypervisor-owned (not assigned); the kernel's
// rmp_make_private assigns it to a guest's ASID at a GPA, the firmware's SNP_LAUNCH_UPDATE (or
// the guest's PVALIDATE) validates it. The emulator keeps one per guest_memfd page.
#pragma once

#include <cstdint>

namespace sevemu {

struct RmpEntry {
  bool assigned = false;   // guest-owned (else hypervisor-owned)
  bool validated = false;  // the guest may use it as private memory
  bool vmsa = false;
  uint32_t asid = 0;
  uint64_t gpa = 0;
};

}  // namespace sevemu
