#include "snp_launch.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

#include "crypto.h"
#include "guest_registry.h"
#include "host_facts.h"
#include "uapi/psp_sev.h"

namespace sevemu::fw {

using namespace uapi;

namespace {

constexpr size_t kPage = 4096;
constexpr uint16_t kPageInfoSize = 0x70;
constexpr uint32_t kIdBlockVersion = 1;
constexpr uint32_t kKeyAlgoEcdsaP384Sha384 = 1, kCurveP384 = 2;
// ID_AUTH_INFO offsets; SNP public keys are 0x404 bytes, signatures 0x200.
constexpr size_t kAuthIdKeyAlgo = 0x000, kAuthAuthorKeyAlgo = 0x004, kAuthIdBlockSig = 0x040,
                 kAuthIdKey = 0x240, kAuthIdKeySig = 0x680, kAuthAuthorKey = 0x880, kPublicKeySize = 0x404;
// ID_BLOCK offsets.
constexpr size_t kIdLd = 0x00, kIdFamily = 0x30, kIdImage = 0x40, kIdVersion = 0x50, kIdSvn = 0x54, kIdPolicy = 0x58;
// The CPUID page: COUNT, then up to 64 entries of 0x30 bytes from 0x10
// (EAX_IN, ECX_IN, XCR0_IN[8], XSS_IN[8], EAX, EBX, ECX, EDX, reserved[8]).
constexpr uint32_t kCpuidMaxEntries = 64;
constexpr size_t kCpuidEntries = 0x10, kCpuidEntrySize = 0x30;

uint64_t get_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = uint8_t(v >> (8 * i));
}

// One digest context per thread, reused: a launch hashes two things per page.
void sha384(const uint8_t* data, size_t len, uint8_t out[kSnpDigestSize]) {
  struct Ctx {
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(c); }
  };
  thread_local Ctx ctx;
  unsigned n = 0;
  if (!ctx.c || !EVP_DigestInit_ex(ctx.c, EVP_sha384(), nullptr) || !EVP_DigestUpdate(ctx.c, data, len) ||
      !EVP_DigestFinal_ex(ctx.c, out, &n))
    crypto::fail("SHA-384");
}

// The digest chain: LD = SHA-384(PAGE_INFO) with the previous LD in it.
void measure(SnpGuest& g, uint8_t type, uint64_t gpa, const uint8_t* contents_hash) {
  uint8_t info[kPageInfoSize] = {};
  memcpy(info, g.ld, kSnpDigestSize);
  if (contents_hash) memcpy(info + 0x30, contents_hash, kSnpDigestSize);
  info[0x60] = uint8_t(kPageInfoSize);
  info[0x61] = uint8_t(kPageInfoSize >> 8);
  info[0x62] = type;
  put_le64(info + 0x68, gpa);
  sha384(info, sizeof info, g.ld);
}

// SMT is on when CPUID 0x8000001E reports more than one thread per core.
bool smt_enabled() {
  uint32_t r[4] = {};
  sevemu_cpuid(0x8000001E, 0, r);
  return ((r[1] >> 8) & 0xff) > 0;
}

// The secrets page the firmware writes (the guest kernel's struct snp_secrets_page):
// VERSION 2, IMIEN 0, FMS (CPUID 1 EAX), GOSVW, VMPCK0..3; the rest zero.
void fill_secrets(const SnpGuest& g, uint8_t* page) {
  memset(page, 0, kPage);
  uint32_t r[4] = {};
  sevemu_cpuid(1, 0, r);
  put_le32(page + 0x00, 2);
  put_le32(page + 0x08, r[0]);
  memcpy(page + 0x10, g.gosvw, sizeof g.gosvw);
  for (int i = 0; i < 4; i++) memcpy(page + 0x20 + 32 * i, g.vmpck[i], 32);
}

