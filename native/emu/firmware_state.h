// The emulated platform's non-volatile state: one directory (SEV_EMU_STATE, default
// $HOME/.local/state/node-sev/emu), mode 0700, created on first use. Files:
//   config                 generation, firmware version/build, sockets (fixed at creation)
//   state                  runtime flags: SEV/SNP initialized, owner, guest count, SNP config
//   chip_id.bin            64-byte ID per socket (GET_ID)
//   cek.pem pek.pem oca.pem pdh.pem   private keys, PKCS#8 PEM, mode 0600 (no oca.pem when
//                                     the OCA belongs to an external owner)
//   cek.cert pek.cert oca.cert pdh.cert  SEV-format certificates
//   ark.pem ask.pem        the emulator's own ARK/ASK private keys (not AMD's)
//   ark.cert ask.cert ask_ark.cert    its CA certificates, AMD format; ask_ark = ASK then ARK
//   chip_secret.bin        the chip-unique secret SNP keys derive from (VCEK per TCB, derived keys)
//   snp_ark.der snp_ask.der snp_crl.der vcek_<tcb>.der   the SNP X.509 chain KDS serves (snp_ca.h)
//   guest/tsm/             configfs-tsm report items of `sev-emu run --guest` (tsm.h)
//   lock                   flock'ed exclusively around every command (the kernel's
//                          sev_cmd_mutex, across processes)
// A session (NvSession) holds the lock, reads files lazily, and on commit() writes each
// changed file to a temporary name, fsyncs it, renames it into place and fsyncs the directory.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "common.h"
#include "generation.h"

namespace sevemu {

struct PlatformConfig {
  const Generation* gen = nullptr;
  uint8_t api_major = 0, api_minor = 0, build = 0;
  int sockets = 1;
  // The host enabled SNP (kernel: CC_ATTR_HOST_SEV_SNP, set when the BIOS set up the RMP):
  // only then does the kernel initialise the firmware's SNP. Off unless SEV_EMU_HOST_SNP=1.
  bool host_snp = false;
};

// Runtime state that the kernel and firmware keep between commands.
struct PlatformState {
  bool sev_init = false;   // SEV firmware INIT done (kernel: sev_plat_status.state == INIT)
  bool snp_init = false;   // SNP_INIT done (kernel: sev->snp_initialized)
  bool owner_external = false;
  uint32_t guest_count = 0;           // active SEV guests; > 0 means WORKING
  uint32_t snp_config_flags = 0;      // SNP_CONFIG mask_chip_id / mask_chip_key
  uint64_t snp_reported_tcb = 0;      // 0 = report the current TCB
  uint64_t snp_committed_tcb = 0;
};

struct StateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class NvSession {
 public:
  // Opens the state directory (creating it), and takes the exclusive lock. Throws StateError.
  NvSession();
  ~NvSession();
  NvSession(const NvSession&) = delete;
  NvSession& operator=(const NvSession&) = delete;

  const std::string& dir() const { return dir_; }
  // False until the platform has been provisioned (config written).
  bool provisioned();
  const PlatformConfig& config();
  void set_config(const PlatformConfig& c);

  PlatformState& state();  // loaded on first use
  void state_changed() { state_dirty_ = true; }

  bool has(const std::string& name);
  const Bytes& get(const std::string& name);  // throws StateError when absent
  std::string get_text(const std::string& name);
  void put(const std::string& name, Bytes data);
  void put_text(const std::string& name, const std::string& text);
  void erase(const std::string& name);

  // Writes every changed file atomically. Throws StateError.
  void commit();

 private:
  bool load(const std::string& name);
  void write_atomic(const std::string& name, const Bytes& data);  // temp, fsync, rename
  void sync_dir();  // fsync the directory, so renames in it are durable
  // Replays an interrupted commit (see commit()): every file it staged is put in place; then
  // removes the temporary files of sessions that died mid-write.
  void recover();
  void replay_journal(const std::string& journal);

  std::string dir_;
  int lock_fd_ = -1;
  bool config_loaded_ = false;
  PlatformConfig config_;
  bool state_loaded_ = false, state_dirty_ = false;
  PlatformState state_;
  std::map<std::string, Bytes> files_;
  std::set<std::string> absent_, dirty_, erased_;
};

// The state directory this process uses.
std::string state_dir();

}  // namespace sevemu
