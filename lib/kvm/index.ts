// KVM layer: one class per kernel object (Kvm, Vm, Vcpu) plus GuestMemory.
export { DEFAULT_KVM_DEVICE, Kvm, kvmNativeStats, type CreateVmOptions } from './kvm';
export {
  Vm,
  type BatchFailure,
  type BatchOptions,
  type BatchResult,
  type KvmLaunchSecretOptions,
  type LaunchStartOptions,
  type LaunchStartResult,
  type MemoryRange,
  type MemoryRegion,
  type MemoryRegionOptions,
  type MemoryRegion2Options,
  type GuestMemfdOptions,
  type MemoryAttributesOptions,
  type SevGuestStatus,
  type SevInit2Options,
  type SnpLaunchFinishOptions,
  type SnpLaunchStartOptions,
  type SnpLaunchUpdateOptions,
  type SnpLaunchUpdateProgress,
} from './vm';
export { Vcpu } from './vcpu';
export { GuestMemfd } from './guest-memfd';
export { GuestMemory, type GuestMemoryOptions, type HugePages, type ReadFileOptions } from './memory';
export type { SevFd } from './validate';
export * from './types';
export {
  exitReasonName,
  GUEST_MEMFD_FLAG,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  HUGE_PAGE_SIZE,
  KVM_CAP,
  KVM_EXIT,
  KVM_MEM,
  PAGE_SIZE,
  SEV_DATA_ALIGNMENT,
  SEV_GUEST_STATES,
  SEV_MNONCE_SIZE,
  SNP_PAGE_TYPES,
  type SnpLaunchPageType,
  VM_TYPE,
  VM_TYPE_NAMES,
  type VmTypeName,
} from './constants';
