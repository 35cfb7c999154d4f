/* What Linux 7.2's UAPI has and the system's (older) headers may lack. Values from 7.2's
 * include/uapi/linux/psp-sev.h, include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h;
 * each is defined only where the system header did not. */
#ifndef SEV_CONFORMANCE_NEW_UAPI_H
#define SEV_CONFORMANCE_NEW_UAPI_H

#include <linux/kvm.h>
#include <linux/psp-sev.h>

/* ---- /dev/sev (psp-sev.h) ---- */
/* enum sev_cmd continues after SEV_GET_ID2 (8); 6.1's SEV_MAX is 9, 7.2's is 13. */
#define CMD_SNP_PLATFORM_STATUS 9
#define CMD_SNP_COMMIT 10
#define CMD_SNP_SET_CONFIG 11
#define CMD_SNP_VLEK_LOAD 12
#define CMD_SEV_MAX_7_2 13

#define SNP_STATUS_SIZE 32     /* struct sev_user_data_snp_status (packed) */
#define SNP_CONFIG_SIZE 64     /* struct sev_user_data_snp_config (packed) */
#define SNP_VLEK_LOAD_SIZE 16  /* struct sev_user_data_snp_vlek_load (packed) */

#ifndef SEV_FW_BLOB_MAX_SIZE
#define SEV_FW_BLOB_MAX_SIZE 0x4000
#endif

/* ---- KVM (kvm.h, asm/kvm.h) ---- */
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_X86_DEFAULT_VM
#define KVM_X86_DEFAULT_VM 0
#define KVM_X86_SW_PROTECTED_VM 1
#define KVM_X86_SEV_VM 2
#define KVM_X86_SEV_ES_VM 3
#define KVM_X86_SNP_VM 4
#endif

#endif
