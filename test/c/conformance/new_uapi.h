/* What Linux 7.2's UAPI has and the system's headers (6.1 on the development machine) lack.
 * Each definition is guarded, so newer system headers win; values are copied as facts from
 * the 7.2 headers named in each block. Include after the system headers. */
#ifndef SEV_CONFORMANCE_NEW_UAPI_H
#define SEV_CONFORMANCE_NEW_UAPI_H

#include <linux/kvm.h>
#include <linux/psp-sev.h>
#include <linux/types.h>

/* ---- /dev/sev (include/uapi/linux/psp-sev.h) ---- */
/* enum sev_cmd continues after SEV_GET_ID2 (8); 6.1's SEV_MAX is 9, 7.2's is 13. */
#define CMD_SNP_PLATFORM_STATUS 9
#define CMD_SNP_COMMIT 10
#define CMD_SNP_SET_CONFIG 11
#define CMD_SNP_VLEK_LOAD 12
#define CMD_SEV_MAX_7_2 13

#define SNP_STATUS_SIZE 32     /* struct sev_user_data_snp_status (packed) */
#define SNP_CONFIG_SIZE 64     /* struct sev_user_data_snp_config (packed) */
#define SNP_VLEK_LOAD_SIZE 16  /* struct sev_user_data_snp_vlek_load (packed) */

/* struct sev_user_data_snp_status (7.2, __packed): the enum and struct arrived in 6.9 with no macro
 * to test for, so the project names its copy; bit-fields are spelled as whole words here. */
struct snp_platform_status_7_2 {
  __u8 api_major;
  __u8 api_minor;
  __u8 state;
  __u8 rmp_flags;     /* bit 0: is_rmp_initialized */
  __u32 build_id;
  __u32 feature_bits; /* bit 0 mask_chip_id, 1 mask_chip_key, 2 vlek_en, 3 feature_info, ... */
  __u32 guest_count;
  __u64 current_tcb_version;
  __u64 reported_tcb_version;
} __attribute__((packed));
_Static_assert(sizeof(struct snp_platform_status_7_2) == SNP_STATUS_SIZE, "sev_user_data_snp_status size");

#ifndef SEV_FW_BLOB_MAX_SIZE
#define SEV_FW_BLOB_MAX_SIZE 0x4000
#endif

/* ---- KVM (arch/x86/include/uapi/asm/kvm.h, include/uapi/linux/kvm.h, 7.2) ---- */

/* VM types and KVM_SEV_INIT2 arrived together (6.10); KVM_X86_SEV_VM marks headers that
 * have them, including struct kvm_sev_init and the KVM_X86_GRP_SEV group. */
#ifndef KVM_X86_SEV_VM
#define KVM_X86_DEFAULT_VM 0
#define KVM_X86_SEV_VM 2
#define KVM_X86_SEV_ES_VM 3
#define KVM_SEV_INIT2 22 /* enum sev_cmd_id: after KVM_SEV_SEND_CANCEL (21) */
#define KVM_X86_GRP_SEV 1
#define KVM_X86_SEV_VMSA_FEATURES 0
struct kvm_sev_init {
  __u64 vmsa_features;
  __u32 flags;
  __u16 ghcb_version;
  __u16 pad1;
  __u32 pad2[8];
};
#endif
#ifndef KVM_X86_SNP_VM
#define KVM_X86_SNP_VM 4
#endif
#ifndef KVM_X86_SNP_POLICY_BITS
#define KVM_X86_SNP_POLICY_BITS 1
#endif
#ifndef KVM_X86_SEV_SNP_REQ_CERTS
#define KVM_X86_SEV_SNP_REQ_CERTS 2
#endif
#ifndef KVM_SEV_SNP_LAUNCH_START
#define KVM_SEV_SNP_LAUNCH_START 100 /* enum sev_cmd_id: SNP commands start at 100 */
#define KVM_SEV_SNP_LAUNCH_UPDATE 101
#define KVM_SEV_SNP_LAUNCH_FINISH 102
#endif
#ifndef KVM_SEV_SNP_ENABLE_REQ_CERTS
#define KVM_SEV_SNP_ENABLE_REQ_CERTS 103 /* 7.2 */
#endif
/* SNP launch (arch/x86/include/uapi/asm/kvm.h, 6.11 on): page types, blob sizes and the three
 * command structs arrived together; KVM_SEV_SNP_PAGE_TYPE_NORMAL marks headers that have them. */
