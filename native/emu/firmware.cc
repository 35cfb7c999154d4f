#include "firmware.h"
#include "guest_registry.h"

#include <cstdlib>
#include <openssl/evp.h>

#include "amd_ca.h"
#include "sev_cert.h"

namespace sevemu {

using namespace uapi;

namespace {

// SEV_EMU_FW="major.minor.build"; false when malformed.
bool parse_fw(const char* s, PlatformConfig& c) {
  unsigned a, b, d;
  char extra;
  if (sscanf(s, "%u.%u.%u%c", &a, &b, &d, &extra) != 3 || a > 255 || b > 255 || d > 255)
    return false;
  c.api_major = uint8_t(a);
  c.api_minor = uint8_t(b);
  c.build = uint8_t(d);
  return true;
}

}  // namespace

PlatformConfig config_from_env() {
  PlatformConfig c;
  const char* gen = getenv("SEV_EMU_GENERATION");
  c.gen = gen && *gen ? find_generation(gen) : &default_generation();
  if (!c.gen) {
    log_line("SEV_EMU_GENERATION=%s is not one of naples|rome|milan|genoa|turin; using milan",
             gen);
    c.gen = &default_generation();
  }
  c.api_major = c.gen->api_major;
  c.api_minor = c.gen->api_minor;
  c.build = c.gen->build;
  const char* fw = getenv("SEV_EMU_FW");
  if (fw && *fw && !parse_fw(fw, c)) {
    log_line("SEV_EMU_FW=%s is not MAJOR.MINOR.BUILD; using %d.%d.%d", fw, c.api_major,
             c.api_minor, c.build);
  }
  const char* sockets = getenv("SEV_EMU_SOCKETS");
  c.sockets = sockets && strcmp(sockets, "2") == 0 ? 2 : 1;
  if (sockets && *sockets && strcmp(sockets, "1") != 0 && strcmp(sockets, "2") != 0)
    log_line("SEV_EMU_SOCKETS=%s must be 1 or 2; using 1", sockets);
  const char* snp = getenv("SEV_EMU_HOST_SNP");
  c.host_snp = snp && strcmp(snp, "1") == 0;
  if (snp && *snp && strcmp(snp, "0") != 0 && strcmp(snp, "1") != 0)
    log_line("SEV_EMU_HOST_SNP=%s must be 0 or 1; using 0", snp);
  if (c.host_snp && !c.gen->snp) {
    log_line("SEV_EMU_HOST_SNP=1: %s has no SEV-SNP; the host runs without it", c.gen->name);
    c.host_snp = false;
  }
  return c;
}

void Firmware::provision_if_needed() {
  if (nv_.provisioned()) return;
  PlatformConfig c = config_from_env();
  nv_.set_config(c);

  nv_.put("chip_id.bin", crypto::random_bytes(64 * size_t(c.sockets)));
  create_ca_and_cek();

  PlatformState& s = nv_.state();
  s = PlatformState{};
  nv_.state_changed();
  // Boot state as the kernel leaves it once kvm_amd has set up SEV (sev_hardware_setup ->
  // _sev_platform_init_locked): SNP initialized first where the host enabled it, then SEV.
  // SEV_EMU_PLATFORM_STATE=uninit models psp_init_on_probe=0, which defers only SEV's INIT.
  const char* boot = getenv("SEV_EMU_PLATFORM_STATE");
  bool uninit = boot && strcmp(boot, "uninit") == 0;
  if (boot && *boot && !uninit && strcmp(boot, "init") != 0)
    log_line("SEV_EMU_PLATFORM_STATE=%s must be init or uninit; using init", boot);
  if (host_snp() && version_at_least(1, 51)) snp_init();
  if (!uninit) init();
  nv_.commit();
}

void Firmware::create_ca_and_cek() {
  const PlatformConfig& c = nv_.config();
  // The emulator's own AMD-format CA. Key ids start with "SEVEMU-ARK"/"SEVEMU-ASK" so
  // nobody mistakes it for AMD's; the tail is random per state directory.
  uint8_t ark_id[16] = {'S', 'E', 'V', 'E', 'M', 'U', '-', 'A', 'R', 'K'};
  uint8_t ask_id[16] = {'S', 'E', 'V', 'E', 'M', 'U', '-', 'A', 'S', 'K'};
  Bytes r = crypto::random_bytes(12);
  memcpy(ark_id + 10, r.data(), 6);
  memcpy(ask_id + 10, r.data() + 6, 6);
  // Naples used RSA-2048 with SHA-256; later generations RSA-4096 with SHA-384.
  bool big = c.gen->ca_rsa_bits >= 4096;
  const EVP_MD* md = big ? EVP_sha384() : EVP_sha256();
  crypto::Pkey ark = crypto::generate_rsa(c.gen->ca_rsa_bits);
  crypto::Pkey ask = crypto::generate_rsa(c.gen->ca_rsa_bits);
  Bytes ark_cert = amd_ca::make(ark_id, ark_id, amd_ca::kUsageArk, ark.get(), ark.get(), md);
  Bytes ask_cert = amd_ca::make(ask_id, ark_id, amd_ca::kUsageAsk, ask.get(), ark.get(), md);
  store_key("ark.pem", ark.get());
  store_key("ask.pem", ask.get());
  nv_.put("ark.cert", ark_cert);
  nv_.put("ask.cert", ask_cert);
  Bytes both = ask_cert;
  both.insert(both.end(), ark_cert.begin(), ark_cert.end());
  nv_.put("ask_ark.cert", both);

  // The CEK is derived from chip secrets on real parts: it survives FACTORY_RESET.
  crypto::Pkey cek = crypto::generate_p384();
  Bytes cek_cert =
      cert::make_unsigned(c.api_major, c.api_minor, cert::kUsageCek, cert::kAlgoEcdsaSha256,
                          cek.get());
  cert::sign_rsa_pss(cek_cert, 0, cert::kUsageAsk,
                     big ? cert::kAlgoRsaSha384 : cert::kAlgoRsaSha256, ask.get());
  store_key("cek.pem", cek.get());
  nv_.put("cek.cert", cek_cert);
}

crypto::Pkey Firmware::key(const std::string& name) {
  return crypto::private_from_pem(nv_.get_text(name));
}

void Firmware::store_key(const std::string& name, EVP_PKEY* k) {
  nv_.put_text(name, crypto::private_pem(k));
}

bool Firmware::snp_capable() { return config().gen->snp; }

bool Firmware::version_at_least(uint8_t major, uint8_t minor) {
  const PlatformConfig& c = config();
  return c.api_major > major || (c.api_major == major && c.api_minor >= minor);
}

uint8_t Firmware::platform_state() {
  const PlatformState& s = st();
  if (!s.sev_init) return SEV_STATE_UNINIT;
  return s.guest_count ? SEV_STATE_WORKING : SEV_STATE_INIT;
}

Bytes Firmware::sign_pek_cert(EVP_PKEY* pek) {
  const PlatformConfig& c = config();
  Bytes pc = cert::make_unsigned(c.api_major, c.api_minor, cert::kUsagePek,
                                 cert::kAlgoEcdsaSha256, pek);
  // Slot order as on real parts: sig1 = OCA, sig2 = CEK.
  cert::sign_ecdsa(pc, 0, cert::kUsageOca, key("oca.pem").get());
  cert::sign_ecdsa(pc, 1, cert::kUsageCek, key("cek.pem").get());
  return pc;
}

void Firmware::generate_pek_and_oca() {
  const PlatformConfig& c = config();
  crypto::Pkey oca = crypto::generate_p384();
  Bytes oca_cert = cert::make_unsigned(c.api_major, c.api_minor, cert::kUsageOca,
                                       cert::kAlgoEcdsaSha256, oca.get());
  cert::sign_ecdsa(oca_cert, 0, cert::kUsageOca, oca.get());  // self-signed
  store_key("oca.pem", oca.get());
  nv_.put("oca.cert", oca_cert);
  crypto::Pkey pek = crypto::generate_p384();
  store_key("pek.pem", pek.get());
  nv_.put("pek.cert", sign_pek_cert(pek.get()));
  st().owner_external = false;
  nv_.state_changed();
}

void Firmware::generate_pdh() {
  const PlatformConfig& c = config();
  crypto::Pkey pdh = crypto::generate_p384();
  Bytes pc = cert::make_unsigned(c.api_major, c.api_minor, cert::kUsagePdh,
                                 cert::kAlgoEcdhSha256, pdh.get());
  cert::sign_ecdsa(pc, 0, cert::kUsagePek, key("pek.pem").get());
  store_key("pdh.pem", pdh.get());
  nv_.put("pdh.cert", pc);
}

// INIT: allowed in UNINIT only. Keys deleted by FACTORY_RESET are regenerated here, so
// the platform is self-owned again after a reset.
int Firmware::init() {
  if (platform_state() != SEV_STATE_UNINIT) return SEV_RET_INVALID_PLATFORM_STATE;
  if (!nv_.has("pek.pem") || !nv_.has("oca.cert")) generate_pek_and_oca();
  if (!nv_.has("pdh.pem")) generate_pdh();
  st().sev_init = true;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

int Firmware::shutdown() {
  // SHUTDOWN is valid in every state; it drops guests (none live in NV state yet).
  st().sev_init = false;
  st().guest_count = 0;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

int Firmware::df_flush() {
  return platform_state() == SEV_STATE_UNINIT ? SEV_RET_INVALID_PLATFORM_STATE
                                              : SEV_RET_SUCCESS;
}

int Firmware::snp_init() {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  if (st().snp_init) return SEV_RET_INVALID_PLATFORM_STATE;
  st().snp_init = true;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

int Firmware::snp_shutdown() {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  st().snp_init = false;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

// PLATFORM_STATUS: any state. Flags: bit 0 OWNER (externally owned), bit 8 CONFIG_ES
// (INIT was done with SEV-ES enabled, which the kernel always requests when it can).
int Firmware::platform_status(sev_user_data_status& out) {
  const PlatformConfig& c = config();
  memset(&out, 0, sizeof out);
  out.api_major = c.api_major;
  out.api_minor = c.api_minor;
  out.state = platform_state();
  uint32_t flags = 0;
  if (st().owner_external) flags |= SEV_STATUS_FLAGS_OWNER;
  if (st().sev_init && c.gen->es) flags |= SEV_STATUS_FLAGS_CONFIG_ES;
  out.flags = flags;
  out.build = c.build;
  out.guest_count = st().guest_count;
  return SEV_RET_SUCCESS;
}

// FACTORY_RESET (PLATFORM_RESET): UNINIT only. Deletes PEK, PDH and OCA and clears the
// owner; the CEK and chip id are fused and stay. SNP state is not touched.
int Firmware::factory_reset() {
  if (platform_state() != SEV_STATE_UNINIT) return SEV_RET_INVALID_PLATFORM_STATE;
  for (const char* f : {"pek.pem", "pek.cert", "pdh.pem", "pdh.cert", "oca.pem", "oca.cert"})
    nv_.erase(f);
  st().owner_external = false;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

// PEK_GEN: INIT only. New PEK, new firmware OCA (self-owned again), PDH regenerated.
int Firmware::pek_gen() {
  if (platform_state() != SEV_STATE_INIT) return SEV_RET_INVALID_PLATFORM_STATE;
  generate_pek_and_oca();
  generate_pdh();
  return SEV_RET_SUCCESS;
}

// PDH_GEN: INIT or WORKING. New PDH signed by the current PEK.
int Firmware::pdh_gen() {
  if (platform_state() == SEV_STATE_UNINIT) return SEV_RET_INVALID_PLATFORM_STATE;
  generate_pdh();
  return SEV_RET_SUCCESS;
}

// PEK_CSR: INIT only. The PEK certificate without signatures; a length below the
// certificate size gives INVALID_LEN with the required length written back.
int Firmware::pek_csr(Bytes* out, uint32_t& len) {
  if (platform_state() != SEV_STATE_INIT) return SEV_RET_INVALID_PLATFORM_STATE;
  if (!out || len < cert::kSize) {
    len = cert::kSize;
    return SEV_RET_INVALID_LEN;
  }
  Bytes csr = nv_.get("pek.cert");
  cert::clear_slot(csr, 0);
  cert::clear_slot(csr, 1);
  std::copy(csr.begin(), csr.end(), out->begin());
  len = cert::kSize;
  return SEV_RET_SUCCESS;
}

// PEK_CERT_IMPORT: INIT only; refuses an already externally owned platform. The OCA must
// be a well-formed self-signed OCA certificate; the PEK certificate must carry the
// platform's current PEK and a valid signature by that OCA. Format problems give
// INVALID_CERTIFICATE, failed signature checks BAD_SIGNATURE. On success the firmware
// keeps the OCA, countersigns the PEK with the CEK, regenerates the PDH, and is owned.
int Firmware::pek_cert_import(const Bytes& pek, const Bytes& oca) {
  if (platform_state() != SEV_STATE_INIT) return SEV_RET_INVALID_PLATFORM_STATE;
  if (st().owner_external) return SEV_RET_ALREADY_OWNED;
  if (pek.size() != cert::kSize || oca.size() != cert::kSize) return SEV_RET_INVALID_LEN;

  const uint8_t* o = oca.data();
  bool oca_alg_ok = cert::algo(o) == cert::kAlgoEcdsaSha256 || cert::algo(o) == cert::kAlgoEcdsaSha384;
  crypto::Pkey oca_key = cert::public_key(o);
  if (cert::version(o) != 1 || cert::usage(o) != cert::kUsageOca || !oca_alg_ok || !oca_key ||
      cert::slot_usage(o, 0) != cert::kUsageOca)
    return SEV_RET_INVALID_CERTIFICATE;
  if (!cert::verify_ecdsa_slot(o, 0, oca_key.get())) return SEV_RET_BAD_SIGNATURE;

  const uint8_t* p = pek.data();
  const Bytes& current = nv_.get("pek.cert");
  if (cert::version(p) != 1 || cert::usage(p) != cert::kUsagePek ||
      !cert::same_public_key(p, current.data()))
    return SEV_RET_INVALID_CERTIFICATE;
  int oca_slot = cert::slot_usage(p, 0) == cert::kUsageOca   ? 0
                 : cert::slot_usage(p, 1) == cert::kUsageOca ? 1
                                                              : -1;
  if (oca_slot < 0) return SEV_RET_INVALID_CERTIFICATE;
  if (!cert::verify_ecdsa_slot(p, oca_slot, oca_key.get())) return SEV_RET_BAD_SIGNATURE;

  Bytes signed_pek = pek;
  cert::sign_ecdsa(signed_pek, 1 - oca_slot, cert::kUsageCek, key("cek.pem").get());
  nv_.put("pek.cert", signed_pek);
  nv_.put("oca.cert", oca);
  nv_.erase("oca.pem");  // the owner keeps its OCA key
  generate_pdh();
  st().owner_external = true;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

// PDH_CERT_EXPORT: INIT or WORKING. Either buffer too small → INVALID_LEN with both
// required lengths written back. The chain is PEK || OCA || CEK.
int Firmware::pdh_cert_export(Bytes* pdh, uint32_t& pdh_len, Bytes* chain,
                              uint32_t& chain_len) {
  if (platform_state() == SEV_STATE_UNINIT) return SEV_RET_INVALID_PLATFORM_STATE;
  if (!pdh || !chain || pdh_len < cert::kSize || chain_len < kChainLen) {
    pdh_len = cert::kSize;
    chain_len = kChainLen;
    return SEV_RET_INVALID_LEN;
  }
  const Bytes& p = nv_.get("pdh.cert");
  std::copy(p.begin(), p.end(), pdh->begin());
  size_t off = 0;
  for (const char* f : {"pek.cert", "oca.cert", "cek.cert"}) {
    const Bytes& c = nv_.get(f);
    std::copy(c.begin(), c.end(), chain->begin() + long(off));
    off += cert::kSize;
  }
  pdh_len = cert::kSize;
  chain_len = kChainLen;
  return SEV_RET_SUCCESS;
}

// GET_ID: any state. 64 bytes per socket; a short buffer → INVALID_LEN + required length.
int Firmware::get_id(Bytes* out, uint32_t& len) {
  const Bytes& id = nv_.get("chip_id.bin");
  uint32_t need = uint32_t(64 * config().sockets);
  if (!out || len < need) {
    len = need;
    return SEV_RET_INVALID_LEN;
  }
  std::copy(id.begin(), id.begin() + need, out->begin());
  len = need;
  return SEV_RET_SUCCESS;
}

// SNP_PLATFORM_STATUS: any SNP state.
int Firmware::snp_platform_status(sev_user_data_snp_status& out) {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  const PlatformConfig& c = config();
  memset(&out, 0, sizeof out);
  out.api_major = c.api_major;
  out.api_minor = c.api_minor;
  out.state = st().snp_init ? 1 : 0;
  out.is_rmp_initialized = st().snp_init ? 1 : 0;
  out.build_id = c.build;
  out.feature_flags = st().snp_config_flags & 0x3;  // mask_chip_id, mask_chip_key
  out.guest_count = registry::live_snp_guests(nv_);
  out.current_tcb_version = c.gen->snp_tcb;
  out.reported_tcb_version = st().snp_reported_tcb ? st().snp_reported_tcb : c.gen->snp_tcb;
  return SEV_RET_SUCCESS;
}

// SNP_COMMIT: SNP INIT only; commits the current firmware/TCB (anti-rollback).
int Firmware::snp_commit() {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  if (!st().snp_init) return SEV_RET_INVALID_PLATFORM_STATE;
  st().snp_committed_tcb = config().gen->snp_tcb;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

// SNP_CONFIG: SNP INIT only; reserved bits and bytes must be zero.
int Firmware::snp_config(const sev_user_data_snp_config& cfg) {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  if (!st().snp_init) return SEV_RET_INVALID_PLATFORM_STATE;
  if (cfg.flags & ~0x3u) return SEV_RET_INVALID_PARAM;
  for (uint8_t b : cfg.rsvd1)
    if (b) return SEV_RET_INVALID_PARAM;
  st().snp_config_flags = cfg.flags;
  st().snp_reported_tcb = cfg.reported_tcb;
  nv_.state_changed();
  return SEV_RET_SUCCESS;
}

// SNP_VLEK_LOAD: a VLEK hashstick is wrapped with a key only AMD's KDS and real parts
// share, so no blob can be unwrapped here.
int Firmware::snp_vlek_load(const sev_user_data_snp_vlek_load&, const Bytes&) {
  if (!snp_capable()) return SEV_RET_INVALID_COMMAND;
  if (!st().snp_init) return SEV_RET_INVALID_PLATFORM_STATE;
  return SEV_RET_BAD_SIGNATURE;
}

}  // namespace sevemu
