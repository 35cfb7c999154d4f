// Kvm: the /dev/kvm system fd — capabilities, supported VM types, VM creation.
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError, SevError } from '../errors';
import { check } from '../flow';
import { native } from '../native';
import { KVM_CAP, VM_TYPE, VM_TYPE_NAMES, type VmTypeName } from './constants';
import { kvmNative, type NativeKvm } from './native';
import type { CpuidEntry } from './types';
import { describe, integer } from './validate';
import { Vm } from './vm';

const { ENOENT, EACCES, EPERM, EINVAL } = osConstants.errno;

export const DEFAULT_KVM_DEVICE = '/dev/kvm';

export interface CreateVmOptions {
  /** VM type by name or number (default 'default'). SEV types need KVM_CAP_VM_TYPES support. */
  type?: VmTypeName | number;
}

export class Kvm {
  readonly path: string;
  private readonly nk: NativeKvm;

  private constructor(path: string, nk: NativeKvm) {
    this.path = path;
    this.nk = nk;
  }

  /** Opens /dev/kvm (or `path`) read-write. */
  static open(path: string = DEFAULT_KVM_DEVICE): Kvm {
    if (typeof path !== 'string' || path.length === 0) throw new SevArgumentError('open', 'path must be a non-empty string');
    try {
      return new Kvm(path, new kvmNative.Kvm(path));
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno !== 'number') throw e;
      // Under the emulator without a host KVM, the software KVM was the way: say why it is not.
      const soft = native.emulator() !== null ? native.softkvmUnavailable() : null;
      const hints: Record<number, string> = {
        [ENOENT]: soft ?? 'no KVM: load kvm_amd / kvm_intel, or enable nested virtualisation, or run under `sev-emu run`, whose software KVM needs none',
        [EACCES]: 'permission denied: add the user to the kvm group or run as root',
        [EPERM]: 'operation not permitted: add the user to the kvm group or run as root',
      };
      const err = SevError.fromIoctl(`open ${path}`, errno, 0);
      throw new SevError(hints[errno] ? `${err.message}: ${hints[errno]}` : err.message, { command: `open ${path}`, errno });
    }
  }

  get closed(): boolean {
    return this.nk.closed;
  }

  private kvm(command: string): NativeKvm {
    if (this.nk.closed) throw new SevClosedError(command, `Kvm(${this.path})`);
    return this.nk;
  }

  /** KVM_GET_API_VERSION (12 on every usable kernel). */
  apiVersion(): number {
    return check('KVM_GET_API_VERSION', this.kvm('KVM_GET_API_VERSION').apiVersion()).value;
  }

  /** KVM_CHECK_EXTENSION: 0 = unsupported, else a capability-specific value. */
  checkExtension(cap: number): number {
    integer('KVM_CHECK_EXTENSION', 'cap', cap, 0, 0xffffffff);
    return check('KVM_CHECK_EXTENSION', this.kvm('KVM_CHECK_EXTENSION').checkExtension(cap)).value;
  }

  /**
   * The VM types KVM_CREATE_VM accepts, from KVM_CAP_VM_TYPES. A kernel without the capability
   * (before 6.10, e.g. 6.1) reports 0, which means the default type only (legacy SEV is then
   * KVM_SEV_INIT on a default VM).
   */
  supportedVmTypes(): number[] {
    const mask = this.checkExtension(KVM_CAP.VM_TYPES);
    if (mask === 0) return [VM_TYPE.DEFAULT];
    const types: number[] = [];
    for (let t = 0; t < 31; t++) if (mask & (1 << t)) types.push(t);
    return types;
  }

  /** KVM_GET_VCPU_MMAP_SIZE: bytes of a vCPU's shared kvm_run area. */
  vcpuMmapSize(): number {
    return check('KVM_GET_VCPU_MMAP_SIZE', this.kvm('KVM_GET_VCPU_MMAP_SIZE').vcpuMmapSize()).value;
  }

  /** KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can give a guest (input for Vcpu#setCpuid). */
  supportedCpuid(): CpuidEntry[] {
    return check('KVM_GET_SUPPORTED_CPUID', this.kvm('KVM_GET_SUPPORTED_CPUID').supportedCpuid()).entries;
  }

  /**
   * KVM_CREATE_VM. The Vm is independent of this Kvm afterwards (closing one does not close the
   * other).
   */
  createVm(options: CreateVmOptions | null = {}): Vm {
    const command = 'KVM_CREATE_VM';
    const nk = this.kvm(command);
    const type = vmType(command, options?.type ?? 'default');
    const r = nk.createVm(type);
    if (r.errno !== 0) {
      let hint: string | undefined;
      if (r.errno === EINVAL && type !== VM_TYPE.DEFAULT) {
        const mask = nk.checkExtension(KVM_CAP.VM_TYPES).value;
        hint = `VM type ${type} (${VM_TYPE_NAMES[type] ?? '?'}) is not supported here (KVM_CAP_VM_TYPES = 0x${mask.toString(16)})`;
      }
      const e = SevError.fromIoctl(command, r.errno, 0);
      throw new SevError(hint ? `${e.message}: ${hint}` : e.message, { command, errno: r.errno });
    }
    return new Vm(r.vm!, type);
  }

  /** Closes the /dev/kvm fd. VMs created from it stay usable. Idempotent. */
  close(): void {
    this.nk.close();
  }
}

function vmType(command: string, t: unknown): number {
  if (typeof t === 'string') {
    const entry = Object.entries(VM_TYPE_NAMES).find(([, name]) => name === t);
    if (!entry) throw new SevArgumentError(command, `unknown VM type ${describe(t)}; expected one of ${Object.values(VM_TYPE_NAMES).join(', ')}`);
    return Number(entry[0]);
  }
  return integer(command, 'type', t, 0, 31);
}

/** Live native KVM objects (mappings, fds) — for leak checks in tests. */
export function kvmNativeStats(): { mappings: number; mappedBytes: number; fds: number } {
  return kvmNative.kvmStats();
}