#ifndef KVM_SEV_SNP_PAGE_TYPE_NORMAL
#define KVM_SEV_SNP_PAGE_TYPE_NORMAL 0x1
#define KVM_SEV_SNP_PAGE_TYPE_ZERO 0x3
#define KVM_SEV_SNP_PAGE_TYPE_UNMEASURED 0x4
#define KVM_SEV_SNP_PAGE_TYPE_SECRETS 0x5
#define KVM_SEV_SNP_PAGE_TYPE_CPUID 0x6
#define KVM_SEV_SNP_ID_BLOCK_SIZE 96
#define KVM_SEV_SNP_ID_AUTH_SIZE 4096
#define KVM_SEV_SNP_FINISH_DATA_SIZE 32
struct kvm_sev_snp_launch_start {
  __u64 policy;
  __u8 gosvw[16];
  __u16 flags;
  __u8 pad0[6];
  __u64 pad1[4];
};
struct kvm_sev_snp_launch_update {
  __u64 gfn_start;
  __u64 uaddr;
  __u64 len;
  __u8 type;
  __u8 pad0;
  __u16 flags;
  __u32 pad1;
  __u64 pad2[4];
};
struct kvm_sev_snp_launch_finish {
  __u64 id_block_uaddr;
  __u64 id_auth_uaddr;
  __u8 id_block_en;
  __u8 auth_key_en;
  __u8 vcek_disabled;
  __u8 host_data[KVM_SEV_SNP_FINISH_DATA_SIZE];
  __u8 pad0[3];
  __u16 flags;
  __u64 pad1[4];
};
#endif
_Static_assert(sizeof(struct kvm_sev_snp_launch_start) == 64, "kvm_sev_snp_launch_start size");
_Static_assert(sizeof(struct kvm_sev_snp_launch_update) == 64, "kvm_sev_snp_launch_update size");
_Static_assert(sizeof(struct kvm_sev_snp_launch_finish) == 88, "kvm_sev_snp_launch_finish size");
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif

/* Private memory (include/uapi/linux/kvm.h, 6.8 and later; GUEST_MEMFD flags 6.18). */
#ifndef KVM_X86_SW_PROTECTED_VM
#define KVM_X86_SW_PROTECTED_VM 1
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_USER_MEMORY2 231
#define KVM_CAP_MEMORY_FAULT_INFO 232
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#define KVM_CAP_GUEST_MEMFD 234
#define KVM_MEM_GUEST_MEMFD (1UL << 2)
#define KVM_EXIT_MEMORY_FAULT 39
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
struct kvm_userspace_memory_region2 {
  __u32 slot;
  __u32 flags;
  __u64 guest_phys_addr;
  __u64 memory_size;
  __u64 userspace_addr;
  __u64 guest_memfd_offset;
  __u32 guest_memfd;
  __u32 pad1;
  __u64 pad2[14];
};
struct kvm_memory_attributes {
  __u64 address;
  __u64 size;
  __u64 attributes;
  __u64 flags;
};
struct kvm_create_guest_memfd {
  __u64 size;
  __u64 flags;
  __u64 reserved[6];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif
/* kvm_run.memory_fault sits in the exit union (offset 32) that 6.1's struct kvm_run lacks. */
struct memory_fault_exit {
  __u64 flags;
  __u64 gpa;
  __u64 size;
};
#define RUN_MEMORY_FAULT(run) ((struct memory_fault_exit*)((char*)(run) + 32))

#endif
