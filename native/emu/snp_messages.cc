#include "snp_messages.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

#include "cpu_model.h"
#include "crypto.h"
#include "snp_ca.h"
#include "uapi/psp_sev.h"

namespace sevemu::fw {

using namespace uapi;

namespace {

constexpr size_t kReportSize = 0x4A0;  // ATTESTATION_REPORT, every version so far
constexpr size_t kSignedSize = 0x2A0;

void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = uint8_t(v >> (8 * i));
}

uint64_t get_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

}  // namespace

// REPORT version the firmware writes: 2 before ABI 1.55, 3 (CPUID fields) from 1.55, 5
// (mitigation vectors) from 1.57.
uint32_t report_version(const PlatformConfig& c) {
  if (c.api_major > 1 || c.api_minor >= 57) return 5;
  return c.api_minor >= 55 ? 3 : 2;
}

// MSG_REPORT_REQ (SNP ABI "Attestation Report" table), signed with the VCEK of the reported TCB.
GuestMessageReply make_report(NvSession& nv, const SnpGuestFacts& g, const snp_report_req& req) {
  GuestMessageReply out;
  bool rsvd_zero = true;
  for (uint8_t b : req.rsvd) rsvd_zero &= b == 0;
  if (req.vmpl > 3 || req.vmpl < g.vmpl || !rsvd_zero) {
    out.status = SEV_RET_INVALID_PARAM;
    return out;
  }
  const PlatformConfig& c = nv.config();
  const PlatformState& s = nv.state();
  uint64_t current = c.gen->snp_tcb;
  uint64_t reported = s.snp_reported_tcb ? s.snp_reported_tcb : current;
  uint64_t committed = s.snp_committed_tcb ? s.snp_committed_tcb : current;
  bool mask_chip_id = s.snp_config_flags & 1, mask_chip_key = s.snp_config_flags & 2;

  Bytes r(kReportSize, 0);
  uint8_t* p = r.data();
  put_le32(p + 0x00, report_version(c));
  put_le32(p + 0x04, g.guest_svn);
  put_le64(p + 0x08, g.policy);
  memcpy(p + 0x10, g.family_id, 16);
  memcpy(p + 0x20, g.image_id, 16);
  put_le32(p + 0x30, req.vmpl);
  put_le32(p + 0x34, 1);  // SIGNATURE_ALGO: ECDSA P-384 with SHA-384
  put_le64(p + 0x38, current);
  put_le64(p + 0x40, 1);  // PLATFORM_INFO: SMT enabled
  // Flags: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY (0 VCEK, 7 none).
  put_le32(p + 0x48, (g.author_key ? 1u : 0u) | (mask_chip_key ? 2u | 7u << 2 : 0u));
  memcpy(p + 0x50, req.user_data, 64);
  memcpy(p + 0x90, g.measurement, 48);
  memcpy(p + 0xC0, g.host_data, 32);
  memcpy(p + 0xE0, g.id_key_digest, 48);
  memcpy(p + 0x110, g.author_key_digest, 48);
  if (g.report_id) {
    memcpy(p + 0x140, g.report_id, 32);
  } else {
    Bytes id_input(g.measurement, g.measurement + 48);
    id_input.insert(id_input.end(), p + 0x08, p + 0x10);
    Bytes report_id = snp_ca::chip_derive(nv, "REPORT_ID", id_input);
    memcpy(p + 0x140, report_id.data(), 32);
  }
  memset(p + 0x160, 0xFF, 32);  // REPORT_ID_MA: no migration agent
  put_le64(p + 0x180, reported);
  if (report_version(c) >= 3) {
    uint32_t cpuid[4];
    cpu_model_cpuid(*c.gen, 1, 0, cpuid);
    uint32_t base_family = cpuid[0] >> 8 & 0xf, base_model = cpuid[0] >> 4 & 0xf;
    p[0x188] = uint8_t(base_family + (base_family == 0xf ? (cpuid[0] >> 20 & 0xff) : 0));
    p[0x189] = uint8_t((cpuid[0] >> 16 & 0xf) << 4 | base_model);
    p[0x18A] = uint8_t(cpuid[0] & 0xf);
  }
  if (!mask_chip_id) {
    const Bytes& chip = nv.get("chip_id.bin");
    memcpy(p + 0x1A0, chip.data(), 64);
  }
  put_le64(p + 0x1E0, committed);
  p[0x1E8] = c.build, p[0x1E9] = c.api_minor, p[0x1EA] = c.api_major;
  p[0x1EC] = c.build, p[0x1ED] = c.api_minor, p[0x1EE] = c.api_major;
  put_le64(p + 0x1F0, g.launch_tcb ? g.launch_tcb : current);  // LAUNCH_TCB
  if (!mask_chip_key) {
    crypto::Pkey vcek = snp_ca::vcek_key(nv, reported);
    Bytes r_be, s_be;
    crypto::ecdsa_sign(vcek.get(), EVP_sha384(), p, kSignedSize, r_be, s_be);
    Bytes r_le = crypto::be_to_le(r_be, 72), s_le = crypto::be_to_le(s_be, 72);
    memcpy(p + 0x2A0, r_le.data(), 72);
    memcpy(p + 0x2E8, s_le.data(), 72);
  }
  out.report = std::move(r);
  return out;
}

