// The SEV-SNP firmware's guest contexts (SNP ABI spec 56860, "Guest Management"): what
// SNP_GCTX_CREATE, SNP_LAUNCH_START, SNP_ACTIVATE, SNP_LAUNCH_UPDATE, SNP_LAUNCH_FINISH and
// SNP_DECOMMISSION do to one guest. The launch digest is the firmware's SHA-384 chain over
// PAGE_INFO structures (the owner side computes the same chain in lib/snp/gctx.ts):
//   0x00 current digest [48]   0x30 contents [48] (SHA-384 of NORMAL and VMSA pages, else 0)
//   0x60 u16 length 0x70       0x62 u8 page type  0x63 u8 IMI page  0x64 VMPL3..1 perms, rsvd
//   0x68 u64 GPA
// Each command returns a firmware status (uapi::SEV_RET_*); the caller holds fw::cmd_mutex().
#pragma once

#include <cstdint>
#include <memory>

#include "common.h"
#include "firmware_state.h"
#include "memory_crypt.h"

namespace sevemu::fw {

constexpr size_t kSnpDigestSize = 48;
constexpr size_t kSnpIdBlockSize = 96, kSnpIdAuthSize = 4096;
// INITIAL_VMSA_GPA: the GPA the kernel gives VMSA pages in the RMP (and so in PAGE_INFO).
constexpr uint64_t kSnpVmsaGpa = 0xFFFFFFFFF000ull;

// PAGE_TYPE of SNP_LAUNCH_UPDATE (the kernel's KVM_SEV_SNP_PAGE_TYPE_* use the same numbers).
enum SnpPageType : uint8_t {
  kSnpPageNormal = 1,
  kSnpPageVmsa = 2,
  kSnpPageZero = 3,
  kSnpPageUnmeasured = 4,
  kSnpPageSecrets = 5,
  kSnpPageCpuid = 6,
};

// GSTATE of an SNP guest.
enum SnpGuestState : uint8_t { kSnpInit = 0, kSnpLaunch = 1, kSnpRunning = 2 };

// Guest policy bits the firmware looks at.
constexpr uint64_t kSnpPolicySmt = 1ull << 16, kSnpPolicyMbo = 1ull << 17, kSnpPolicyDebug = 1ull << 19,
                   kSnpPolicySingleSocket = 1ull << 20;

struct SnpGuest {
  uint32_t id = 0;  // the guest context, as the platform's guest registry knows it
  uint32_t asid = 0;
  SnpGuestState state = kSnpInit;
  uint64_t policy = 0;
  uint8_t gosvw[16] = {};
  uint8_t ld[kSnpDigestSize] = {};  // GCTX.LD
  uint8_t api_major = 0, api_minor = 0, build = 0;  // the firmware at launch (report: LAUNCH_*)
  uint64_t launch_tcb = 0;
  uint8_t vmpck[4][32] = {};  // the VM platform communication keys, also in the secrets page
  uint64_t msg_seqno[4] = {};  // per VMPCK: the last guest message sequence number used
  uint8_t report_id[32] = {};
  // SNP_LAUNCH_FINISH's inputs, reported in every attestation report.
  bool id_block_en = false, author_key_en = false, vcek_disabled = false;
  uint8_t host_data[32] = {}, family_id[16] = {}, image_id[16] = {};
  uint8_t id_key_digest[kSnpDigestSize] = {}, author_key_digest[kSnpDigestSize] = {};
  uint32_t guest_svn = 0;
  std::shared_ptr<const MemoryKey> vek;
  ~SnpGuest();
};

// SNP_GCTX_CREATE + SNP_LAUNCH_START: a new guest in GSTATE_LAUNCH. Checks the policy against
// this firmware and platform (ABI version, SMT, single socket): POLICY_FAILURE.
int snp_launch_start(NvSession& nv, uint64_t policy, const uint8_t gosvw[16], std::shared_ptr<SnpGuest>& out);
// SNP_ACTIVATE: binds `asid` (ASID_OWNED when another guest has it).
int snp_activate(NvSession& nv, SnpGuest& g, uint32_t asid);
// SNP_LAUNCH_UPDATE of the 4 KiB page `page` (already in the guest's memory, assigned to it in
// the RMP at `gpa`): ZERO pages are cleared, SECRETS pages filled, CPUID pages checked — on
// values the platform refuses the page is rewritten with what it accepts and the status is
// INVALID_PARAM. The page is then measured.
int snp_launch_update(SnpGuest& g, uint8_t type, uint64_t gpa, uint8_t* page);
// SNP_LAUNCH_FINISH: with `id_block`/`id_auth` (null when ID_BLOCK_EN is 0), their signatures
// (BAD_SIGNATURE), digest (BAD_MEASUREMENT) and policy (POLICY_FAILURE) are checked first.
int snp_launch_finish(SnpGuest& g, const uint8_t* id_block, const uint8_t* id_auth, bool auth_key_en,
                      bool vcek_disabled, const uint8_t host_data[32]);
// SNP_DECOMMISSION: the guest context is freed.
void snp_decommission(NvSession& nv, SnpGuest& g);

}  // namespace sevemu::fw
