// Vcpu: one vCPU fd (KVM_CREATE_VCPU) and its mmap'd kvm_run.
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError } from '../errors';
import { check } from '../flow';
import { exitReasonName, KVM_EXIT, KVM_MEMORY_EXIT_FLAG_PRIVATE } from './constants';
import type { NativeRunOutcome, NativeVcpu } from './native';
import {
  type CpuidEntry,
  type DescriptorTable,
  type Fpu,
  REG_NAMES,
  type Regs,
  type RegsUpdate,
  SEGMENT_NAMES,
  type Segment,
  type Sregs,
  type SregsUpdate,
  type VcpuExit,
} from './types';
import { bytes, describe, integer, u64 } from './validate';

const { EINTR, EFAULT } = osConstants.errno;
const EHWPOISON = 133;

const SEGMENT_FIELDS: readonly (keyof Segment)[] = [
  'base', 'limit', 'selector', 'type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable',
];
const SEGMENT_MAX: Record<string, number> = {
  limit: 0xffffffff, selector: 0xffff, type: 15, present: 1, dpl: 3, db: 1, s: 1, l: 1, g: 1, avl: 1, unusable: 1,
};
const CONTROL_NAMES = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;

export class Vcpu {
  /** The vCPU id given to KVM_CREATE_VCPU (its initial APIC id). */
  readonly id: number;
  private readonly nv: NativeVcpu;
  private lastExit: VcpuExit | undefined;
  private readonly onClose: ((v: Vcpu) => void) | undefined;

  /** @internal Created by Vm#createVcpu. */
  constructor(nativeVcpu: NativeVcpu, onClose?: (v: Vcpu) => void) {
    this.nv = nativeVcpu;
    this.id = nativeVcpu.id;
    this.onClose = onClose;
  }

  get closed(): boolean {
    return this.nv.closed;
  }

  /** True while a run() is in progress on the thread pool. */
  get running(): boolean {
    return this.nv.running;
  }

  /** The exit the last run returned (undefined before the first run). */
  get exit(): VcpuExit | undefined {
    return this.lastExit;
  }

  private idle(command: string): NativeVcpu {
    if (this.nv.closed) throw new SevClosedError(command, `Vcpu ${this.id}`);
    if (this.nv.running) throw new SevArgumentError(command, `Vcpu ${this.id} is running; wait for run() to return`);
    return this.nv;
  }

  // ---- registers ------------------------------------------------------------------------------

  /** KVM_GET_REGS: general-purpose registers, rip, rflags. */
  getRegs(): Regs {
    const r = check('KVM_GET_REGS', this.idle('KVM_GET_REGS').getRegs());
    return r.regs as unknown as Regs;
  }

  /** KVM_SET_REGS: the given registers; the others keep their current values. */
  setRegs(update: RegsUpdate): void {
    const command = 'KVM_SET_REGS';
    const nv = this.idle(command);
    if (typeof update !== 'object' || update === null) {
      throw new SevArgumentError(command, `expected an object of registers, got ${describe(update)}`);
    }
    for (const k of Object.keys(update)) {
      if (!(REG_NAMES as readonly string[]).includes(k)) throw new SevArgumentError(command, `unknown register '${k}'`);
    }
    const regs = this.getRegs() as unknown as Record<string, bigint>;
    for (const [k, v] of Object.entries(update)) regs[k] = u64(command, k, v);
    check(command, nv.setRegs(regs));
  }

  /** KVM_GET_SREGS: segments, descriptor tables, control registers, EFER, APIC base. */
  getSregs(): Sregs {
    const r = check('KVM_GET_SREGS', this.idle('KVM_GET_SREGS').getSregs());
    return r.sregs as Sregs;
  }

