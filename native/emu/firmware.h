// The SEV firmware model (AMD SEV API spec, pub. 55766; SEV-SNP ABI spec, pub. 56860):
// platform commands acting on the NV state of one NvSession. Each command returns a
// firmware status (uapi::SEV_RET_*); buffers are the firmware's view (already copied in
// or to be copied out by the emulated kernel, see platform.cc).
#pragma once

#include "common.h"
#include "crypto.h"
#include "firmware_state.h"
#include "uapi/psp_sev.h"

namespace sevemu {

// The configuration a new state directory gets: SEV_EMU_GENERATION, SEV_EMU_FW,
// SEV_EMU_SOCKETS, SEV_EMU_HOST_SNP (a malformed value is logged and the default used).
PlatformConfig config_from_env();

class Firmware {
 public:
  explicit Firmware(NvSession& nv) : nv_(nv) {}

  // First use of a state directory: fixes the configuration (SEV_EMU_GENERATION,
  // SEV_EMU_FW, SEV_EMU_SOCKETS), creates chip id, CEK, the emulated ARK/ASK, and brings
  // the platform to its boot state (SEV_EMU_PLATFORM_STATE: init (default) or uninit).
  void provision_if_needed();

  const PlatformConfig& config() { return nv_.config(); }
  PlatformState& st() { return nv_.state(); }
  uint8_t platform_state();  // uapi::SEV_STATE_*
  bool snp_capable();        // the generation's firmware has SNP commands
  bool host_snp() { return config().host_snp; }  // kernel: CC_ATTR_HOST_SEV_SNP
  bool version_at_least(uint8_t major, uint8_t minor);

  int init();  // INIT (with SEV-ES when supported)
  int shutdown();
  int df_flush();
  int snp_init();
  int snp_shutdown();

  int platform_status(uapi::sev_user_data_status& out);
  int factory_reset();
  int pek_gen();
  int pdh_gen();
  int pek_csr(Bytes* out, uint32_t& len);  // out null when the address is 0
  int pek_cert_import(const Bytes& pek, const Bytes& oca);
  int pdh_cert_export(Bytes* pdh, uint32_t& pdh_len, Bytes* chain, uint32_t& chain_len);
  int get_id(Bytes* out, uint32_t& len);
  int snp_platform_status(uapi::sev_user_data_snp_status& out);
  int snp_commit();
  int snp_config(const uapi::sev_user_data_snp_config& cfg);
  int snp_vlek_load(const uapi::sev_user_data_snp_vlek_load& in, const Bytes& wrapped);

  static constexpr uint32_t kChainLen = 3 * 2084;  // PEK || OCA || CEK

 private:
  crypto::Pkey key(const std::string& name);
  void store_key(const std::string& name, EVP_PKEY* k);
  void generate_pek_and_oca();  // self-owned: firmware OCA signs the PEK
  void generate_pdh();
  Bytes sign_pek_cert(EVP_PKEY* pek);  // unsigned PEK cert, signed by OCA and CEK
  void create_ca_and_cek();

  NvSession& nv_;
};

}  // namespace sevemu