// The CPUID values the platform accepts for a guest: feature bits no wider than the CPU's own
// (the hypervisor bit aside), and the CPU's C-bit position. This is the emulator's reading of
// the firmware's CPUID policy, which AMD documents per leaf; other leaves pass as given.
bool cpuid_acceptable(uint32_t fn, uint32_t index, uint32_t in[4], uint32_t fixed[4]) {
  uint32_t host[4] = {};
  sevemu_cpuid(fn, index, host);
  memcpy(fixed, in, 4 * sizeof(uint32_t));
  auto subset = [&](int reg, uint32_t also_allowed = 0) { fixed[reg] &= host[reg] | also_allowed; };
  switch (fn) {
    case 0x1:
      subset(2, 1u << 31);  // ECX (the hypervisor bit is the guest's to see)
      subset(3);            // EDX
      break;
    case 0x7:
      if (index == 0) subset(1), subset(2), subset(3);
      break;
    case 0x80000001:
      subset(2), subset(3);
      break;
    case 0x8000001F:
      subset(0);
      fixed[1] = (fixed[1] & ~0x3fu) | (host[1] & 0x3f);
      break;
  }
  return memcmp(fixed, in, 4 * sizeof(uint32_t)) == 0;
}

int check_cpuid_page(uint8_t* page) {
  uint32_t count = get_le32(page);
  if (count > kCpuidMaxEntries) return SEV_RET_INVALID_PARAM;
  bool ok = true;
  for (uint32_t i = 0; i < count; i++) {
    uint8_t* e = page + kCpuidEntries + i * kCpuidEntrySize;
    uint32_t in[4], fixed[4];
    for (int r = 0; r < 4; r++) in[r] = get_le32(e + 0x18 + 4 * r);
    if (cpuid_acceptable(get_le32(e), get_le32(e + 4), in, fixed)) continue;
    ok = false;
    for (int r = 0; r < 4; r++) put_le32(e + 0x18 + 4 * r, fixed[r]);
  }
  return ok ? SEV_RET_SUCCESS : SEV_RET_INVALID_PARAM;
}

// An SNP public key (curve, Qx, Qy little-endian in 72-byte fields), or null when malformed.
crypto::Pkey snp_public_key(const uint8_t* key) {
  if (get_le32(key) != kCurveP384) return nullptr;
  for (size_t i = 4 + 48; i < 4 + 72; i++)
    if (key[i] || key[72 + i]) return nullptr;
  return crypto::ec_public_from_xy(crypto::le_to_be(key + 4, 48), crypto::le_to_be(key + 4 + 72, 48));
}

// ECDSA P-384 / SHA-384 with an SNP signature (R, S little-endian in 72-byte fields).
bool snp_verify(const uint8_t* key, const uint8_t* sig, const uint8_t* data, size_t len) {
  crypto::Pkey pub = snp_public_key(key);
  if (!pub) return false;
  for (size_t i = 48; i < 72; i++)
    if (sig[i] || sig[72 + i]) return false;
  return crypto::ecdsa_verify(pub.get(), EVP_sha384(), data, len, crypto::le_to_be(sig, 48),
                              crypto::le_to_be(sig + 72, 48));
}

}  // namespace

SnpGuest::~SnpGuest() { OPENSSL_cleanse(vmpck, sizeof vmpck); }

int snp_launch_start(NvSession& nv, uint64_t policy, const uint8_t gosvw[16], std::shared_ptr<SnpGuest>& out) {
  if (!nv.state().snp_init) return SEV_RET_INVALID_PLATFORM_STATE;  // SNP_GCTX_CREATE
  const PlatformConfig& c = nv.config();
  if (!(policy & kSnpPolicyMbo)) return SEV_RET_INVALID_PARAM;
  const uint8_t abi_minor = uint8_t(policy), abi_major = uint8_t(policy >> 8);
  if (abi_major > c.api_major || (abi_major == c.api_major && abi_minor > c.api_minor))
    return SEV_RET_POLICY_FAILURE;
  if (!(policy & kSnpPolicySmt) && smt_enabled()) return SEV_RET_POLICY_FAILURE;
  if ((policy & kSnpPolicySingleSocket) && c.sockets > 1) return SEV_RET_POLICY_FAILURE;
  auto g = std::make_shared<SnpGuest>();
  g->policy = policy;
  memcpy(g->gosvw, gosvw, sizeof g->gosvw);
  g->api_major = c.api_major;
  g->api_minor = c.api_minor;
  g->build = c.build;
  g->launch_tcb = c.gen->snp_tcb;
  Bytes keys = crypto::random_bytes(sizeof g->vmpck + sizeof g->report_id);
  memcpy(g->vmpck, keys.data(), sizeof g->vmpck);
  memcpy(g->report_id, keys.data() + sizeof g->vmpck, sizeof g->report_id);
  OPENSSL_cleanse(keys.data(), keys.size());
  g->vek = MemoryKey::generate();
  g->id = registry::add_guest(nv, 0, true);
  g->state = kSnpLaunch;
  out = std::move(g);
  return SEV_RET_SUCCESS;
}

