// The /dev/sev platform ABI (Linux include/uapi/linux/psp-sev.h), carried by the project so
// that it builds against old kernel headers (this machine has 6.1) and still drives new kernels.
// Names follow the kernel's so they can be grepped; everything lives in namespace uapi so the
// header can sit beside <linux/kvm.h> and never collides with a system copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/ioctl.h>

namespace uapi {

// SEV_ISSUE_CMD sub-commands (struct sev_issue_cmd.cmd).
enum : uint32_t {
  SEV_FACTORY_RESET = 0,
  SEV_PLATFORM_STATUS,
  SEV_PEK_GEN,
  SEV_PEK_CSR,
  SEV_PDH_GEN,
  SEV_PDH_CERT_EXPORT,
  SEV_PEK_CERT_IMPORT,
  SEV_GET_ID,  // deprecated by the kernel in favour of SEV_GET_ID2
  SEV_GET_ID2,
  SNP_PLATFORM_STATUS,
  SNP_COMMIT,
  SNP_SET_CONFIG,
  SNP_VLEK_LOAD,
  SEV_MAX,
};

// Firmware status codes (sev_ret_code, Linux 7.2). Written by the kernel into sev_issue_cmd.error.
enum : int32_t {
  SEV_RET_NO_FW_CALL = -1,  // kernel-only: the firmware was never called
  SEV_RET_SUCCESS = 0,
  SEV_RET_INVALID_PLATFORM_STATE = 0x01,
  SEV_RET_INVALID_GUEST_STATE = 0x02,
  SEV_RET_INAVLID_CONFIG = 0x03,  // the UAPI's original (misspelled) name, kept as it does
  SEV_RET_INVALID_CONFIG = SEV_RET_INAVLID_CONFIG,
  SEV_RET_INVALID_LEN = 0x04,
  SEV_RET_ALREADY_OWNED = 0x05,
  SEV_RET_INVALID_CERTIFICATE = 0x06,
  SEV_RET_POLICY_FAILURE = 0x07,
  SEV_RET_INACTIVE = 0x08,
  SEV_RET_INVALID_ADDRESS = 0x09,
  SEV_RET_BAD_SIGNATURE = 0x0A,
  SEV_RET_BAD_MEASUREMENT = 0x0B,
  SEV_RET_ASID_OWNED = 0x0C,
  SEV_RET_INVALID_ASID = 0x0D,
  SEV_RET_WBINVD_REQUIRED = 0x0E,
  SEV_RET_DFFLUSH_REQUIRED = 0x0F,
  SEV_RET_INVALID_GUEST = 0x10,
  SEV_RET_INVALID_COMMAND = 0x11,
  SEV_RET_ACTIVE = 0x12,
  SEV_RET_HWSEV_RET_PLATFORM = 0x13,
  SEV_RET_HWSEV_RET_UNSAFE = 0x14,
  SEV_RET_UNSUPPORTED = 0x15,
  SEV_RET_INVALID_PARAM = 0x16,
  SEV_RET_RESOURCE_LIMIT = 0x17,
  SEV_RET_SECURE_DATA_INVALID = 0x18,
  SEV_RET_INVALID_PAGE_SIZE = 0x19,
  SEV_RET_INVALID_PAGE_STATE = 0x1A,
  SEV_RET_INVALID_MDATA_ENTRY = 0x1B,
  SEV_RET_INVALID_PAGE_OWNER = 0x1C,
  SEV_RET_AEAD_OFLOW = 0x1D,
  SEV_RET_EXIT_RING_BUFFER = 0x1F,
  SEV_RET_RMP_INIT_REQUIRED = 0x20,
  SEV_RET_BAD_SVN = 0x21,
  SEV_RET_BAD_VERSION = 0x22,
  SEV_RET_SHUTDOWN_REQUIRED = 0x23,
  SEV_RET_UPDATE_FAILED = 0x24,
  SEV_RET_RESTORE_REQUIRED = 0x25,
  SEV_RET_RMP_INITIALIZATION_FAILED = 0x26,
  SEV_RET_INVALID_KEY = 0x27,
  SEV_RET_SHUTDOWN_INCOMPLETE = 0x28,
  SEV_RET_INCORRECT_BUFFER_LENGTH = 0x30,
  SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST = 0x31,
  SEV_RET_SPDM_REQUEST = 0x32,
  SEV_RET_SPDM_ERROR = 0x33,
  SEV_RET_SEV_STATUS_ERR_IN_DEV_CONN = 0x35,
  SEV_RET_SEV_STATUS_INVALID_DEV_CTX = 0x36,
  SEV_RET_SEV_STATUS_INVALID_TDI_CTX = 0x37,
  SEV_RET_SEV_STATUS_INVALID_TDI = 0x38,
  SEV_RET_SEV_STATUS_RECLAIM_REQUIRED = 0x39,
  SEV_RET_IN_USE = 0x3A,
  SEV_RET_SEV_STATUS_INVALID_DEV_STATE = 0x3B,
  SEV_RET_SEV_STATUS_INVALID_TDI_STATE = 0x3C,
  SEV_RET_SEV_STATUS_DEV_CERT_CHANGED = 0x3D,
  SEV_RET_SEV_STATUS_RESYNC_REQ = 0x3E,
  SEV_RET_SEV_STATUS_RESPONSE_TOO_LARGE = 0x3F,
  SEV_RET_MAX,  // a bound, not a status
};
static_assert(SEV_RET_MAX == 0x40, "SEV_RET_MAX");

// Platform states as PLATFORM_STATUS reports them.
enum : uint8_t { SEV_STATE_UNINIT = 0, SEV_STATE_INIT = 1, SEV_STATE_WORKING = 2 };

// PLATFORM_STATUS flags: bit 0 = owned by an external OCA, bit 8 = SEV-ES configured.
constexpr uint32_t SEV_STATUS_FLAGS_OWNER = 0x0001;
constexpr uint32_t SEV_STATUS_FLAGS_CONFIG_ES = 0x0100;

// Largest blob the kernel will bounce for PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT
// (SEV_FW_BLOB_MAX_SIZE); a larger user length is refused with EFAULT.
constexpr uint32_t SEV_FW_BLOB_MAX_SIZE = 0x4000;

#pragma pack(push, 1)
struct sev_user_data_status {
  uint8_t api_major;
  uint8_t api_minor;
  uint8_t state;
  uint32_t flags;
  uint8_t build;
  uint32_t guest_count;
};

struct sev_user_data_pek_csr {
  uint64_t address;
  uint32_t length;
};

struct sev_user_data_pek_cert_import {
  uint64_t pek_cert_address;
  uint32_t pek_cert_len;
  uint64_t oca_cert_address;
  uint32_t oca_cert_len;
};

struct sev_user_data_pdh_cert_export {
  uint64_t pdh_cert_address;
  uint32_t pdh_cert_len;
  uint64_t cert_chain_address;
  uint32_t cert_chain_len;
};

struct sev_user_data_get_id {
  uint8_t socket1[64];
  uint8_t socket2[64];
};

struct sev_user_data_get_id2 {
  uint64_t address;
  uint32_t length;
};

// The kernel declares the flag words as bitfields; whole words keep the layout explicit.
struct sev_user_data_snp_status {
  uint8_t api_major;
  uint8_t api_minor;
  uint8_t state;
  uint8_t is_rmp_initialized;  // bit 0; bits 1..7 reserved
  uint32_t build_id;
  uint32_t feature_flags;  // bit 0 mask_chip_id, 1 mask_chip_key, 2 vlek_en, 3 feature_info,
                           // 4 rapl_dis, 5 ciphertext_hiding_cap, 6 ciphertext_hiding_en
  uint32_t guest_count;
  uint64_t current_tcb_version;
  uint64_t reported_tcb_version;
};

struct sev_user_data_snp_config {
  uint64_t reported_tcb;
  uint32_t flags;  // bit 0 mask_chip_id, bit 1 mask_chip_key
  uint8_t rsvd1[52];
};

struct sev_user_data_snp_vlek_load {
  uint32_t len;
  uint8_t vlek_wrapped_version;
  uint8_t rsvd[3];
  uint64_t vlek_wrapped_address;
};

struct sev_user_data_snp_wrapped_vlek_hashstick {
  uint8_t data[432];
};

struct sev_issue_cmd {
  uint32_t cmd;
  uint64_t data;
  uint32_t error;
};
#pragma pack(pop)

constexpr unsigned long SEV_ISSUE_CMD = _IOWR('S', 0x0, struct sev_issue_cmd);

static_assert(sizeof(sev_user_data_status) == 12, "sev_user_data_status");
static_assert(offsetof(sev_user_data_status, flags) == 3, "status.flags");
static_assert(offsetof(sev_user_data_status, build) == 7, "status.build");
static_assert(offsetof(sev_user_data_status, guest_count) == 8, "status.guest_count");
static_assert(sizeof(sev_user_data_pek_csr) == 12, "sev_user_data_pek_csr");
static_assert(sizeof(sev_user_data_pek_cert_import) == 24, "sev_user_data_pek_cert_import");
static_assert(offsetof(sev_user_data_pek_cert_import, oca_cert_address) == 12, "import.oca");
static_assert(sizeof(sev_user_data_pdh_cert_export) == 24, "sev_user_data_pdh_cert_export");
static_assert(offsetof(sev_user_data_pdh_cert_export, cert_chain_address) == 12, "export.chain");
static_assert(sizeof(sev_user_data_get_id) == 128, "sev_user_data_get_id");
static_assert(sizeof(sev_user_data_get_id2) == 12, "sev_user_data_get_id2");
static_assert(sizeof(sev_user_data_snp_status) == 32, "sev_user_data_snp_status");
static_assert(offsetof(sev_user_data_snp_status, current_tcb_version) == 16, "snp_status.tcb");
static_assert(sizeof(sev_user_data_snp_config) == 64, "sev_user_data_snp_config");
static_assert(sizeof(sev_user_data_snp_vlek_load) == 16, "sev_user_data_snp_vlek_load");
static_assert(sizeof(sev_issue_cmd) == 16, "sev_issue_cmd");
static_assert(offsetof(sev_issue_cmd, data) == 4, "sev_issue_cmd.data");
static_assert(offsetof(sev_issue_cmd, error) == 12, "sev_issue_cmd.error");
static_assert(SEV_ISSUE_CMD == 0xc0105300UL, "SEV_ISSUE_CMD");

}  // namespace uapi
