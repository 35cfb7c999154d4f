// The SEV parts of KVM's ABI (Linux include/uapi/linux/kvm.h and
// arch/x86/include/uapi/asm/kvm.h as of Linux 7.2), carried by the project so it builds against
// 6.1 headers and drives newer kernels. Private memory (guest_memfd, memory attributes) is in
// kvm_memory.h, the kvm_run exits SEV adds in kvm_run.h. Struct names follow the kernel's
// inside namespace uapi; ioctl numbers and capabilities that <linux/kvm.h> may also define as
// macros are spelled with a KVMIO_/CAP_ prefix here so the two never collide.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/ioctl.h>

// Linux 6.10+ <linux/kvm.h> defines these constants as macros, which would turn the declarations
// below into syntax errors: a file that needs both includes <linux/kvm.h> first, and the macros
// are dropped here (the same values live on in namespace uapi). Not including <linux/kvm.h> here
// keeps its global struct and enum names out of files that say `using namespace uapi`.
#undef KVM_X86_DEFAULT_VM
#undef KVM_X86_SW_PROTECTED_VM
#undef KVM_X86_SEV_VM
#undef KVM_X86_SEV_ES_VM
#undef KVM_X86_SNP_VM
#undef KVM_X86_TDX_VM
#undef KVM_X86_GRP_SEV
#undef KVM_X86_SEV_VMSA_FEATURES
#undef KVM_X86_SNP_POLICY_BITS
#undef KVM_X86_SEV_SNP_REQ_CERTS
#undef KVM_SEV_PAGE_TYPE_INVALID
#undef KVM_SEV_SNP_PAGE_TYPE_NORMAL
#undef KVM_SEV_SNP_PAGE_TYPE_ZERO
#undef KVM_SEV_SNP_PAGE_TYPE_UNMEASURED
#undef KVM_SEV_SNP_PAGE_TYPE_SECRETS
#undef KVM_SEV_SNP_PAGE_TYPE_CPUID
#undef KVM_SEV_SNP_ID_BLOCK_SIZE
#undef KVM_SEV_SNP_ID_AUTH_SIZE
#undef KVM_SEV_SNP_FINISH_DATA_SIZE

