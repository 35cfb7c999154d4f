// Register state and vCPU exits as plain objects. Every 64-bit register, address and base is a
// bigint; limits, selectors and attribute bits are numbers.

/** struct kvm_regs. */
export interface Regs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** setRegs input: any subset of registers, as bigints or non-negative safe integers. */
export type RegsUpdate = { [K in keyof Regs]?: bigint | number };

export const REG_NAMES: readonly (keyof Regs)[] = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
];

/** struct kvm_segment: a segment register's hidden state. Attribute bits are 0 or 1. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** 4-bit descriptor type (e.g. 0xb = execute/read code, accessed; 0x3 = read/write data, accessed). */
  type: number;
  present: number;
  dpl: number;
  /** Default operation size (1 = 32-bit). */
  db: number;
  /** 1 = code/data segment, 0 = system segment. */
  s: number;
  /** 1 = 64-bit code segment. */
  l: number;
  /** Granularity (1 = limit in 4 KiB units). */
  g: number;
  avl: number;
  unusable: number;
}

/** struct kvm_dtable (GDTR / IDTR). */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** struct kvm_sregs. */
export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupts, 256 bits as 4 × 64. */
  interruptBitmap: bigint[];
}

export const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type KvmSegmentName = (typeof SEGMENT_NAMES)[number];

/** setSregs input: any subset; segments and tables may be partial too (merged over the current state). */
export type SregsUpdate = Partial<Omit<Sregs, KvmSegmentName | 'gdt' | 'idt'>> & {
  [K in KvmSegmentName]?: Partial<Segment>;
} & { gdt?: Partial<DescriptorTable>; idt?: Partial<DescriptorTable> };

/** A CPUID leaf (struct kvm_cpuid_entry2). */
/** struct kvm_fpu. */
export interface Fpu {
  fcw: number;
  fsw: number;
  /** Abridged tag word (one bit per register). */
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  mxcsr: number;
  /** ST0-ST7, 16 bytes each. */
  fpr: Buffer;
  /** XMM0-XMM15, 16 bytes each. */
  xmm: Buffer;
}

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

interface ExitBase {
  /** kvm_run.exit_reason. */
  exitReason: number;
}

/** KVM_EXIT_IO: the guest executed IN/OUT/INS/OUTS on `port`. */
export interface IoExit extends ExitBase {
  reason: 'IO';
  direction: 'in' | 'out';
  port: number;
  /** Bytes per access (1, 2 or 4). */
  size: number;
  /** Accesses (> 1 for string I/O with REP). */
  count: number;
  /** For 'out': the bytes written (size × count). For 'in': zeroes; answer with Vcpu#completeIoIn. */
  data: Buffer;
}

/** KVM_EXIT_MMIO: an access to guest-physical memory no memslot backs. */
export interface MmioExit extends ExitBase {
  reason: 'MMIO';
  address: bigint;
  length: number;
  isWrite: boolean;
  /** For writes: the bytes written. For reads: answer with Vcpu#completeMmioRead. */
  data: Buffer;
}

export interface SimpleExit extends ExitBase {
  /** HLT; SHUTDOWN (triple fault); INTR (a signal interrupted KVM_RUN); IRQ_WINDOW_OPEN; ... */
  reason: 'HLT' | 'SHUTDOWN' | 'INTR' | 'IRQ_WINDOW_OPEN' | 'DEBUG' | 'NMI';
}

export interface FailEntryExit extends ExitBase {
  reason: 'FAIL_ENTRY';
  hardwareEntryFailureReason: bigint;
  cpu: number;
}

export interface InternalErrorExit extends ExitBase {
  reason: 'INTERNAL_ERROR';
  /** KVM_INTERNAL_ERROR_* (1 emulation, 2 simultaneous exception, 3 delivery event, 4 unexpected exit). */
  suberror: number;
  data: bigint[];
}

export interface SystemEventExit extends ExitBase {
  reason: 'SYSTEM_EVENT';
  /** KVM_SYSTEM_EVENT_* (1 shutdown, 2 reset, 3 crash, ...). */
  type: number;
  data: bigint[];
}

export interface HypercallExit extends ExitBase {
  reason: 'HYPERCALL';
  nr: bigint;
  args: bigint[];
  longMode: number;
}

export interface ExceptionExit extends ExitBase {
  reason: 'EXCEPTION';
  exception: number;
  errorCode: number;
}

export interface UnknownExit extends ExitBase {
  reason: 'UNKNOWN';
  hardwareExitReason: bigint;
}

/**
 * KVM_EXIT_MEMORY_FAULT: KVM could not resolve a guest access — a private gfn (by its memory
 * attributes) whose memslot has no guest_memfd, or whose guest_memfd was closed. KVM_RUN failed
 * with EFAULT (this exit, not an error); the guest stays at the access: fix the attributes
 * (Vm#setMemoryAttributes) or the memslots and run again.
 */
export interface MemoryFaultExit extends ExitBase {
  reason: 'MEMORY_FAULT';
  /** kvm_run.memory_fault.flags (KVM_MEMORY_EXIT_FLAG_PRIVATE). */
  flags: bigint;
  /** The access was private. */
  private: boolean;
  gpa: bigint;
  size: bigint;
}

/** Any other exit; `name` is the kernel's ('X86_RDMSR', 'MEMORY_FAULT', 'EXIT_<n>', ...). */
export interface OtherExit extends ExitBase {
  reason: 'OTHER';
  name: string;
}

/**
 * KVM_EXIT_SNP_REQ_CERTS (Linux 7.2, after KVM_SEV_SNP_ENABLE_REQ_CERTS): an SNP guest's extended
 * report request wants the certificate table in `npages` pages at `gpa`; complete it with
 * Vcpu#completeSnpReqCerts before the next run.
 */
export interface SnpReqCertsExit extends ExitBase {
  reason: 'SNP_REQ_CERTS';
  gpa: bigint;
  npages: bigint;
}

export type VcpuExit =
  | IoExit
  | SnpReqCertsExit
  | MmioExit
  | SimpleExit
  | FailEntryExit
  | InternalErrorExit
  | SystemEventExit
  | HypercallExit
  | ExceptionExit
  | UnknownExit
  | MemoryFaultExit
  | OtherExit;