  /** KVM_SET_SREGS: the given fields (segments and tables may be partial) over the current state. */
  setSregs(update: SregsUpdate): void {
    const command = 'KVM_SET_SREGS';
    const nv = this.idle(command);
    if (typeof update !== 'object' || update === null) {
      throw new SevArgumentError(command, `expected an object of special registers, got ${describe(update)}`);
    }
    const s = this.getSregs();
    for (const [k, v] of Object.entries(update)) {
      if ((SEGMENT_NAMES as readonly string[]).includes(k)) {
        s[k as (typeof SEGMENT_NAMES)[number]] = mergeSegment(command, k, s[k as keyof Sregs] as Segment, v);
      } else if (k === 'gdt' || k === 'idt') {
        s[k] = mergeTable(command, k, s[k], v);
      } else if ((CONTROL_NAMES as readonly string[]).includes(k)) {
        (s as unknown as Record<string, bigint>)[k] = u64(command, k, v);
      } else if (k === 'interruptBitmap') {
        if (!Array.isArray(v) || v.length !== 4) throw new SevArgumentError(command, 'interruptBitmap must be 4 bigints');
        s.interruptBitmap = v.map((x, i) => u64(command, `interruptBitmap[${i}]`, x));
      } else {
        throw new SevArgumentError(command, `unknown special register '${k}'`);
      }
    }
    check(command, nv.setSregs(s));
  }

  /** KVM_GET_FPU: the x87 and SSE state (control/status words, MXCSR, x87 and XMM registers). */
  getFpu(): Fpu {
    const r = check('KVM_GET_FPU', this.idle('KVM_GET_FPU').getFpu());
    return r.fpu as Fpu;
  }

  /** KVM_SET_FPU: the given fields over the current state (e.g. { fcw: 0x37f, mxcsr: 0x1f80 }). */
  setFpu(update: Partial<Fpu>): void {
    const command = 'KVM_SET_FPU';
    const nv = this.idle(command);
    if (typeof update !== 'object' || update === null) throw new SevArgumentError(command, `expected an object of FPU fields, got ${describe(update)}`);
    const f = this.getFpu();
    const limits: Record<string, number> = { fcw: 0xffff, fsw: 0xffff, ftwx: 0xff, lastOpcode: 0xffff, mxcsr: 0xffffffff };
    for (const [k, v] of Object.entries(update)) {
      if (k in limits) (f as unknown as Record<string, number>)[k] = integer(command, k, v, 0, limits[k]);
      else if (k === 'lastIp' || k === 'lastDp') f[k] = u64(command, k, v);
      else if (k === 'fpr' || k === 'xmm') {
        const size = k === 'fpr' ? 128 : 256;
        if (!(v instanceof Uint8Array) || v.length !== size) throw new SevArgumentError(command, `${k} must be ${size} bytes`);
        f[k] = Buffer.from(v);
      } else throw new SevArgumentError(command, `unknown FPU field '${k}'`);
    }
    check(command, nv.setFpu(f));
  }

  /** KVM_SET_CPUID2: the CPUID leaves the guest sees (e.g. Kvm#supportedCpuid()). */
  setCpuid(entries: readonly CpuidEntry[]): void {
    const command = 'KVM_SET_CPUID2';
    const nv = this.idle(command);
    if (!Array.isArray(entries)) throw new SevArgumentError(command, 'entries must be an array of CPUID entries');
    // KVM_MAX_CPUID_ENTRIES: the kernel (and the addon) refuse more.
    if (entries.length > 256) throw new SevArgumentError(command, `at most 256 CPUID entries, got ${entries.length}`);
    const list = entries.map((e, i) => {
      const f = (n: keyof CpuidEntry) => integer(command, `entries[${i}].${n}`, e?.[n], 0, 0xffffffff);
      return { function: f('function'), index: f('index'), flags: f('flags'), eax: f('eax'), ebx: f('ebx'), ecx: f('ecx'), edx: f('edx') };
    });
    check(command, nv.setCpuid2(list));
  }

  // ---- running --------------------------------------------------------------------------------

  /**
   * KVM_RUN on a worker thread: runs the guest until it exits to userspace and resolves with the
   * exit. An interrupted run (signal) resolves with reason 'INTR'; other failures reject with a
   * SevError (command 'KVM_RUN'). One run at a time per vCPU.
   */
  async run(): Promise<VcpuExit> {
    const nv = this.idle('KVM_RUN');
    return this.toExit(await nv.run(true));
  }

  /** KVM_RUN on the calling thread (blocks the event loop until the guest exits). */
  runSync(): VcpuExit {
    return this.toExit(this.idle('KVM_RUN').run(false));
  }