namespace uapi {

constexpr unsigned KVMIO_TYPE = 0xAE;

// KVM_MEMORY_ENCRYPT_OP sub-commands (struct kvm_sev_cmd.id).
enum : uint32_t {
  KVM_SEV_INIT = 0,
  KVM_SEV_ES_INIT,
  KVM_SEV_LAUNCH_START,
  KVM_SEV_LAUNCH_UPDATE_DATA,
  KVM_SEV_LAUNCH_UPDATE_VMSA,
  KVM_SEV_LAUNCH_SECRET,
  KVM_SEV_LAUNCH_MEASURE,
  KVM_SEV_LAUNCH_FINISH,
  KVM_SEV_SEND_START,
  KVM_SEV_SEND_UPDATE_DATA,
  KVM_SEV_SEND_UPDATE_VMSA,
  KVM_SEV_SEND_FINISH,
  KVM_SEV_RECEIVE_START,
  KVM_SEV_RECEIVE_UPDATE_DATA,
  KVM_SEV_RECEIVE_UPDATE_VMSA,
  KVM_SEV_RECEIVE_FINISH,
  KVM_SEV_GUEST_STATUS,
  KVM_SEV_DBG_DECRYPT,
  KVM_SEV_DBG_ENCRYPT,
  KVM_SEV_CERT_EXPORT,
  KVM_SEV_GET_ATTESTATION_REPORT,
  KVM_SEV_SEND_CANCEL,
  KVM_SEV_INIT2,
  KVM_SEV_SNP_LAUNCH_START = 100,
  KVM_SEV_SNP_LAUNCH_UPDATE,
  KVM_SEV_SNP_LAUNCH_FINISH,
  KVM_SEV_SNP_ENABLE_REQ_CERTS,  // 7.2: certificate requests exit to user space (KVM_EXIT_SNP_REQ_CERTS)
  KVM_SEV_NR_MAX,
};
static_assert(KVM_SEV_SNP_ENABLE_REQ_CERTS == 103 && KVM_SEV_NR_MAX == 104, "KVM_SEV_NR_MAX (7.2)");

// VM types for KVM_CREATE_VM (x86).
enum : uint32_t {
  KVM_X86_DEFAULT_VM = 0,
  KVM_X86_SW_PROTECTED_VM = 1,
  KVM_X86_SEV_VM = 2,
  KVM_X86_SEV_ES_VM = 3,
  KVM_X86_SNP_VM = 4,
  KVM_X86_TDX_VM = 5,
};

// Capabilities and device attributes used for SEV discovery.
constexpr uint32_t CAP_VM_TYPES = 235;       // KVM_CAP_VM_TYPES: bitmask of 1 << type
constexpr uint32_t CAP_EXIT_HYPERCALL = 201;  // KVM_CAP_EXIT_HYPERCALL
constexpr uint32_t KVM_X86_GRP_SEV = 1;       // KVM_GET_DEVICE_ATTR group on /dev/kvm
constexpr uint32_t KVM_X86_SEV_VMSA_FEATURES = 0;
constexpr uint32_t KVM_X86_SNP_POLICY_BITS = 1;
constexpr uint32_t KVM_X86_SEV_SNP_REQ_CERTS = 2;  // 1 when KVM_SEV_SNP_ENABLE_REQ_CERTS is offered

// SNP page types for KVM_SEV_SNP_LAUNCH_UPDATE (same values as the firmware's).
enum : uint8_t {
  KVM_SEV_PAGE_TYPE_INVALID = 0x0,
  KVM_SEV_SNP_PAGE_TYPE_NORMAL = 0x1,
  KVM_SEV_SNP_PAGE_TYPE_ZERO = 0x3,
  KVM_SEV_SNP_PAGE_TYPE_UNMEASURED = 0x4,
  KVM_SEV_SNP_PAGE_TYPE_SECRETS = 0x5,
  KVM_SEV_SNP_PAGE_TYPE_CPUID = 0x6,
};
constexpr uint32_t KVM_SEV_SNP_ID_BLOCK_SIZE = 96;
constexpr uint32_t KVM_SEV_SNP_ID_AUTH_SIZE = 4096;
constexpr uint32_t KVM_SEV_SNP_FINISH_DATA_SIZE = 32;

struct kvm_sev_cmd {
  uint32_t id;
  uint32_t pad0;
  uint64_t data;
  uint32_t error;
  uint32_t sev_fd;
};

struct kvm_sev_init {
  uint64_t vmsa_features;
  uint32_t flags;
  uint16_t ghcb_version;
  uint16_t pad1;
  uint32_t pad2[8];
};

struct kvm_sev_launch_start {
  uint32_t handle;
  uint32_t policy;
  uint64_t dh_uaddr;
  uint32_t dh_len;
  uint32_t pad0;
  uint64_t session_uaddr;
  uint32_t session_len;
  uint32_t pad1;
};

struct kvm_sev_launch_update_data {
  uint64_t uaddr;
  uint32_t len;
  uint32_t pad0;
};

struct kvm_sev_launch_secret {
  uint64_t hdr_uaddr;
  uint32_t hdr_len;
  uint32_t pad0;
  uint64_t guest_uaddr;
  uint32_t guest_len;
  uint32_t pad1;
  uint64_t trans_uaddr;
  uint32_t trans_len;
  uint32_t pad2;
};

struct kvm_sev_launch_measure {
  uint64_t uaddr;
  uint32_t len;
  uint32_t pad0;
};

struct kvm_sev_guest_status {
  uint32_t handle;
  uint32_t policy;
  uint32_t state;
};

struct kvm_sev_dbg {
  uint64_t src_uaddr;
  uint64_t dst_uaddr;
  uint32_t len;
  uint32_t pad0;
};

struct kvm_sev_attestation_report {
  uint8_t mnonce[16];
  uint64_t uaddr;
  uint32_t len;
  uint32_t pad0;
};

struct kvm_sev_send_start {
  uint32_t policy;
  uint32_t pad0;
  uint64_t pdh_cert_uaddr;
  uint32_t pdh_cert_len;
  uint32_t pad1;
  uint64_t plat_certs_uaddr;
  uint32_t plat_certs_len;
  uint32_t pad2;
  uint64_t amd_certs_uaddr;
  uint32_t amd_certs_len;
  uint32_t pad3;
  uint64_t session_uaddr;
  uint32_t session_len;
  uint32_t pad4;
};

struct kvm_sev_send_update_data {
  uint64_t hdr_uaddr;
  uint32_t hdr_len;
  uint32_t pad0;
  uint64_t guest_uaddr;
  uint32_t guest_len;
  uint32_t pad1;
  uint64_t trans_uaddr;
  uint32_t trans_len;
  uint32_t pad2;
};

struct kvm_sev_receive_start {
  uint32_t handle;
  uint32_t policy;
  uint64_t pdh_uaddr;
  uint32_t pdh_len;
  uint32_t pad0;
  uint64_t session_uaddr;
  uint32_t session_len;
  uint32_t pad1;
};

using kvm_sev_receive_update_data = kvm_sev_send_update_data;  // identical layout in the kernel

struct kvm_sev_snp_launch_start {
  uint64_t policy;
  uint8_t gosvw[16];
  uint16_t flags;
  uint8_t pad0[6];
  uint64_t pad1[4];
};

struct kvm_sev_snp_launch_update {
  uint64_t gfn_start;
  uint64_t uaddr;
  uint64_t len;
  uint8_t type;
  uint8_t pad0;
  uint16_t flags;
  uint32_t pad1;
  uint64_t pad2[4];
};

struct kvm_sev_snp_launch_finish {
  uint64_t id_block_uaddr;
  uint64_t id_auth_uaddr;
  uint8_t id_block_en;
  uint8_t auth_key_en;
  uint8_t vcek_disabled;
  uint8_t host_data[KVM_SEV_SNP_FINISH_DATA_SIZE];
  uint8_t pad0[3];
  uint16_t flags;
  uint64_t pad1[4];
};

struct kvm_enc_region {
  uint64_t addr;
  uint64_t size;
};

// ioctl numbers (the kernel's KVM_MEMORY_ENCRYPT_OP etc.).
constexpr unsigned long KVMIO_MEMORY_ENCRYPT_OP = _IOWR(KVMIO_TYPE, 0xba, unsigned long);
constexpr unsigned long KVMIO_MEMORY_ENCRYPT_REG_REGION = _IOR(KVMIO_TYPE, 0xbb, struct kvm_enc_region);
constexpr unsigned long KVMIO_MEMORY_ENCRYPT_UNREG_REGION = _IOR(KVMIO_TYPE, 0xbc, struct kvm_enc_region);

static_assert(sizeof(kvm_sev_cmd) == 24, "kvm_sev_cmd");
static_assert(offsetof(kvm_sev_cmd, data) == 8 && offsetof(kvm_sev_cmd, sev_fd) == 20, "kvm_sev_cmd");
static_assert(sizeof(kvm_sev_init) == 48, "kvm_sev_init");
static_assert(sizeof(kvm_sev_launch_start) == 40, "kvm_sev_launch_start");
static_assert(offsetof(kvm_sev_launch_start, session_uaddr) == 24, "launch_start.session");
static_assert(sizeof(kvm_sev_launch_update_data) == 16, "kvm_sev_launch_update_data");
static_assert(sizeof(kvm_sev_launch_secret) == 48, "kvm_sev_launch_secret");
static_assert(offsetof(kvm_sev_launch_secret, trans_uaddr) == 32, "launch_secret.trans");
static_assert(sizeof(kvm_sev_launch_measure) == 16, "kvm_sev_launch_measure");
static_assert(sizeof(kvm_sev_guest_status) == 12, "kvm_sev_guest_status");
static_assert(sizeof(kvm_sev_dbg) == 24, "kvm_sev_dbg");
static_assert(sizeof(kvm_sev_attestation_report) == 32, "kvm_sev_attestation_report");
static_assert(offsetof(kvm_sev_attestation_report, uaddr) == 16, "attestation_report.uaddr");
static_assert(sizeof(kvm_sev_send_start) == 72, "kvm_sev_send_start");
static_assert(sizeof(kvm_sev_send_update_data) == 48, "kvm_sev_send_update_data");
static_assert(sizeof(kvm_sev_receive_start) == 40, "kvm_sev_receive_start");
static_assert(sizeof(kvm_sev_snp_launch_start) == 64, "kvm_sev_snp_launch_start");
static_assert(offsetof(kvm_sev_snp_launch_start, flags) == 24, "snp_launch_start.flags");
static_assert(sizeof(kvm_sev_snp_launch_update) == 64, "kvm_sev_snp_launch_update");
static_assert(offsetof(kvm_sev_snp_launch_update, type) == 24, "snp_launch_update.type");
static_assert(sizeof(kvm_sev_snp_launch_finish) == 88, "kvm_sev_snp_launch_finish");
static_assert(offsetof(kvm_sev_snp_launch_finish, host_data) == 19, "snp_launch_finish.host_data");
static_assert(offsetof(kvm_sev_snp_launch_finish, flags) == 54, "snp_launch_finish.flags");
static_assert(sizeof(kvm_enc_region) == 16, "kvm_enc_region");
static_assert(KVMIO_MEMORY_ENCRYPT_OP == 0xc008aebaUL, "KVM_MEMORY_ENCRYPT_OP");
static_assert(KVMIO_MEMORY_ENCRYPT_REG_REGION == 0x8010aebbUL, "KVM_MEMORY_ENCRYPT_REG_REGION");
static_assert(KVMIO_MEMORY_ENCRYPT_UNREG_REGION == 0x8010aebcUL, "KVM_MEMORY_ENCRYPT_UNREG_REGION");

}  // namespace uapi