// MSG_KEY_REQ: a key derived from a root key (the VCEK's chip secret, or the guest's VMRK)
// and the guest fields GUEST_FIELD_SELECT names. The firmware's KDF is its own; this one
// (HMAC-SHA-384 over the chip secret) has the properties guests rely on: deterministic, and
// different whenever a selected field, the VMPL or the root differs.
GuestMessageReply derive_key(NvSession& nv, const SnpGuestFacts& g, const snp_derived_key_req& req) {
  GuestMessageReply out;
  uint64_t current = nv.config().gen->snp_tcb;
  uint32_t key_sel = req.root_key_select >> 1 & 3;
  bool tcb_ok = true;  // each SPL of the requested TCB at most the current one
  for (int i = 0; i < 8; i++) tcb_ok &= (req.tcb_version >> (8 * i) & 0xff) <= (current >> (8 * i) & 0xff);
  if ((req.root_key_select & ~7u) || key_sel == 3 || req.rsvd || (req.guest_field_select >> 7) ||
      req.vmpl > 3 || req.vmpl < g.vmpl || req.guest_svn > g.guest_svn || !tcb_ok) {
    out.status = SEV_RET_INVALID_PARAM;
    return out;
  }
  if (key_sel == 2) {  // VLEK: none is loaded on the emulated platform
    out.status = SEV_RET_INVALID_KEY;
    return out;
  }
  Bytes mix;
  auto add = [&](const void* data, size_t len) {
    const uint8_t* b = static_cast<const uint8_t*>(data);
    mix.insert(mix.end(), b, b + len);
  };
  uint8_t head[16];
  put_le32(head, req.root_key_select & 1);
  put_le32(head + 4, req.vmpl);
  put_le64(head + 8, req.guest_field_select);
  add(head, sizeof head);
  uint8_t num[8];
  if (req.root_key_select & 1) add(g.measurement, 48);  // the VMRK is per guest
  if (req.guest_field_select & 1) put_le64(num, g.policy), add(num, 8);
  if (req.guest_field_select & 2) add(g.image_id, 16);
  if (req.guest_field_select & 4) add(g.family_id, 16);
  if (req.guest_field_select & 8) add(g.measurement, 48);
  if (req.guest_field_select & 16) put_le32(num, req.guest_svn), add(num, 4);
  if (req.guest_field_select & 32) put_le64(num, req.tcb_version), add(num, 8);
  Bytes key = snp_ca::chip_derive(nv, "DERIVED_KEY", mix);
  out.key.assign(key.begin(), key.begin() + 32);
  return out;
}


SnpGuestFacts facts_of(const SnpGuest& g, uint32_t vmpck) {
  SnpGuestFacts f;
  memcpy(f.measurement, g.ld, sizeof f.measurement);
  f.policy = g.policy;
  memcpy(f.host_data, g.host_data, sizeof f.host_data);
  memcpy(f.family_id, g.family_id, sizeof f.family_id);
  memcpy(f.image_id, g.image_id, sizeof f.image_id);
  f.guest_svn = g.guest_svn;
  f.vmpl = vmpck;
  memcpy(f.id_key_digest, g.id_key_digest, sizeof f.id_key_digest);
  memcpy(f.author_key_digest, g.author_key_digest, sizeof f.author_key_digest);
  f.author_key = g.author_key_en;
  f.report_id = g.report_id;
  f.launch_tcb = g.launch_tcb;
  return f;
}

namespace {

// struct snp_guest_msg_hdr: AUTHTAG[32], MSG_SEQNO, reserved, ALGO, HDR_VERSION, HDR_SZ,
// MSG_TYPE, MSG_VERSION, MSG_SZ, reserved, MSG_VMPCK, reserved; the payload follows.
enum : size_t {
  kAuthTag = 0x00, kSeqno = 0x20, kAlgo = 0x30, kHdrVersion = 0x31, kHdrSz = 0x32, kMsgType = 0x34,
  kMsgVersion = 0x35, kMsgSz = 0x36, kMsgVmpck = 0x3c, kHeaderSize = 0x60,
};
constexpr size_t kPayloadMax = 4096 - kHeaderSize;
constexpr uint8_t kAlgoAes256Gcm = 1, kHdrVersion1 = 1;
constexpr uint8_t kMsgKeyReq = 3, kMsgReportReq = 5;
// The additional data is the header from ALGO on; the IV is the sequence number.
constexpr size_t kAadSize = kHeaderSize - kAlgo, kTagSize = 16;

// AES-256-GCM with the VMPCK; false when the tag does not verify.
bool gcm(bool encrypt, const uint8_t key[32], uint64_t seqno, const uint8_t* aad, const uint8_t* in, size_t len,
         uint8_t* out, uint8_t tag[kTagSize]) {
  uint8_t iv[12] = {};
  put_le64(iv, seqno);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) crypto::fail("AES-GCM");
  int n = 0;
  bool ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), nullptr, key, iv, encrypt ? 1 : 0) &&
            EVP_CipherUpdate(c, nullptr, &n, aad, int(kAadSize)) &&
            (len == 0 || EVP_CipherUpdate(c, out, &n, in, int(len)));
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kTagSize, tag);
  if (ok) ok = EVP_CipherFinal_ex(c, out + (len ? n : 0), &n);
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kTagSize, tag);
  EVP_CIPHER_CTX_free(c);
  return ok;
}

