#include "guest_context.h"

#include <openssl/crypto.h>

#include <cstring>
#include <map>

#include "crypto.h"
#include "guest_registry.h"
#include "sev_cert.h"
#include "uapi/psp_sev.h"
#include "user_mem.h"

namespace sevemu::fw {

using namespace uapi;

std::mutex& cmd_mutex() {
  static std::mutex* m = new std::mutex;  // never destroyed: VMs may close during exit
  return *m;
}

namespace {

// Guests launched in this process, by handle: LAUNCH_START with a non-zero HANDLE shares that
// guest's memory key (a guest of another process gets a key of its own). Under cmd_mutex().
std::map<uint32_t, std::weak_ptr<Guest>>& live_guests() {
  static auto* m = new std::map<uint32_t, std::weak_ptr<Guest>>;
  return *m;
}

bool api_at_least(const PlatformConfig& c, uint8_t major, uint8_t minor) {
  return c.api_major > major || (c.api_major == major && c.api_minor >= minor);
}

// What LAUNCH_START and RECEIVE_START check before creating a guest (spec 6.2, 6.17): the
// platform must be INIT or WORKING; the policy's minimum API version must not exceed the
// firmware's; a non-zero HANDLE shares that guest's keys, which NOKS in either policy forbids.
// With a DH certificate the TEK/TIK come from the session blob (wrap_mac / policy_mac
// checked), otherwise they are random.
int start_keys(NvSession& nv, const StartArgs& a, launch::TransportKeys& keys) {
  if (!nv.state().sev_init) return SEV_RET_INVALID_PLATFORM_STATE;
  const PlatformConfig& cfg = nv.config();
  if (a.handle != 0) {
    uint32_t other = 0;
    if (!registry::find_guest(nv, a.handle, &other, nullptr)) return SEV_RET_INVALID_GUEST;
    if ((other | a.policy) & kPolicyNoKs) return SEV_RET_POLICY_FAILURE;
  }
  if (!api_at_least(cfg, policy_api_major(a.policy), policy_api_minor(a.policy)))
    return SEV_RET_POLICY_FAILURE;
  if ((a.policy & kPolicyEs) && !cfg.gen->es) return SEV_RET_POLICY_FAILURE;
  if (!a.dh_cert) {
    Bytes k = crypto::random_bytes(32);
    memcpy(keys.tek, k.data(), 16);
    memcpy(keys.tik, k.data() + 16, 16);
    OPENSSL_cleanse(k.data(), k.size());
    return SEV_RET_SUCCESS;
  }
  if (!a.session || a.session->size() < launch::kSessionLen) return SEV_RET_INVALID_LEN;
  crypto::Pkey pdh = crypto::private_from_pem(nv.get_text("pdh.pem"));
  switch (launch::unwrap_session(pdh.get(), a.dh_cert->data(), a.dh_cert->size(),
                                 a.session->data(), a.policy, keys)) {
    case launch::UnwrapResult::kOk:
      return SEV_RET_SUCCESS;
    case launch::UnwrapResult::kBadCert:
      return SEV_RET_INVALID_CERTIFICATE;
    case launch::UnwrapResult::kBadMac:
      return SEV_RET_BAD_MEASUREMENT;
  }
  return SEV_RET_INVALID_CERTIFICATE;
}

}  // namespace

// LAUNCH_START (spec 6.2): start_keys' checks, then a new guest in LUPDATE.
int launch_start(NvSession& nv, const StartArgs& a, std::shared_ptr<Guest>& out) {
  auto g = std::make_shared<Guest>();
  if (int status = start_keys(nv, a, g->keys)) return status;
  const PlatformConfig& cfg = nv.config();
  g->policy = a.policy;
  g->api_major = cfg.api_major;
  g->api_minor = cfg.api_minor;
  g->build = cfg.build;
  if (a.handle != 0) {
    auto it = live_guests().find(a.handle);
    if (it != live_guests().end())
      if (auto other = it->second.lock()) g->vek = other->vek;
  }
  if (!g->vek) g->vek = MemoryKey::generate();
  g->memory_encrypted = a.encrypt_memory;
  g->handle = registry::add_guest(nv, a.policy);
  g->state = kLupdate;
  live_guests()[g->handle] = g;
  out = std::move(g);
  return SEV_RET_SUCCESS;
}

// ACTIVATE: the ASID must not belong to another guest (ASID_OWNED), and SEV-ES guests
// (policy ES) take ASIDs below the minimum SEV ASID, SEV guests ASIDs at or above it.
int activate(NvSession& nv, Guest& g, uint32_t asid, bool es_asid) {
  if (registry::asid_in_use(nv, asid, g.handle)) return SEV_RET_ASID_OWNED;
  if (bool(g.policy & kPolicyEs) != es_asid) return SEV_RET_POLICY_FAILURE;
  registry::bind_asid(nv, g.handle, asid);
  g.asid = asid;
  return SEV_RET_SUCCESS;
}

void decommission(NvSession& nv, Guest& g) {
  if (!g.handle) return;
  registry::remove_guest(nv, g.handle);
  live_guests().erase(g.handle);
  OPENSSL_cleanse(&g.keys, sizeof g.keys);
  g.handle = 0;
  g.asid = 0;
  g.state = kUninit;
}

// LAUNCH_UPDATE_DATA: LUPDATE only; PADDR 16-byte aligned, LEN a multiple of 16. The data
// goes into the launch digest (hashed where it lies: no copy), then is encrypted in place.
int launch_update_data(Guest& g, uint64_t addr, uint32_t len) {
  if (g.state != kLupdate) return SEV_RET_INVALID_GUEST_STATE;
  if (addr % 16) return SEV_RET_INVALID_ADDRESS;
  if (len % 16) return SEV_RET_INVALID_LEN;
  auto* p = reinterpret_cast<uint8_t*>(addr);  // pinned and writable (sev_pin_memory)
  g.digest.update(p, len);
  if (g.memory_encrypted) g.vek->encrypt(addr, p, p, len);
  return SEV_RET_SUCCESS;
}

int launch_update_vmsa(Guest& g, const uint8_t* page, uint32_t len) {
  if (g.state != kLupdate) return SEV_RET_INVALID_GUEST_STATE;
  if (!(g.policy & kPolicyEs)) return SEV_RET_INVALID_GUEST;
  g.digest.update(page, len);
  return SEV_RET_SUCCESS;
}

// LAUNCH_MEASURE: a buffer shorter than 48 bytes (or none) → INVALID_LEN with the length
// required; else LUPDATE → LSECRET and MEASURE ‖ MNONCE.
int launch_measure(Guest& g, uint8_t* out, uint32_t& len) {
  if (!out || len < kMeasureLen) {
    len = kMeasureLen;
    return SEV_RET_INVALID_LEN;
  }
  if (g.state != kLupdate) return SEV_RET_INVALID_GUEST_STATE;
  g.digest.peek(g.ld);
  Bytes mnonce = crypto::random_bytes(16);
  launch::measurement(g.keys.tik, g.api_major, g.api_minor, g.build, g.policy, g.ld,
                      mnonce.data(), g.measure);
  memcpy(out, g.measure, 32);
  memcpy(out + 32, mnonce.data(), 16);
  len = kMeasureLen;
  g.state = kLsecret;
  return SEV_RET_SUCCESS;
}

// LAUNCH_SECRET: LSECRET only. Header FLAGS ‖ IV ‖ MAC; the MAC binds the packet to the
// launch measurement; the payload is AES-128-CTR under the TEK and lands in guest memory.
int launch_secret(Guest& g, const Bytes& hdr, const Bytes& trans, uint64_t guest_addr,
                  uint32_t guest_len) {
  if (g.state != kLsecret) return SEV_RET_INVALID_GUEST_STATE;
  if (hdr.size() < launch::kSecretHdrLen) return SEV_RET_INVALID_LEN;
  if (guest_addr % 16) return SEV_RET_INVALID_ADDRESS;
  if (guest_len % 16 || trans.size() != guest_len) return SEV_RET_INVALID_LEN;
  uint32_t flags = get_le32(hdr.data());
  const uint8_t* iv = hdr.data() + 4;
  const uint8_t* mac = hdr.data() + 20;
  uint8_t want[32];
  launch::secret_mac(g.keys.tik, flags, iv, guest_len, trans.data(), uint32_t(trans.size()),
                     g.measure, want);
  if (!launch::equal(want, mac, 32)) return SEV_RET_BAD_MEASUREMENT;
  Bytes plain(trans.size());
  launch::aes128_ctr(g.keys.tek, iv, trans.data(), trans.size(), plain.data());
  if (g.memory_encrypted) g.vek->encrypt(guest_addr, plain.data(), plain.data(), plain.size());
  int rc = copy_to_user(guest_addr, plain.data(), plain.size());
  OPENSSL_cleanse(plain.data(), plain.size());
  // The page was pinned for writing: a failure here means it vanished meanwhile.
  return rc ? SEV_RET_INVALID_ADDRESS : SEV_RET_SUCCESS;
}

int launch_finish(Guest& g) {
  if (g.state != kLsecret) return SEV_RET_INVALID_GUEST_STATE;
  g.state = kRunning;
  return SEV_RET_SUCCESS;
}

// SEND_START (spec 6.12): a RUNNING guest whose policy allows sending; SESSION_LEN too small
// for the session (the structure LAUNCH_START takes) is INVALID_LEN with the length written
// back — the length query QEMU makes. The model does not export guests, so a well-formed
// SEND_START answers UNSUPPORTED, and no guest ever reaches SUPDATE.
int send_start(Guest& g, uint32_t& session_len) {
  if (g.state != kRunning) return SEV_RET_INVALID_GUEST_STATE;
  if (g.policy & kPolicyNoSend) return SEV_RET_POLICY_FAILURE;
  if (session_len < launch::kSessionLen) {
    session_len = uint32_t(launch::kSessionLen);
    return SEV_RET_INVALID_LEN;
  }
  return SEV_RET_UNSUPPORTED;
}

// SEND_UPDATE_DATA, SEND_FINISH, SEND_CANCEL: only in SUPDATE, which SEND_START never reaches.
int send_step(Guest& g) {
  return g.state == kSupdate ? SEV_RET_UNSUPPORTED : SEV_RET_INVALID_GUEST_STATE;
}

// RECEIVE_START (spec 6.17): LAUNCH_START's checks and session unwrap; importing a guest is
// not modelled (UNSUPPORTED), so no guest ever reaches RUPDATE.
int receive_start(NvSession& nv, const StartArgs& a) {
  launch::TransportKeys keys{};
  int status = start_keys(nv, a, keys);
  OPENSSL_cleanse(&keys, sizeof keys);
  return status ? status : SEV_RET_UNSUPPORTED;
}

// RECEIVE_UPDATE_DATA, RECEIVE_FINISH: only in RUPDATE.
int receive_step(Guest& g) {
  return g.state == kRupdate ? SEV_RET_UNSUPPORTED : SEV_RET_INVALID_GUEST_STATE;
}

// DBG_DECRYPT / DBG_ENCRYPT: refused by policy NODBG. With memory encryption applied, decrypt
// reads the guest's ciphertext and returns plaintext, encrypt stores ciphertext; both work on
// the 16-byte blocks covering the range (a partial block is read, patched and written back), all
// within the one page the kernel pinned. Without it, both copy.
int dbg(Guest& g, bool encrypt, uint64_t src, uint64_t dst, uint32_t len, bool* fault) {
  *fault = false;
  if (g.state == kUninit) return SEV_RET_INVALID_GUEST_STATE;
  if (g.policy & kPolicyNoDbg) return SEV_RET_POLICY_FAILURE;
  Bytes buf(len);
  if (!g.memory_encrypted) {
    if (copy_from_user(buf.data(), src, len) || copy_to_user(dst, buf.data(), len)) *fault = true;
    return SEV_RET_SUCCESS;
  }
  const uint64_t guest = encrypt ? dst : src;  // the side that holds ciphertext
  const uint64_t lo = guest & ~uint64_t(15), hi = (guest + len + 15) & ~uint64_t(15);
  Bytes blocks(hi - lo);
  if (copy_from_user(blocks.data(), lo, blocks.size())) return *fault = true, SEV_RET_SUCCESS;
  g.vek->decrypt(lo, blocks.data(), blocks.data(), blocks.size());
  if (encrypt) {
    if (copy_from_user(blocks.data() + (guest - lo), src, len)) return *fault = true, SEV_RET_SUCCESS;
    g.vek->encrypt(lo, blocks.data(), blocks.data(), blocks.size());
    if (copy_to_user(lo, blocks.data(), blocks.size())) *fault = true;
  } else if (copy_to_user(dst, blocks.data() + (guest - lo), len)) {
    *fault = true;
  }
  OPENSSL_cleanse(blocks.data(), blocks.size());
  return SEV_RET_SUCCESS;
}

// ATTESTATION (API 0.23+; LSECRET or RUNNING): MNONCE(16) ‖ LAUNCH_DIGEST(32) ‖ POLICY(4) ‖
// SIG_USAGE(4) ‖ SIG_ALGO(4) ‖ reserved(4) ‖ SIG1(144: r, s little-endian, 72 bytes each),
// ECDSA P-384 SHA-256 over bytes 0x00-0x33 with the PEK.
int attestation(NvSession& nv, Guest& g, const uint8_t mnonce[16], uint8_t* out, uint32_t& len) {
  if (!api_at_least(nv.config(), 0, 23)) return SEV_RET_INVALID_COMMAND;
  if (!out || len < kAttestationLen) {
    len = kAttestationLen;
    return SEV_RET_INVALID_LEN;
  }
  if (g.state != kLsecret && g.state != kRunning) return SEV_RET_INVALID_GUEST_STATE;
  uint8_t r[kAttestationLen] = {};
  memcpy(r, mnonce, 16);
  memcpy(r + 0x10, g.ld, 32);
  put_le32(r + 0x30, g.policy);
  put_le32(r + 0x34, cert::kUsagePek);
  put_le32(r + 0x38, cert::kAlgoEcdsaSha256);
  crypto::Pkey pek = crypto::private_from_pem(nv.get_text("pek.pem"));
  Bytes rs, ss;
  crypto::ecdsa_sign(pek.get(), EVP_sha256(), r, 0x34, rs, ss);
  Bytes rl = crypto::be_to_le(rs, 72), sl = crypto::be_to_le(ss, 72);
  memcpy(r + 0x40, rl.data(), 72);
  memcpy(r + 0x40 + 72, sl.data(), 72);
  memcpy(out, r, kAttestationLen);
  len = kAttestationLen;
  return SEV_RET_SUCCESS;
}

}  // namespace sevemu::fw
