// The SEV-SNP guest device ABI (Linux include/uapi/linux/sev-guest.h, 7.2): /dev/sev-guest
// ioctls a program inside an SNP guest uses to ask the firmware for attestation reports and
// derived keys. Carried by the project, in namespace uapi, like psp_sev.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/ioctl.h>

namespace uapi {

constexpr uint32_t SNP_REPORT_USER_DATA_SIZE = 64;

struct snp_report_req {
  uint8_t user_data[SNP_REPORT_USER_DATA_SIZE];  // report data placed in the report
  uint32_t vmpl;                                 // VMPL to put in the report (>= the caller's)
  uint8_t rsvd[28];                              // must be zero
};

struct snp_report_resp {
  uint8_t data[4000];  // MSG_REPORT_RSP: u32 status, u32 report_size, 24 reserved, report
};

struct snp_derived_key_req {
  uint32_t root_key_select;  // bit 0: 0 VCEK, 1 VMRK; bits 2:1 key select (ABI 1.55)
  uint32_t rsvd;
  uint64_t guest_field_select;  // which guest fields are mixed into the key
  uint32_t vmpl;
  uint32_t guest_svn;
  uint64_t tcb_version;
};

struct snp_derived_key_resp {
  uint8_t data[64];  // MSG_KEY_RSP: u32 status, 28 reserved, key[32]
};

struct snp_guest_request_ioctl {
  uint8_t msg_version;  // must be non-zero
  uint64_t req_data;
  uint64_t resp_data;
  union {
    uint64_t exitinfo2;  // bits 63:32 VMM error, 31:0 firmware error
    struct {
      uint32_t fw_error;
      uint32_t vmm_error;
    };
  };
};

struct snp_ext_report_req {
  snp_report_req data;
  uint64_t certs_address;  // page-aligned length below; 0 = no certificates wanted
  uint32_t certs_len;
};

constexpr unsigned long SNP_GET_REPORT = _IOWR('S', 0x0, struct snp_guest_request_ioctl);
constexpr unsigned long SNP_GET_DERIVED_KEY = _IOWR('S', 0x1, struct snp_guest_request_ioctl);
constexpr unsigned long SNP_GET_EXT_REPORT = _IOWR('S', 0x2, struct snp_guest_request_ioctl);

// snp_guest_request_ioctl.vmm_error
constexpr uint32_t SNP_GUEST_VMM_ERR_INVALID_LEN = 1;  // certs_len too small; needed length written back
constexpr uint32_t SNP_GUEST_VMM_ERR_BUSY = 2;

static_assert(sizeof(snp_report_req) == 96, "snp_report_req");
static_assert(sizeof(snp_report_resp) == 4000, "snp_report_resp");
static_assert(sizeof(snp_derived_key_req) == 32, "snp_derived_key_req");
static_assert(offsetof(snp_derived_key_req, guest_field_select) == 8, "derived_key_req.guest_field_select");
static_assert(offsetof(snp_derived_key_req, tcb_version) == 24, "derived_key_req.tcb_version");
static_assert(sizeof(snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl");
static_assert(offsetof(snp_guest_request_ioctl, req_data) == 8, "guest_request.req_data");
static_assert(offsetof(snp_guest_request_ioctl, exitinfo2) == 24, "guest_request.exitinfo2");
static_assert(sizeof(snp_ext_report_req) == 112, "snp_ext_report_req");
static_assert(offsetof(snp_ext_report_req, certs_len) == 104, "ext_report_req.certs_len");
static_assert(SNP_GET_REPORT == 0xc0205300, "SNP_GET_REPORT");
static_assert(SNP_GET_EXT_REPORT == 0xc0205302, "SNP_GET_EXT_REPORT");

}  // namespace uapi
