// Mirrors Linux 7.2's sev-dev.c: commands that need SEV INIT move an UNINIT platform to
// INIT themselves and shut the firmware down again afterwards (sev_move_to_init_state /
// __sev_firmware_shutdown, which shuts SNP down too). SNP is initialized only at boot, where
// the host enabled it; SNP_SET_CONFIG and SNP_VLEK_LOAD need it (ENODEV otherwise), while
// SNP_PLATFORM_STATUS and SNP_COMMIT go to the firmware in any state. One command at a time,
// across processes: NvSession holds the state lock for the whole ioctl, as sev_ioctl holds
// sev_cmd_mutex.
#include "platform.h"

#include <cerrno>

#include "common.h"
#include "fault.h"
#include "firmware.h"
#include "names.h"
#include "user_mem.h"
#include "uapi/psp_sev.h"

namespace sevemu {

using namespace uapi;

namespace {

constexpr int ENOTSUPP_KERNEL = 524;          // kernel-internal ENOTSUPP, leaks to userspace
constexpr size_t kKmallocMax = 4u << 20;      // 1 << (PAGE_SHIFT + MAX_PAGE_ORDER)

// One SEV_ISSUE_CMD in flight.
class Call {
 public:
  Call(Firmware& fw, sev_issue_cmd& input, bool writable, Fault fault)
      : fw_(fw), in_(input), writable_(writable), fault_(fault) {}

  int dispatch();

 private:
  // __sev_do_cmd_locked: runs one firmware command and stores its status in *psp_ret.
  // `main` marks the command the ioctl is named after: an injected status replaces it.
  template <typename Fn>
  int do_cmd(bool main, Fn fn, uint32_t* psp_ret) {
    int status = main && fault_.status ? fault_.status : fn();
    if (psp_ret) *psp_ret = uint32_t(status);
    return status ? -EIO : 0;
  }

  bool sev_initialized() { return fw_.st().sev_init; }
  bool snp_initialized() { return fw_.st().snp_init; }

  int sev_init_locked(uint32_t* error);
  int sev_shutdown_locked(uint32_t* error);
  int snp_shutdown_locked();
  void firmware_shutdown();
  int move_to_init_state(bool& shutdown_required);
  // psp_copy_user_blob: EINVAL for a null/empty or oversized blob, EFAULT for bad memory.
  int copy_user_blob(uint64_t addr, uint32_t len, Bytes& out);

  int do_reset();
  int do_platform_status();
  int do_pek_pdh_gen(bool pek);
  int do_pek_csr();
  int do_pek_import();
  int do_get_id2();
  int do_get_id();
  int do_pdh_export();
  int do_snp_platform_status();
  int do_snp_commit();
  int do_snp_set_config();
  int do_snp_vlek_load();

