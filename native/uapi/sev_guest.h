// The SEV-SNP guest ABI (Linux include/uapi/linux/sev-guest.h as of 7.2): the /dev/sev-guest
// ioctls a guest uses to ask the firmware (through the hypervisor) for attestation reports and
// derived keys. Carried by the project like the other uapi headers so it builds against old
// kernel headers and drives new kernels. Struct names follow the kernel's, inside namespace uapi;
// ioctl numbers and constants that <linux/sev-guest.h> defines as macros are dropped here (a file
// that wants both includes the system header first), the same values living on in namespace uapi.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/ioctl.h>

#undef SNP_REPORT_USER_DATA_SIZE
#undef SNP_GUEST_REQ_IOC_TYPE
#undef SNP_GET_REPORT
#undef SNP_GET_DERIVED_KEY
#undef SNP_GET_EXT_REPORT
#undef SNP_GUEST_FW_ERR_MASK
#undef SNP_GUEST_VMM_ERR_SHIFT
#undef SNP_GUEST_VMM_ERR
#undef SNP_GUEST_FW_ERR
#undef SNP_GUEST_ERR
#undef SNP_GUEST_VMM_ERR_INVALID_LEN
#undef SNP_GUEST_VMM_ERR_BUSY

namespace uapi {

constexpr unsigned SNP_REPORT_USER_DATA_SIZE = 64;

// The request the kernel wraps into MSG_REPORT_REQ (SNP ABI spec): report data and the VMPL.
struct snp_report_req {
  uint8_t user_data[SNP_REPORT_USER_DATA_SIZE];
  uint32_t vmpl;
  uint8_t rsvd[28];  // must be zero
};

// The decrypted MSG_REPORT_RSP payload: u32 status, u32 report_size, 24 reserved, the report.
struct snp_report_resp {
  uint8_t data[4000];
};

// MSG_KEY_REQ. root_key_select: bit 0 root key (0 VCEK, 1 VMRK), bits 2:1 key select.
struct snp_derived_key_req {
  uint32_t root_key_select;
  uint32_t rsvd;
  uint64_t guest_field_select;
  uint32_t vmpl;
  uint32_t guest_svn;
  uint64_t tcb_version;
};

// The decrypted MSG_KEY_RSP payload: u32 status, 28 reserved, the 32-byte key.
struct snp_derived_key_resp {
  uint8_t data[64];
};

// The ioctl argument. Natural alignment (not packed): msg_version is followed by 7 bytes of
// padding. exitinfo2 is the GHCB's SW_EXITINFO2: bits 31:0 firmware error, 63:32 VMM error; the
// kernel copies the struct back only when exitinfo2 is non-zero.
struct snp_guest_request_ioctl {
  uint8_t msg_version;  // must be non-zero (EINVAL)
  uint64_t req_data;
  uint64_t resp_data;
  union {
    uint64_t exitinfo2;
    struct {
      uint32_t fw_error;
      uint32_t vmm_error;
    };
  };
};

// SNP_GET_EXT_REPORT's request: the report request plus where to put the certificate table.
// certs_len must be 0 (no certificates), or page aligned and at most SEV_FW_BLOB_MAX_SIZE (else
// EINVAL); when it is too small the kernel writes the needed length back here and fails with EIO,
// vmm_error = SNP_GUEST_VMM_ERR_INVALID_LEN.
struct snp_ext_report_req {
  snp_report_req data;
  uint64_t certs_address;
  uint32_t certs_len;
};

constexpr unsigned SNP_GUEST_REQ_IOC_TYPE = 'S';
constexpr unsigned long SNP_GET_REPORT = _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x0, struct snp_guest_request_ioctl);
constexpr unsigned long SNP_GET_DERIVED_KEY = _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x1, struct snp_guest_request_ioctl);
constexpr unsigned long SNP_GET_EXT_REPORT = _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x2, struct snp_guest_request_ioctl);

constexpr unsigned SNP_GUEST_VMM_ERR_SHIFT = 32;
constexpr uint32_t SNP_GUEST_VMM_ERR_INVALID_LEN = 1;
constexpr uint32_t SNP_GUEST_VMM_ERR_BUSY = 2;

static_assert(sizeof(snp_report_req) == 96, "snp_report_req");
static_assert(offsetof(snp_report_req, vmpl) == 64, "snp_report_req.vmpl");
static_assert(offsetof(snp_report_req, rsvd) == 68, "snp_report_req.rsvd");
static_assert(sizeof(snp_report_resp) == 4000, "snp_report_resp");
static_assert(sizeof(snp_derived_key_req) == 32, "snp_derived_key_req");
static_assert(offsetof(snp_derived_key_req, guest_field_select) == 8, "derived_key_req.gfs");
static_assert(offsetof(snp_derived_key_req, vmpl) == 16, "derived_key_req.vmpl");
static_assert(offsetof(snp_derived_key_req, guest_svn) == 20, "derived_key_req.guest_svn");
static_assert(offsetof(snp_derived_key_req, tcb_version) == 24, "derived_key_req.tcb_version");
static_assert(sizeof(snp_derived_key_resp) == 64, "snp_derived_key_resp");
static_assert(sizeof(snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl");
static_assert(offsetof(snp_guest_request_ioctl, req_data) == 8, "guest_request.req_data");
static_assert(offsetof(snp_guest_request_ioctl, resp_data) == 16, "guest_request.resp_data");
static_assert(offsetof(snp_guest_request_ioctl, exitinfo2) == 24, "guest_request.exitinfo2");
static_assert(offsetof(snp_guest_request_ioctl, fw_error) == 24, "guest_request.fw_error");
static_assert(offsetof(snp_guest_request_ioctl, vmm_error) == 28, "guest_request.vmm_error");
static_assert(sizeof(snp_ext_report_req) == 112, "snp_ext_report_req");
static_assert(offsetof(snp_ext_report_req, certs_address) == 96, "ext_report_req.certs_address");
static_assert(offsetof(snp_ext_report_req, certs_len) == 104, "ext_report_req.certs_len");
static_assert(SNP_GET_REPORT == 0xc0205300UL, "SNP_GET_REPORT");
static_assert(SNP_GET_DERIVED_KEY == 0xc0205301UL, "SNP_GET_DERIVED_KEY");
static_assert(SNP_GET_EXT_REPORT == 0xc0205302UL, "SNP_GET_EXT_REPORT");

}  // namespace uapi
