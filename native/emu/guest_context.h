// The SEV firmware's guest contexts (SEV API spec 55766, chapter 6 "Guest Management"):
// handle, policy, guest state machine, transport keys, launch digest and measurement, and
// the guest commands KVM issues on them. Each command returns a firmware status
// (uapi::SEV_RET_*). Each guest has a memory key (VEK). Whether it is applied depends on the
// machine: on the software KVM (memory_encrypted) guest memory is really encrypted —
// LAUNCH_UPDATE_DATA encrypts in place, LAUNCH_SECRET writes ciphertext, DBG_* cross the
// boundary; with the host's real (non-SEV) KVM memory stays plaintext so that KVM can run the
// guest, and those commands measure, write and copy plaintext.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "common.h"
#include "firmware_state.h"
#include "launch_crypto.h"
#include "memory_crypt.h"

namespace sevemu::fw {

// GSTATE values (spec: "Guest States").
enum GuestState : uint32_t {
  kUninit = 0,
  kLupdate = 1,
  kLsecret = 2,
  kRunning = 3,
  kSupdate = 4,
  kRupdate = 5,
  kSent = 6,
};

// Guest policy bits (spec: "Guest Policy").
enum : uint32_t {
  kPolicyNoDbg = 1u << 0,
  kPolicyNoKs = 1u << 1,
  kPolicyEs = 1u << 2,
  kPolicyNoSend = 1u << 3,
  kPolicyDomain = 1u << 4,
  kPolicySev = 1u << 5,
};
inline uint8_t policy_api_major(uint32_t p) { return uint8_t(p >> 16); }
inline uint8_t policy_api_minor(uint32_t p) { return uint8_t(p >> 24); }

constexpr uint32_t kMeasureLen = 48;        // MEASURE(32) ‖ MNONCE(16)
constexpr uint32_t kAttestationLen = 0xD0;  // legacy ATTESTATION report

struct Guest {
  uint32_t handle = 0;
  uint32_t policy = 0;
  uint32_t asid = 0;  // 0 until ACTIVATE
  GuestState state = kUninit;
  launch::TransportKeys keys{};
  launch::Sha256 digest;  // GCTX.LD, over all LAUNCH_UPDATE_DATA/VMSA data in order
  uint8_t ld[32] = {};    // the digest as LAUNCH_MEASURE closed it
  uint8_t measure[32] = {};
  uint8_t api_major = 0, api_minor = 0, build = 0;  // the firmware the guest launched on
  std::shared_ptr<const MemoryKey> vek;  // the memory encryption key
  bool memory_encrypted = false;         // the machine applies the VEK to guest memory
};

// The PSP runs one command at a time (the kernel's sev_cmd_mutex). Held by the caller
// around every command below.
std::mutex& cmd_mutex();

struct StartArgs {
  uint32_t handle;  // 0: new keys; else share the keys of that guest (NOKS must be 0)
  uint32_t policy;
  const Bytes* dh_cert;  // null when DH_CERT_PADDR is 0
  const Bytes* session;  // null when SESSION_PADDR is 0
  bool encrypt_memory;   // the machine's memory controller applies the VEK (software KVM)
};

// LAUNCH_START: creates a guest in LUPDATE (PLATFORM_STATUS guest_count + 1).
int launch_start(NvSession& nv, const StartArgs& args, std::shared_ptr<Guest>& out);
// ACTIVATE: binds `asid`; `es_asid` tells whether it is in the SEV-ES range.
int activate(NvSession& nv, Guest& g, uint32_t asid, bool es_asid);
// DEACTIVATE + DECOMMISSION: the handle is freed (guest_count - 1).
void decommission(NvSession& nv, Guest& g);

// LAUNCH_UPDATE_DATA on user memory already checked by sev_pin_memory.
int launch_update_data(Guest& g, uint64_t addr, uint32_t len);
int launch_update_vmsa(Guest& g, const uint8_t* page, uint32_t len);
// LAUNCH_MEASURE: `out` null (address 0) or at least `len` bytes; `len` gets the length.
int launch_measure(Guest& g, uint8_t* out, uint32_t& len);
// LAUNCH_SECRET: `guest_addr` is pinned, writable user memory of `guest_len` bytes.
int launch_secret(Guest& g, const Bytes& hdr, const Bytes& trans, uint64_t guest_addr,
                  uint32_t guest_len);
int launch_finish(Guest& g);
// Migration: the state and policy checks and SEND_START's length query; the transfer itself is
// not modelled (UNSUPPORTED). `session_len` is SESSION_LEN in and out.
int send_start(Guest& g, uint32_t& session_len);
int send_step(Guest& g);  // SEND_UPDATE_DATA, SEND_FINISH, SEND_CANCEL
int receive_start(NvSession& nv, const StartArgs& args);
int receive_step(Guest& g);  // RECEIVE_UPDATE_DATA, RECEIVE_FINISH
// DBG_DECRYPT / DBG_ENCRYPT of one pinned page's worth of user memory.
int dbg(Guest& g, bool encrypt, uint64_t src, uint64_t dst, uint32_t len, bool* fault);
// ATTESTATION (API 0.23+): the report signed by the PEK into `out` (null: address 0).
int attestation(NvSession& nv, Guest& g, const uint8_t mnonce[16], uint8_t* out, uint32_t& len);

}  // namespace sevemu::fw
