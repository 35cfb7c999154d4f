// The SEV-SNP firmware's guest messages (SNP ABI spec 56860, "Guest Messages" and
// SNP_GUEST_REQUEST): MSG_REPORT_REQ (an attestation report signed by the VCEK of the reported
// TCB) and MSG_KEY_REQ (a derived key), for two callers —
//   a guest launched on the software machine: its request page arrives through the GHCB, is
//   AES-256-GCM encrypted with a VMPCK of its secrets page, and the answer goes back encrypted
//   (snp_guest_request);
//   `sev-emu run --guest`, where /dev/sev-guest stands for the guest kernel's driver and the
//   guest is described by environment variables (snp_guest.cc calls make_report/derive_key).
#pragma once

#include <cstdint>

#include "common.h"
#include "firmware_state.h"
#include "snp_launch.h"
#include "uapi/sev_guest.h"

namespace sevemu::fw {

// What a guest's reports and keys are made of: fixed by its launch.
struct SnpGuestFacts {
  uint8_t measurement[48] = {};
  uint64_t policy = 0x30000;
  uint8_t host_data[32] = {};
  uint8_t family_id[16] = {}, image_id[16] = {};
  uint32_t guest_svn = 0;
  uint32_t vmpl = 0;  // the lowest VMPL a request may ask for (the requesting VMPCK's)
  uint8_t id_key_digest[48] = {}, author_key_digest[48] = {};
  bool author_key = false;
  const uint8_t* report_id = nullptr;  // 32 bytes; null: derived from the chip and measurement
  uint64_t launch_tcb = 0;             // 0: the current TCB
};

// The facts of a guest launched on this platform, as seen by a request with VMPCK `vmpck`.
SnpGuestFacts facts_of(const SnpGuest& g, uint32_t vmpck);

// The firmware's answer to one guest message: a status and the payload after it.
struct GuestMessageReply {
  uint32_t status = 0;
  Bytes report;  // MSG_REPORT_RSP's report
  Bytes key;     // MSG_KEY_RSP's derived key
};

GuestMessageReply make_report(NvSession& nv, const SnpGuestFacts& g, const uapi::snp_report_req& req);
GuestMessageReply derive_key(NvSession& nv, const SnpGuestFacts& g, const uapi::snp_derived_key_req& req);

// SNP_GUEST_REQUEST on a running guest: `req` is the guest's 4 KiB request page (message header
// and encrypted payload), `resp` receives the encrypted response. Returns the firmware status:
// INVALID_GUEST_STATE before the launch finished; INVALID_PARAM for a header the firmware does
// not take (algorithm, version, sizes, a zero VMPCK) or a sequence number other than the next;
// AEAD_OFLOW when the VMPCK's sequence numbers are exhausted; for a payload that does not
// authenticate, INVALID_PARAM as well. The response page is written only on success.
int snp_guest_request(NvSession& nv, SnpGuest& g, const uint8_t* req, uint8_t* resp);

}  // namespace sevemu::fw
