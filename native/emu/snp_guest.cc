#include "snp_guest.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cpu_model.h"
#include "firmware.h"
#include "snp_ca.h"
#include "snp_messages.h"
#include "uapi/psp_sev.h"
#include "uapi/sev_guest.h"
#include "user_mem.h"

namespace sevemu {
namespace {

using namespace uapi;

constexpr uint32_t kPageSize = 4096;

// The guest as launched: what its launch fixed (SNP_LAUNCH_START/FINISH) and what the
// firmware therefore reports. Set by `sev-emu run --guest-*`; `vmpl` is the VMPL the guest
// kernel runs at (its VMPCK), 0 without an SVSM.
struct GuestConfig : fw::SnpGuestFacts {
  bool certs = true;  // the host supplies VCEK, ASK, ARK with extended reports
};

bool hex_into(const char* name, uint8_t* out, size_t len) {
  const char* v = getenv(name);
  if (!v || !*v) return false;
  if (strlen(v) != 2 * len) {
    log_line("%s must be %zu hex digits; ignored", name, 2 * len);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    char byte[3] = {v[2 * i], v[2 * i + 1], 0};
    char* end;
    unsigned long b = strtoul(byte, &end, 16);
    if (*end) {
      log_line("%s is not hex; ignored", name);
      memset(out, 0, len);
      return false;
    }
    out[i] = uint8_t(b);
  }
  return true;
}

uint64_t number(const char* name, uint64_t fallback, uint64_t max) {
  const char* v = getenv(name);
  if (!v || !*v) return fallback;
  char* end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 0);
  if (*end || errno || n > max) {
    log_line("%s=%s is not a number up to %llu; ignored", name, v, (unsigned long long)max);
    return fallback;
  }
  return n;
}

const GuestConfig& guest() {
  static const GuestConfig g = [] {
    GuestConfig c;
    hex_into("SEV_EMU_GUEST_MEASUREMENT", c.measurement, 48);
    c.policy = number("SEV_EMU_GUEST_POLICY", c.policy, UINT64_MAX);
    hex_into("SEV_EMU_GUEST_HOST_DATA", c.host_data, 32);
    hex_into("SEV_EMU_GUEST_FAMILY_ID", c.family_id, 16);
    hex_into("SEV_EMU_GUEST_IMAGE_ID", c.image_id, 16);
    c.guest_svn = uint32_t(number("SEV_EMU_GUEST_SVN", 0, UINT32_MAX));
    c.vmpl = uint32_t(number("SEV_EMU_GUEST_VMPL", 0, 3));
    hex_into("SEV_EMU_GUEST_ID_KEY_DIGEST", c.id_key_digest, 48);
    c.author_key = hex_into("SEV_EMU_GUEST_AUTHOR_KEY_DIGEST", c.author_key_digest, 48);
    const char* certs = getenv("SEV_EMU_GUEST_CERTS");
    c.certs = !(certs && strcmp(certs, "none") == 0);
    return c;
  }();
  return g;
}

// The certificate blob a host with VCEK, ASK and ARK configured returns with an extended
// guest request (GHCB spec "SNP Extended Guest Request"): a table of {GUID, offset, length}
// ending with a zero entry, then the DER certificates. GUIDs in RFC 4122 byte order.
Bytes cert_blob(NvSession& nv) {
  static const uint8_t kVcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                    0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
  static const uint8_t kAsk[16] = {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
                                   0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82};
  static const uint8_t kArk[16] = {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
                                   0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae};
  const PlatformState& s = nv.state();
  uint64_t reported = s.snp_reported_tcb ? s.snp_reported_tcb : nv.config().gen->snp_tcb;
  const Bytes vcek = snp_ca::vcek_der(nv, reported);
  const Bytes* certs[] = {&vcek, &snp_ca::ask_der(nv), &snp_ca::ark_der(nv)};
  const uint8_t* guids[] = {kVcek, kAsk, kArk};
  constexpr size_t kEntry = 24;
  Bytes blob(4 * kEntry, 0);
  for (int i = 0; i < 3; i++) {
    uint8_t* e = blob.data() + i * kEntry;
    memcpy(e, guids[i], 16);
    put_le32(e + 16, uint32_t(blob.size()));
    put_le32(e + 20, uint32_t(certs[i]->size()));
    blob.insert(blob.end(), certs[i]->begin(), certs[i]->end());
  }
  return blob;
}

// One guest request as the firmware (and, for certificates, the host) answers it. Holds the
// state lock for its duration, like the kernel's snp_cmd_mutex and the host's sev_cmd_mutex.
template <typename Fn>
int with_platform(Fn fn) {
  try {
    NvSession nv;
    Firmware fw(nv);
    fw.provision_if_needed();
    if (!nv.config().gen->snp || !nv.state().snp_init) {
      log_line("/dev/sev-guest: the emulated platform has no SNP initialized (create the state with --host-snp)");
      return -ENODEV;
    }
    int r = fn(nv);
    nv.commit();
    return r;
  } catch (const std::exception& e) {
    log_line("internal error in a guest request: %s", e.what());
    return -EIO;
  }
}

constexpr size_t kRespHeader = 32;  // u32 status, u32 report_size / reserved

int get_report(snp_guest_request_ioctl& io) {
  if (!io.req_data || !io.resp_data) return -EINVAL;
  snp_report_req req;
  if (copy_from_user(&req, io.req_data, sizeof req)) return -EFAULT;
  fw::GuestMessageReply reply;
  int r = with_platform([&](NvSession& nv) {
    reply = fw::make_report(nv, guest(), req);
    return 0;
  });
  io.exitinfo2 = 0;
  if (r) return r;
  snp_report_resp resp{};
  put_le32(resp.data, reply.status);
  put_le32(resp.data + 4, uint32_t(reply.report.size()));
  memcpy(resp.data + kRespHeader, reply.report.data(), reply.report.size());
  return copy_to_user(io.resp_data, &resp, sizeof resp) ? -EFAULT : 0;
}

int get_derived_key(snp_guest_request_ioctl& io) {
  if (!io.req_data || !io.resp_data) return -EINVAL;
  snp_derived_key_req req;
  if (copy_from_user(&req, io.req_data, sizeof req)) return -EFAULT;
  fw::GuestMessageReply reply;
  int r = with_platform([&](NvSession& nv) {
    reply = fw::derive_key(nv, guest(), req);
    return 0;
  });
  io.exitinfo2 = 0;
  if (r) return r;
  snp_derived_key_resp resp{};
  put_le32(resp.data, reply.status);
  if (!reply.key.empty()) memcpy(resp.data + kRespHeader, reply.key.data(), 32);
  return copy_to_user(io.resp_data, &resp, sizeof resp) ? -EFAULT : 0;
}

// The extended request (get_ext_report): certificates into a page-aligned buffer of at most
// SEV_FW_BLOB_MAX_SIZE; when it is too small the kernel reissues a plain request (so the
// sequence number advances), returns EIO with VMM error INVALID_LEN and writes the needed
// length back into the request, copying neither report nor certificates.
int get_ext_report_into(snp_ext_report_req& req, Bytes& resp_data, Bytes& certs, uint64_t& exitinfo2) {
  bool want_certs = req.certs_len && req.certs_address;
  if (want_certs && (req.certs_len > SEV_FW_BLOB_MAX_SIZE || req.certs_len % kPageSize)) return -EINVAL;
  fw::GuestMessageReply reply;
  Bytes blob;
  int r = with_platform([&](NvSession& nv) {
    reply = fw::make_report(nv, guest(), req.data);
    if (guest().certs) blob = cert_blob(nv);
    return 0;
  });
  exitinfo2 = 0;
  if (r) return r;
  uint32_t needed = uint32_t((blob.size() + kPageSize - 1) / kPageSize * kPageSize);
  if (want_certs && needed > req.certs_len) {
    exitinfo2 = uint64_t(SNP_GUEST_VMM_ERR_INVALID_LEN) << 32;
    req.certs_len = needed;
    return -EIO;
  }
  if (want_certs) {
    certs.assign(req.certs_len, 0);
    std::copy(blob.begin(), blob.end(), certs.begin());
  }
  resp_data.assign(sizeof(snp_report_resp), 0);
  put_le32(resp_data.data(), reply.status);
  put_le32(resp_data.data() + 4, uint32_t(reply.report.size()));
  std::copy(reply.report.begin(), reply.report.end(), resp_data.begin() + kRespHeader);
  return 0;
}

int get_ext_report(snp_guest_request_ioctl& io) {
  if (!io.req_data || !io.resp_data) return -EINVAL;
  snp_ext_report_req req;
  if (copy_from_user(&req, io.req_data, sizeof req)) return -EFAULT;
  if (req.certs_len && req.certs_address) {
    // access_ok on the whole certificate buffer before any guest request
    Bytes probe(req.certs_len);
    if (copy_from_user(probe.data(), req.certs_address, probe.size())) return -EFAULT;
  }
  Bytes resp, certs;
  int r = get_ext_report_into(req, resp, certs, io.exitinfo2);
  if (io.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN &&
      copy_to_user(io.req_data, &req, sizeof req))
    r = -EFAULT;
  if (r) return r;
  if (!certs.empty() && copy_to_user(req.certs_address, certs.data(), certs.size())) return -EFAULT;
  return copy_to_user(io.resp_data, resp.data(), resp.size()) ? -EFAULT : 0;
}

}  // namespace