  /**
   * Completes an IO 'in' exit: the bytes (size × count, or a number for a single access) the
   * guest's IN reads, delivered by the next run.
   */
  completeIoIn(data: Uint8Array | number): void {
    const command = 'completeIoIn';
    const nv = this.idle(command);
    const e = this.lastExit;
    if (!e || e.reason !== 'IO' || e.direction !== 'in') {
      throw new SevArgumentError(command, `the last exit was ${e ? e.reason + (e.reason === 'IO' ? ' out' : '') : 'none'}, not an IO in`);
    }
    const want = e.size * e.count;
    let buf: Uint8Array;
    if (typeof data === 'number') {
      if (e.count !== 1) throw new SevArgumentError(command, 'string I/O needs a byte array');
      integer(command, 'value', data, 0, 2 ** (8 * e.size) - 1);
      buf = Buffer.alloc(e.size);
      Buffer.from(buf.buffer, buf.byteOffset, buf.length).writeUIntLE(data, 0, e.size);
    } else {
      buf = bytes(command, 'data', data);
    }
    if (buf.length !== want) throw new SevArgumentError(command, `expected ${want} bytes (size ${e.size} × count ${e.count}), got ${buf.length}`);
    nv.setIoData(buf);
  }

  /**
   * Completes a HYPERCALL exit (e.g. KVM_HC_MAP_GPA_RANGE from an SNP guest's page-state change):
   * 0 for success or a positive errno (EINVAL, EAGAIN), read by KVM on the next run.
   */
  completeHypercall(ret: number | bigint = 0): void {
    const command = 'completeHypercall';
    const nv = this.idle(command);
    if (this.lastExit?.reason !== 'HYPERCALL') throw new SevArgumentError(command, `the last exit was ${this.lastExit?.reason ?? 'none'}, not a HYPERCALL`);
    nv.setHypercallResult(u64(command, 'ret', ret));
  }

  /**
   * Completes an SNP_REQ_CERTS exit: 0 once the certificate table is at the exit's gpa; ENOSPC
   * (28) with the pages it needs; EAGAIN (11) or EIO (5) to fail the guest's request.
   */
  completeSnpReqCerts(ret: number, npages?: number | bigint): void {
    const command = 'completeSnpReqCerts';
    const nv = this.idle(command);
    const e = this.lastExit;
    if (e?.reason !== 'SNP_REQ_CERTS') throw new SevArgumentError(command, `the last exit was ${e?.reason ?? 'none'}, not SNP_REQ_CERTS`);
    if (![0, 5, 11, 28].includes(ret)) throw new SevArgumentError(command, `ret must be 0, EIO (5), EAGAIN (11) or ENOSPC (28), got ${describe(ret)}`);
    nv.setSnpReqCertsResult(BigInt(ret), npages === undefined ? e.npages : u64(command, 'npages', npages));
  }

  /** Completes an MMIO read exit: the value (length bytes, little-endian) the guest's load gets. */
  completeMmioRead(data: Uint8Array | bigint | number): void {
    const command = 'completeMmioRead';
    const nv = this.idle(command);
    const e = this.lastExit;
    if (!e || e.reason !== 'MMIO' || e.isWrite) {
      throw new SevArgumentError(command, `the last exit was ${e ? e.reason : 'none'}, not an MMIO read`);
    }
    let buf: Uint8Array;
    if (typeof data === 'number' || typeof data === 'bigint') {
      const v = u64(command, 'value', data);
      if (v >> BigInt(8 * e.length) !== 0n) throw new SevArgumentError(command, `value does not fit in ${e.length} bytes`);
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      buf = b.subarray(0, e.length);
    } else {
      buf = bytes(command, 'data', data);
    }
    if (buf.length !== e.length) throw new SevArgumentError(command, `expected ${e.length} bytes, got ${buf.length}`);
    nv.setMmioData(buf);
  }

  /**
   * Interrupts a run() in progress: it resolves promptly with reason 'INTR' (the guest state is
   * kept; run again to continue). With no run in progress, the next run returns 'INTR' at once.
   */
  kick(): void {
    if (this.nv.closed) throw new SevClosedError('kick', `Vcpu ${this.id}`);
    this.nv.kick();
  }

  /**
   * Closes the vCPU. A run in progress is kicked out of the guest; its fd is closed (and kvm_run
   * unmapped) when that run has returned. Idempotent.
   */
  close(): void {
    if (!this.nv.closed && this.nv.running) this.nv.kick();
    this.nv.close();
    this.onClose?.(this);
  }

