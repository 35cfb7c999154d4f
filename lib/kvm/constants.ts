// KVM ABI numbers the TypeScript layer needs (Linux include/uapi/linux/kvm.h,
// arch/x86/include/uapi/asm/kvm.h), and the SEV guest states (SEV API spec 55766).

/** KVM_CHECK_EXTENSION capability numbers used by node-sev. */
export const KVM_CAP = Object.freeze({
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  MAX_VCPUS: 66,
  READONLY_MEM: 81,
  MAX_VCPU_ID: 128,
  EXIT_HYPERCALL: 201,
  /** KVM_SET_USER_MEMORY_REGION2 exists (1). */
  USER_MEMORY2: 231,
  /** KVM_EXIT_MEMORY_FAULT carries gpa, size and flags (1). */
  MEMORY_FAULT_INFO: 232,
  /** The memory attributes KVM_SET_MEMORY_ATTRIBUTES accepts (on a VM: PRIVATE only with private memory). */
  MEMORY_ATTRIBUTES: 233,
  /** KVM_CREATE_GUEST_MEMFD exists (1). */
  GUEST_MEMFD: 234,
  /** Bitmask of supported VM types (1 << type); 0 on kernels before 6.10 = default VM only. */
  VM_TYPES: 235,
  /** The kvm_create_guest_memfd.flags the VM accepts (GUEST_MEMFD_FLAG). */
  GUEST_MEMFD_FLAGS: 244,
} as const);

/** kvm_create_guest_memfd.flags. */
export const GUEST_MEMFD_FLAG = Object.freeze({
  /** The guest_memfd can be mmap'd (MAP_SHARED); its memslots take every access from it. */
  MMAP: 1,
  /** Pages start shared, so a user mapping can fault them in (not for VMs with private memory). */
  INIT_SHARED: 2,
} as const);

/** kvm_memory_attributes.attributes: the gfn is private (backed by guest_memfd). */
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 8;
/** kvm_run.memory_fault.flags: the faulting access was private. */
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 8n;

/** x86 VM types for KVM_CREATE_VM. */
export const VM_TYPE = Object.freeze({
  DEFAULT: 0,
  SW_PROTECTED: 1,
  SEV: 2,
  SEV_ES: 3,
  SNP: 4,
  TDX: 5,
} as const);

export type VmTypeName = 'default' | 'sw-protected' | 'sev' | 'sev-es' | 'snp' | 'tdx';

export const VM_TYPE_NAMES: Readonly<Record<number, VmTypeName>> = Object.freeze({
  0: 'default',
  1: 'sw-protected',
  2: 'sev',
  3: 'sev-es',
  4: 'snp',
  5: 'tdx',
});

/** kvm_userspace_memory_region.flags. */
export const KVM_MEM = Object.freeze({ LOG_DIRTY_PAGES: 1 << 0, READONLY: 1 << 1, GUEST_MEMFD: 1 << 2 } as const);

/** kvm_run.exit_reason values by kernel name (KVM_EXIT_*). */
export const KVM_EXIT: Readonly<Record<string, number>> = Object.freeze({
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  HYPERV: 27,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32,
  X86_BUS_LOCK: 33,
  XEN: 34,
  NOTIFY: 37,
  LOONGARCH_IOCSR: 38,
  MEMORY_FAULT: 39,
  TDX: 40,
  SNP_REQ_CERTS: 43,
});

const EXIT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(KVM_EXIT).map(([k, v]) => [v, k]));

/** The kernel's name for an exit reason ('IO', 'HLT', ...), or 'EXIT_<n>' for unknown ones. */
export function exitReasonName(code: number): string {
  return EXIT_NAMES[code] ?? `EXIT_${code}`;
}

/** SEV guest states reported by GUEST_STATUS (SEV API spec, "Guest States"). */
export const SEV_GUEST_STATES: Readonly<Record<number, string>> = Object.freeze({
  0: 'UNINIT',
  1: 'LUPDATE',
  2: 'LSECRET',
  3: 'RUNNING',
  4: 'SUPDATE',
  5: 'RUPDATE',
  6: 'SENT',
});

/** LAUNCH_UPDATE_DATA / DBG addresses and lengths are 16-byte granular (SEV API spec). */
export const SEV_DATA_ALIGNMENT = 16;

/** Size of the nonce GET_ATTESTATION_REPORT binds into the report. */
export const SEV_MNONCE_SIZE = 16;

/** KVM_SEV_SNP_LAUNCH_UPDATE page types (the firmware's PAGE_TYPE numbers; VMSA pages are KVM's own). */
export const SNP_PAGE_TYPES = Object.freeze({ normal: 1, zero: 3, unmeasured: 4, secrets: 5, cpuid: 6 } as const);
export type SnpLaunchPageType = keyof typeof SNP_PAGE_TYPES;

/** SNP guest policy bit 17: reserved, must be one (SNP_POLICY_MASK_RSVD_MBO). */
export const SNP_POLICY_RSVD_MBO = 1n << 17n;
/** KVM_SEV_SNP_ID_BLOCK_SIZE, KVM_SEV_SNP_ID_AUTH_SIZE, KVM_SEV_SNP_FINISH_DATA_SIZE. */
export const SNP_ID_BLOCK_SIZE = 96;
export const SNP_ID_AUTH_SIZE = 4096;
export const SNP_HOST_DATA_SIZE = 32;

/** Host page size assumed for guest memory and memslots (x86-64). */
export const PAGE_SIZE = 4096;
/** Huge page size for MAP_HUGETLB guest memory. */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;