bool snp_guest_enabled() {
  static const bool on = [] {
    const char* v = getenv("SEV_EMU_GUEST");
    return v && strcmp(v, "1") == 0;
  }();
  return on;
}

// snp_guest_ioctl: copy in, exitinfo2 preset to 0xff, msg_version must be non-zero, dispatch,
// and copy the argument back only when exitinfo2 is non-zero.
long SevGuestFile::ioctl(int, unsigned long req, unsigned long arg) {
  snp_guest_request_ioctl io;
  if (copy_from_user(&io, arg, sizeof io)) return -EFAULT;
  io.exitinfo2 = 0xff;
  if (!io.msg_version) return -EINVAL;
  long ret = -ENOTTY;
  switch (req) {
    case SNP_GET_REPORT: ret = get_report(io); break;
    case SNP_GET_DERIVED_KEY: ret = get_derived_key(io); break;
    case SNP_GET_EXT_REPORT: ret = get_ext_report(io); break;
    default: break;
  }
  if (io.exitinfo2 && copy_to_user(arg, &io, sizeof io)) return -EFAULT;
  if (trace_enabled()) log_line("sev-guest ioctl 0x%lx -> %ld exitinfo2 0x%llx", req, ret, (unsigned long long)io.exitinfo2);
  return ret;
}

