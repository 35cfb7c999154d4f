// The platform-wide tables of the SEV firmware and of KVM that outlive one process: the
// live guest contexts (firmware handles: PLATFORM_STATUS guest_count, the WORKING state)
// and the ASIDs in use (kvm_amd's sev_asid_bitmap is one per host). They are kept in the
// state directory's file `guests`, one line per entry, written under the NvSession lock:
//   asid  <asid> <pid> <start-time>
//   guest <handle> <pid> <start-time> <policy> <asid or 0>
//   snp   <guest context> <pid> <start-time> 0 <asid or 0>     (SNP guests)
// An entry belongs to a process (pid plus its start time, so a recycled pid does not
// count); entries of processes that are gone are dropped whenever the file is read, as
// the kernel tears down a dead process's VMs (sev_vm_destroy).
#pragma once

#include <cstdint>

#include "firmware_state.h"

namespace sevemu::registry {

// Live guest contexts after pruning dead processes. Does not touch nv.state(), so
// NvSession::state() may call it.
uint32_t live_guests(NvSession& nv);
// Live SNP guest contexts (SNP_PLATFORM_STATUS guest_count).
uint32_t live_snp_guests(NvSession& nv);

// Lowest free ASID in [min, max] (sev_asid_new), recorded for this process; 0 if none.
uint32_t alloc_asid(NvSession& nv, uint32_t min, uint32_t max);
void free_asid(NvSession& nv, uint32_t asid);

// A new firmware handle (LAUNCH_START) with `policy`, or with `snp` a new SNP guest context
// (SNP_GCTX_CREATE), not yet bound to an ASID.
uint32_t add_guest(NvSession& nv, uint32_t policy, bool snp = false);
// Looks up a live guest of any process.
bool find_guest(NvSession& nv, uint32_t handle, uint32_t* policy, uint32_t* asid);
// Whether a guest other than this one (SEV handle or SNP context) is ACTIVATEd on `asid`.
bool asid_in_use(NvSession& nv, uint32_t asid, uint32_t handle, bool snp = false);
void bind_asid(NvSession& nv, uint32_t handle, uint32_t asid, bool snp = false);
// DECOMMISSION.
void remove_guest(NvSession& nv, uint32_t handle, bool snp = false);

}  // namespace sevemu::registry