int snp_activate(NvSession& nv, SnpGuest& g, uint32_t asid) {
  if (registry::asid_in_use(nv, asid, g.id, true)) return SEV_RET_ASID_OWNED;
  registry::bind_asid(nv, g.id, asid, true);
  g.asid = asid;
  return SEV_RET_SUCCESS;
}

int snp_launch_update(SnpGuest& g, uint8_t type, uint64_t gpa, uint8_t* page) {
  if (g.state != kSnpLaunch) return SEV_RET_INVALID_GUEST_STATE;
  uint8_t hash[kSnpDigestSize];
  const uint8_t* contents = nullptr;
  switch (type) {
    case kSnpPageNormal:
    case kSnpPageVmsa:
      sha384(page, kPage, hash);
      contents = hash;
      break;
    case kSnpPageZero:
      memset(page, 0, kPage);
      break;
    case kSnpPageUnmeasured:
      break;
    case kSnpPageSecrets:
      fill_secrets(g, page);
      break;
    case kSnpPageCpuid:
      if (int status = check_cpuid_page(page)) return status;
      break;
    default:
      return SEV_RET_INVALID_PARAM;
  }
  measure(g, type, gpa, contents);
  return SEV_RET_SUCCESS;
}

int snp_launch_finish(SnpGuest& g, const uint8_t* id_block, const uint8_t* id_auth, bool auth_key_en,
                      bool vcek_disabled, const uint8_t host_data[32]) {
  if (g.state != kSnpLaunch) return SEV_RET_INVALID_GUEST_STATE;
  if (id_block) {
    if (get_le32(id_block + kIdVersion) != kIdBlockVersion) return SEV_RET_INVALID_PARAM;
    if (get_le32(id_auth + kAuthIdKeyAlgo) != kKeyAlgoEcdsaP384Sha384) return SEV_RET_INVALID_PARAM;
    if (auth_key_en && get_le32(id_auth + kAuthAuthorKeyAlgo) != kKeyAlgoEcdsaP384Sha384) return SEV_RET_INVALID_PARAM;
    if (!snp_verify(id_auth + kAuthIdKey, id_auth + kAuthIdBlockSig, id_block, kSnpIdBlockSize))
      return SEV_RET_BAD_SIGNATURE;
    if (auth_key_en &&
        !snp_verify(id_auth + kAuthAuthorKey, id_auth + kAuthIdKeySig, id_auth + kAuthIdKey, kPublicKeySize))
      return SEV_RET_BAD_SIGNATURE;
    if (memcmp(id_block + kIdLd, g.ld, kSnpDigestSize) != 0) return SEV_RET_BAD_MEASUREMENT;
    if (get_le64(id_block + kIdPolicy) != g.policy) return SEV_RET_POLICY_FAILURE;
    memcpy(g.family_id, id_block + kIdFamily, sizeof g.family_id);
    memcpy(g.image_id, id_block + kIdImage, sizeof g.image_id);
    g.guest_svn = get_le32(id_block + kIdSvn);
    sha384(id_auth + kAuthIdKey, kPublicKeySize, g.id_key_digest);
    if (auth_key_en) sha384(id_auth + kAuthAuthorKey, kPublicKeySize, g.author_key_digest);
    g.id_block_en = true;
    g.author_key_en = auth_key_en;
  }
  g.vcek_disabled = vcek_disabled;
  memcpy(g.host_data, host_data, sizeof g.host_data);
  g.state = kSnpRunning;
  return SEV_RET_SUCCESS;
}

void snp_decommission(NvSession& nv, SnpGuest& g) {
  if (!g.id) return;
  registry::remove_guest(nv, g.id, true);
  g.id = 0;
  g.asid = 0;
  g.state = kSnpInit;
}

}  // namespace sevemu::fw