// sev_report_new: an extended request with a 16 KiB certificate buffer; firmware statuses
// INVALID_PARAM and INVALID_KEY are EINVAL, any other ENXIO.
int snp_guest_tsm_report(const uint8_t user_data[64], uint32_t vmpl, Bytes& report, Bytes& certs) {
  snp_ext_report_req req{};
  memcpy(req.data.user_data, user_data, 64);
  req.data.vmpl = vmpl;
  req.certs_address = 1;  // a kernel buffer: any non-zero address
  req.certs_len = SEV_FW_BLOB_MAX_SIZE;
  Bytes resp, table;
  uint64_t exitinfo2;
  int r = get_ext_report_into(req, resp, table, exitinfo2);
  if (r) return r;
  uint32_t status = get_le32(resp.data());
  if (status == SEV_RET_INVALID_PARAM || status == SEV_RET_INVALID_KEY) return -EINVAL;
  if (status) return -ENXIO;
  uint32_t size = get_le32(resp.data() + 4);
  report.assign(resp.begin() + kRespHeader, resp.begin() + kRespHeader + size);
  // auxblob: the table and certificates up to the furthest entry's end.
  size_t end = 0;
  for (size_t off = 0; off + 24 <= table.size(); off += 24) {
    const uint8_t* e = table.data() + off;
    bool zero = true;
    for (int i = 0; i < 24; i++) zero &= e[i] == 0;
    if (zero) break;
    end = std::max<size_t>(end, size_t(get_le32(e + 16)) + get_le32(e + 20));
  }
  certs.assign(table.begin(), table.begin() + std::min(end, table.size()));
  return 0;
}

}  // namespace sevemu