  private toExit(o: NativeRunOutcome): VcpuExit {
    let exit: VcpuExit;
    if (o.errno === EINTR) {
      exit = { reason: 'INTR', exitReason: KVM_EXIT.INTR };
    } else if ((o.errno === EFAULT || o.errno === EHWPOISON) && o.exitReason === KVM_EXIT.MEMORY_FAULT) {
      // api.rst: KVM_EXIT_MEMORY_FAULT alone comes with KVM_RUN failing (EFAULT or EHWPOISON).
      exit = decodeExit(o);
    } else {
      check('KVM_RUN', o);
      exit = decodeExit(o);
    }
    this.lastExit = exit;
    return exit;
  }
}

function decodeExit(o: NativeRunOutcome): VcpuExit {
  const exitReason = o.exitReason;
  const name = exitReasonName(exitReason);
  switch (name) {
    case 'IO':
      return {
        reason: 'IO',
        exitReason,
        direction: o.direction === 1 ? 'out' : 'in',
        port: o.port ?? 0,
        size: o.size ?? 0,
        count: o.count ?? 0,
        data: (o.data as Buffer | undefined) ?? Buffer.alloc(0),
      };
    case 'MMIO':
      return {
        reason: 'MMIO',
        exitReason,
        address: o.physAddr ?? 0n,
        length: o.length ?? 0,
        isWrite: o.isWrite ?? false,
        data: (o.data as Buffer | undefined) ?? Buffer.alloc(0),
      };
    case 'HLT':
    case 'SHUTDOWN':
    case 'INTR':
    case 'IRQ_WINDOW_OPEN':
    case 'DEBUG':
    case 'NMI':
      return { reason: name, exitReason };
    case 'MEMORY_FAULT': {
      const flags = o.flags ?? 0n;
      return {
        reason: 'MEMORY_FAULT',
        exitReason,
        flags,
        private: (flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n,
        gpa: o.gpa ?? 0n,
        size: o.memorySize ?? 0n,
      };
    }
    case 'FAIL_ENTRY':
      return { reason: name, exitReason, hardwareEntryFailureReason: o.hardwareEntryFailureReason ?? 0n, cpu: o.cpu ?? 0 };
    case 'INTERNAL_ERROR':
      return { reason: name, exitReason, suberror: o.suberror ?? 0, data: (o.data as bigint[] | undefined) ?? [] };
    case 'SYSTEM_EVENT':
      return { reason: name, exitReason, type: o.type ?? 0, data: (o.data as bigint[] | undefined) ?? [] };
    case 'HYPERCALL':
      return { reason: name, exitReason, nr: o.nr ?? 0n, args: o.args ?? [], longMode: o.longMode ?? 0 };
    case 'SNP_REQ_CERTS':
      return { reason: name, exitReason, gpa: o.gpa ?? 0n, npages: o.npages ?? 0n };
    case 'EXCEPTION':
      return { reason: name, exitReason, exception: o.exception ?? 0, errorCode: o.errorCode ?? 0 };
    case 'UNKNOWN':
      return { reason: name, exitReason, hardwareExitReason: o.hardwareExitReason ?? 0n };
    default:
      return { reason: 'OTHER', exitReason, name };
  }
}

function mergeSegment(command: string, name: string, current: Segment, update: unknown): Segment {
  if (typeof update !== 'object' || update === null) throw new SevArgumentError(command, `${name} must be an object`);
  const out: Segment = { ...current };
  for (const [k, v] of Object.entries(update)) {
    if (!(SEGMENT_FIELDS as readonly string[]).includes(k)) throw new SevArgumentError(command, `unknown segment field '${name}.${k}'`);
    if (k === 'base') out.base = u64(command, `${name}.base`, v);
    else (out as unknown as Record<string, number>)[k] = integer(command, `${name}.${k}`, v, 0, SEGMENT_MAX[k]);
  }
  return out;
}

function mergeTable(command: string, name: string, current: DescriptorTable, update: unknown): DescriptorTable {
  if (typeof update !== 'object' || update === null) throw new SevArgumentError(command, `${name} must be an object`);
  const out: DescriptorTable = { ...current };
  for (const [k, v] of Object.entries(update)) {
    if (k === 'base') out.base = u64(command, `${name}.base`, v);
    else if (k === 'limit') out.limit = integer(command, `${name}.limit`, v, 0, 0xffff);
    else throw new SevArgumentError(command, `unknown descriptor table field '${name}.${k}'`);
  }
  return out;
}