  Firmware& fw_;
  sev_issue_cmd& in_;
  bool writable_;
  Fault fault_;
};

// __sev_platform_init_locked: INIT (retried once after SECURE_DATA_INVALID, which resets
// the firmware's NV data), then DF_FLUSH; *error gets INIT's status only.
int Call::sev_init_locked(uint32_t* error) {
  if (sev_initialized()) return 0;
  uint32_t psp_ret = uint32_t(SEV_RET_NO_FW_CALL);
  int rc = do_cmd(false, [&] { return fw_.init(); }, &psp_ret);
  if (rc && psp_ret == uint32_t(SEV_RET_SECURE_DATA_INVALID))
    rc = do_cmd(false, [&] { return fw_.init(); }, &psp_ret);
  if (error) *error = psp_ret;
  if (rc) return rc;
  uint32_t dfflush_error = uint32_t(SEV_RET_NO_FW_CALL);
  return do_cmd(false, [&] { return fw_.df_flush(); }, &dfflush_error);
}

int Call::sev_shutdown_locked(uint32_t* error) {
  if (!sev_initialized()) return 0;
  return do_cmd(false, [&] { return fw_.shutdown(); }, error);
}

int Call::snp_shutdown_locked() {
  if (!snp_initialized()) return 0;
  uint32_t error = 0;
  return do_cmd(false, [&] { return fw_.snp_shutdown(); }, &error);
}

// __sev_firmware_shutdown: SEV, then SNP, both with local error codes.
void Call::firmware_shutdown() {
  uint32_t error = 0;
  sev_shutdown_locked(&error);
  snp_shutdown_locked();
}

// sev_move_to_init_state: the caller sees INIT's own status when it fails.
int Call::move_to_init_state(bool& shutdown_required) {
  int rc = sev_init_locked(&in_.error);
  if (rc) return rc;
  shutdown_required = true;
  return 0;
}

int Call::copy_user_blob(uint64_t addr, uint32_t len, Bytes& out) {
  if (!addr || !len) return -EINVAL;
  if (len > SEV_FW_BLOB_MAX_SIZE) return -EINVAL;
  out.assign(len, 0);
  return copy_from_user(out.data(), addr, len);
}

// sev_ioctl_do_reset: FACTORY_RESET needs UNINIT; refuse in WORKING, shut down from INIT.
int Call::do_reset() {
  if (!writable_) return -EPERM;
  sev_user_data_status st{};
  int rc = do_cmd(false, [&] { return fw_.platform_status(st); }, &in_.error);
  if (rc) return rc;
  if (st.state == SEV_STATE_WORKING) return -EBUSY;
  if (st.state == SEV_STATE_INIT) {
    rc = sev_shutdown_locked(&in_.error);
    if (rc) return rc;
  }
  return do_cmd(true, [&] { return fw_.factory_reset(); }, &in_.error);
}

int Call::do_platform_status() {
  sev_user_data_status data{};
  int rc = do_cmd(true, [&] { return fw_.platform_status(data); }, &in_.error);
  if (rc) return rc;
  return copy_to_user(in_.data, &data, sizeof data) ? -EFAULT : 0;
}

int Call::do_pek_pdh_gen(bool pek) {
  if (!writable_) return -EPERM;
  bool shutdown_required = false;
  if (!sev_initialized()) {
    int rc = move_to_init_state(shutdown_required);
    if (rc) return rc;
  }
  int rc = do_cmd(true, [&] { return pek ? fw_.pek_gen() : fw_.pdh_gen(); }, &in_.error);
  if (shutdown_required) firmware_shutdown();
  return rc;
}

// Copies back at most what the kernel's bounce buffer holds. Callers copy only after a
// successful command: current kernels skip the copy when the firmware failed
// (`if (ret || WARN_ON_ONCE(argp->error)) goto e_free`), so a too-small buffer stays untouched.
int copy_out_blob(uint64_t user, const Bytes& blob, uint32_t len) {
  return copy_to_user(user, blob.data(), std::min<size_t>(len, blob.size())) ? -EFAULT : 0;
}

int Call::do_pek_csr() {
  if (!writable_) return -EPERM;
  sev_user_data_pek_csr input;
  if (copy_from_user(&input, in_.data, sizeof input)) return -EFAULT;
  Bytes blob;
  bool have_blob = false;
  uint32_t len = 0;  // data.len: 0 for a length query
  if (input.address && input.length) {
    if (input.length > SEV_FW_BLOB_MAX_SIZE) return -EFAULT;
    blob.assign(input.length, 0);
    have_blob = true;
    len = input.length;
  }
  bool shutdown_required = false;
  int ret = 0;
  if (!sev_initialized()) ret = move_to_init_state(shutdown_required);
  if (!ret) {
    ret = do_cmd(true, [&] { return fw_.pek_csr(have_blob ? &blob : nullptr, len); },
                 &in_.error);
    input.length = len;  // the firmware reports the (required) CSR length
    if (copy_to_user(in_.data, &input, sizeof input))
      ret = -EFAULT;
    else if (!ret && have_blob && copy_out_blob(input.address, blob, input.length))
      ret = -EFAULT;
  }
  if (shutdown_required) firmware_shutdown();
  return ret;
}

int Call::do_pek_import() {
  if (!writable_) return -EPERM;
  sev_user_data_pek_cert_import input;
  if (copy_from_user(&input, in_.data, sizeof input)) return -EFAULT;
  Bytes pek, oca;
  int rc = copy_user_blob(input.pek_cert_address, input.pek_cert_len, pek);
  if (rc) return rc;
  rc = copy_user_blob(input.oca_cert_address, input.oca_cert_len, oca);
  if (rc) return rc;
  bool shutdown_required = false;
  if (!sev_initialized()) {
    rc = move_to_init_state(shutdown_required);
    if (rc) return rc;
  }
  rc = do_cmd(true, [&] { return fw_.pek_cert_import(pek, oca); }, &in_.error);
  if (shutdown_required) firmware_shutdown();
  return rc;
}

int Call::do_get_id2() {
  if (!fw_.version_at_least(0, 16)) return -ENOTSUPP_KERNEL;
  sev_user_data_get_id2 input;
  if (copy_from_user(&input, in_.data, sizeof input)) return -EFAULT;
  Bytes blob;
  bool have_blob = false;
  uint32_t len = 0;
  if (input.address && input.length) {
    if (input.length > kKmallocMax) return -ENOMEM;  // kzalloc(..., __GFP_NOWARN) fails
    blob.assign(input.length, 0);
    have_blob = true;
    len = input.length;
  }
  int ret = do_cmd(true, [&] { return fw_.get_id(have_blob ? &blob : nullptr, len); },
                   &in_.error);
  input.length = len;
  if (copy_to_user(in_.data, &input, sizeof input)) return -EFAULT;
  if (!ret && have_blob && copy_out_blob(input.address, blob, len)) return -EFAULT;
  return ret;
}

// The deprecated GET_ID: a 128-byte buffer; only the firmware's length is copied out, so
// socket2 is left untouched on one-socket machines.
int Call::do_get_id() {
  if (!fw_.version_at_least(0, 16)) return -ENOTSUPP_KERNEL;
  Bytes blob(sizeof(sev_user_data_get_id), 0);
  uint32_t len = uint32_t(blob.size());
  int ret = do_cmd(true, [&] { return fw_.get_id(&blob, len); }, &in_.error);
  if (!ret && copy_out_blob(in_.data, blob, len)) ret = -EFAULT;
  return ret;
}

int Call::do_pdh_export() {
  sev_user_data_pdh_cert_export input;
  if (copy_from_user(&input, in_.data, sizeof input)) return -EFAULT;
  Bytes pdh, chain;
  bool have_blobs = false;
  uint32_t pdh_len = 0, chain_len = 0;
  // Any null address or zero length makes it a length query: nothing is allocated and the
  // firmware gets zero addresses and lengths.
  if (input.pdh_cert_address && input.pdh_cert_len && input.cert_chain_address &&
      input.cert_chain_len) {
    if (input.pdh_cert_len > SEV_FW_BLOB_MAX_SIZE) return -EFAULT;
    if (input.cert_chain_len > SEV_FW_BLOB_MAX_SIZE) return -EFAULT;
    pdh.assign(input.pdh_cert_len, 0);
    chain.assign(input.cert_chain_len, 0);
    have_blobs = true;
    pdh_len = input.pdh_cert_len;
    chain_len = input.cert_chain_len;
  }
  bool shutdown_required = false;
  int ret = 0;
  // Moving to INIT changes platform state, which a read-only fd may not do.
  if (!sev_initialized()) ret = writable_ ? move_to_init_state(shutdown_required) : -EPERM;
  if (!ret) {
    ret = do_cmd(true,
                 [&] {
                   return fw_.pdh_cert_export(have_blobs ? &pdh : nullptr, pdh_len,
                                              have_blobs ? &chain : nullptr, chain_len);
                 },
                 &in_.error);
    input.cert_chain_len = chain_len;
    input.pdh_cert_len = pdh_len;
    if (copy_to_user(in_.data, &input, sizeof input))
      ret = -EFAULT;
    else if (!ret && have_blobs && copy_out_blob(input.pdh_cert_address, pdh, pdh_len))
      ret = -EFAULT;
    else if (!ret && have_blobs && copy_out_blob(input.cert_chain_address, chain, chain_len))
      ret = -EFAULT;
  }
  if (shutdown_required) firmware_shutdown();
  return ret;
}

// __sev_do_snp_platform_status: the firmware answers in any SNP state.
int Call::do_snp_platform_status() {
  if (!in_.data) return -EINVAL;
  sev_user_data_snp_status data{};
  int ret = do_cmd(true, [&] { return fw_.snp_platform_status(data); }, &in_.error);
  if (ret) return ret;
  return copy_to_user(in_.data, &data, sizeof data) ? -EFAULT : 0;
}

// No access-mode check: the kernel lets a read-only fd commit.
int Call::do_snp_commit() {
  return do_cmd(true, [&] { return fw_.snp_commit(); }, &in_.error);
}

int Call::do_snp_set_config() {
  if (!in_.data) return -EINVAL;
  if (!writable_) return -EPERM;
  if (!snp_initialized()) return -ENODEV;
  sev_user_data_snp_config config;
  if (copy_from_user(&config, in_.data, sizeof config)) return -EFAULT;
  return do_cmd(true, [&] { return fw_.snp_config(config); }, &in_.error);
}

int Call::do_snp_vlek_load() {
  if (!in_.data) return -EINVAL;
  if (!writable_) return -EPERM;
  if (!snp_initialized()) return -ENODEV;
  sev_user_data_snp_vlek_load input;
  if (copy_from_user(&input, in_.data, sizeof input)) return -EFAULT;
  if (input.len != sizeof input || input.vlek_wrapped_version != 0) return -EINVAL;
  Bytes blob;
  int rc = copy_user_blob(input.vlek_wrapped_address,
                          sizeof(sev_user_data_snp_wrapped_vlek_hashstick), blob);
  if (rc) return rc;
  return do_cmd(true, [&] { return fw_.snp_vlek_load(input, blob); }, &in_.error);
}

int Call::dispatch() {
  if (fault_.err) return -fault_.err;
  switch (in_.cmd) {
    case SEV_FACTORY_RESET: return do_reset();
    case SEV_PLATFORM_STATUS: return do_platform_status();
    case SEV_PEK_GEN: return do_pek_pdh_gen(true);
    case SEV_PDH_GEN: return do_pek_pdh_gen(false);
    case SEV_PEK_CSR: return do_pek_csr();
    case SEV_PEK_CERT_IMPORT: return do_pek_import();
    case SEV_PDH_CERT_EXPORT: return do_pdh_export();
    case SEV_GET_ID: return do_get_id();
    case SEV_GET_ID2: return do_get_id2();
    case SNP_PLATFORM_STATUS: return do_snp_platform_status();
    case SNP_COMMIT: return do_snp_commit();
    case SNP_SET_CONFIG: return do_snp_set_config();
    case SNP_VLEK_LOAD: return do_snp_vlek_load();
    default: return -EINVAL;
  }
}

void trace(const sev_issue_cmd& in, long ret) {
  if (!trace_enabled()) return;
  const char* name = command_name(in.cmd);
  std::string cmd = name ? name : "cmd " + std::to_string(in.cmd);
  if (ret == 0) {
    log_line("%s -> 0 (error=%u)", cmd.c_str(), in.error);
  } else {
    const char* st = status_name(int(in.error));
    log_line("%s -> -1 %s (error=0x%x%s%s)", cmd.c_str(), errno_name(int(-ret)).c_str(),
             in.error, st && in.error ? " " : "", st && in.error ? st : "");
  }
}

}  // namespace

long sev_ioctl(bool writable, unsigned long req, unsigned long arg) {
  if (req != SEV_ISSUE_CMD) {
    if (trace_enabled()) log_line("ioctl 0x%lx -> -1 EINVAL (not SEV_ISSUE_CMD)", req);
    return -EINVAL;
  }
  sev_issue_cmd input;
  if (copy_from_user(&input, arg, sizeof input)) {
    if (trace_enabled()) log_line("SEV_ISSUE_CMD -> -1 EFAULT (argument)");
    return -EFAULT;
  }
  // cmd > SEV_MAX is refused before the mutex, cmd == SEV_MAX by the switch's default;
  // either way nothing is copied back.
  if (input.cmd >= SEV_MAX) {
    if (trace_enabled()) log_line("cmd %u -> -1 EINVAL (unknown command)", input.cmd);
    return -EINVAL;
  }
  long ret;
  try {
    NvSession nv;  // sev_cmd_mutex
    Firmware fw(nv);
    fw.provision_if_needed();
    Call call(fw, input, writable, fault_for_call(input.cmd));
    ret = call.dispatch();
    nv.commit();
  } catch (const std::exception& e) {
    // The model itself failed (state directory unusable, OpenSSL error): report it and
    // behave like a PSP that does not answer.
    log_line("internal error in %s: %s", command_name(input.cmd), e.what());
    ret = -EIO;
  }
  if (copy_to_user(arg, &input, sizeof input)) ret = -EFAULT;
  trace(input, ret);
  return ret;
}

}  // namespace sevemu