bool all_zero(const uint8_t* p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
}

}  // namespace

int snp_guest_request(NvSession& nv, SnpGuest& g, const uint8_t* req, uint8_t* resp) {
  if (g.state != kSnpRunning) return SEV_RET_INVALID_GUEST_STATE;
  const uint32_t vmpck = req[kMsgVmpck];
  const uint16_t msg_sz = uint16_t(req[kMsgSz] | req[kMsgSz + 1] << 8);
  const uint16_t hdr_sz = uint16_t(req[kHdrSz] | req[kHdrSz + 1] << 8);
  if (req[kAlgo] != kAlgoAes256Gcm || req[kHdrVersion] != kHdrVersion1 || hdr_sz != kHeaderSize ||
      msg_sz > kPayloadMax || !req[kMsgVersion] || vmpck > 3 || all_zero(g.vmpck[vmpck], 32))
    return SEV_RET_INVALID_PARAM;
  const uint64_t seqno = get_le64(req + kSeqno);
  if (g.msg_seqno[vmpck] >= UINT64_MAX - 1) return SEV_RET_AEAD_OFLOW;
  if (seqno != g.msg_seqno[vmpck] + 1) return SEV_RET_INVALID_PARAM;
  uint8_t plain[kPayloadMax];
  uint8_t tag[kTagSize];
  memcpy(tag, req + kAuthTag, kTagSize);
  if (!gcm(false, g.vmpck[vmpck], seqno, req + kAlgo, req + kHeaderSize, msg_sz, plain, tag)) {
    OPENSSL_cleanse(plain, sizeof plain);
    return SEV_RET_INVALID_PARAM;
  }
  const SnpGuestFacts facts = facts_of(g, vmpck);
  uint8_t answer[kPayloadMax] = {};
  size_t answer_len;
  switch (req[kMsgType]) {
    case kMsgReportReq: {
      if (msg_sz < sizeof(snp_report_req)) return SEV_RET_INVALID_PARAM;
      snp_report_req r;
      memcpy(&r, plain, sizeof r);
      GuestMessageReply reply = make_report(nv, facts, r);
      put_le32(answer, reply.status);
      put_le32(answer + 4, uint32_t(reply.report.size()));
      if (!reply.report.empty()) memcpy(answer + 32, reply.report.data(), reply.report.size());
      answer_len = 32 + kReportSize;
      break;
    }
    case kMsgKeyReq: {
      if (msg_sz < sizeof(snp_derived_key_req)) return SEV_RET_INVALID_PARAM;
      snp_derived_key_req k;
      memcpy(&k, plain, sizeof k);
      GuestMessageReply reply = derive_key(nv, facts, k);
      put_le32(answer, reply.status);
      if (!reply.key.empty()) memcpy(answer + 32, reply.key.data(), 32);
      OPENSSL_cleanse(reply.key.data(), reply.key.size());
      answer_len = 64;
      break;
    }
    default:
      OPENSSL_cleanse(plain, sizeof plain);
      return SEV_RET_INVALID_PARAM;
  }
  OPENSSL_cleanse(plain, sizeof plain);
  memset(resp, 0, 4096);
  memcpy(resp + kAlgo, req + kAlgo, kHeaderSize - kAlgo);  // algo, versions, sizes, VMPCK
  put_le64(resp + kSeqno, seqno + 1);
  resp[kMsgType] = uint8_t(req[kMsgType] + 1);
  resp[kMsgSz] = uint8_t(answer_len);
  resp[kMsgSz + 1] = uint8_t(answer_len >> 8);
  gcm(true, g.vmpck[vmpck], seqno + 1, resp + kAlgo, answer, answer_len, resp + kHeaderSize, resp + kAuthTag);
  OPENSSL_cleanse(answer, sizeof answer);
  g.msg_seqno[vmpck] = seqno + 1;
  return SEV_RET_SUCCESS;
}

}  // namespace sevemu::fw
