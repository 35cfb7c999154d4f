// Vm: one KVM VM fd. Guest memory slots, vCPUs, and the SEV commands KVM exposes on a VM
// (KVM_MEMORY_ENCRYPT_OP sub-commands, encrypted-region registration).
//
// SEV methods take the /dev/sev fd the kernel should check (`sev`: a number or a SevPlatform) and
// come in a Promise form (ioctl on a worker thread) and a *Sync form. Failures are SevErrors named
// after the firmware command ('LAUNCH_START', ...) with the kernel's errno and firmware status.
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError, SevError } from '../errors';
import type { NativeOutcome } from '../native';
import { call, check, type Flow, queriedLength, runAsync, runSync } from '../flow';
import {
  GUEST_MEMFD_FLAG,
  KVM_CAP,
  KVM_MEM,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  PAGE_SIZE, SEV_DATA_ALIGNMENT, SEV_GUEST_STATES, SEV_MNONCE_SIZE,
  SNP_HOST_DATA_SIZE, SNP_ID_AUTH_SIZE, SNP_ID_BLOCK_SIZE, SNP_PAGE_TYPES, SNP_POLICY_RSVD_MBO, type SnpLaunchPageType,
  VM_TYPE_NAMES } from './constants';
import { GuestMemfd } from './guest-memfd';
import { GuestMemory } from './memory';
import type { NativeVm } from './native';
import { Vcpu } from './vcpu';
import { aligned, bytes, describe, inside, integer, type SevFd, sevFd, u64 } from './validate';

const { EIO, ENOMEM } = osConstants.errno;
/** kvm_sev_launch_update_data.len and friends are 32-bit. */
const MAX_SEV_LENGTH = 0xffffffff;

export interface MemoryRegionOptions {
  /** Memslot number, below KVM_CAP_NR_MEMSLOTS. */
  slot: number;
  /** Guest-physical address of the slot (page-aligned). */
  guestPhysAddr: number | bigint;
  /** The memory backing it. The VM keeps it mapped while the slot exists. */
  memory: GuestMemory;
  /** Offset into `memory` (page-aligned, default 0). */
  memoryOffset?: number;
  /** Bytes (page-aligned; default: the rest of `memory` after memoryOffset). */
  size?: number;
  /** KVM_MEM_READONLY: guest writes exit as MMIO. */
  readonly?: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES. */
  logDirtyPages?: boolean;
}

export interface MemoryRegion2Options extends MemoryRegionOptions {
  /**
   * The guest_memfd the slot's private pages come from (KVM_MEM_GUEST_MEMFD); a Vm's own, open.
   * Such a slot cannot be changed afterwards, only removed, and cannot be read-only or log dirty
   * pages.
   */
  guestMemfd?: GuestMemfd;
  /** Offset into the guest_memfd (page-aligned, default 0); the slot's size must fit after it. */
  guestMemfdOffset?: number;
}

/** A memslot as this Vm set it. */
export interface MemoryRegion {
  readonly slot: number;
  readonly guestPhysAddr: bigint;
  readonly size: number;
  readonly memory: GuestMemory;
  readonly memoryOffset: number;
  readonly flags: number;
  /** KVM_MEM_GUEST_MEMFD slots: the guest_memfd and the offset in it. */
  readonly guestMemfd?: GuestMemfd;
  readonly guestMemfdOffset?: number;
}

export interface GuestMemfdOptions {
  /** Bytes: positive, page-aligned. */
  size: number;
  /** GUEST_MEMFD_FLAG_MMAP: user space may mmap it (MAP_SHARED); its memslots take every access from it. */
  mmap?: boolean;
  /** GUEST_MEMFD_FLAG_INIT_SHARED (with mmap): pages start shared; not for VMs with private memory. */
  initShared?: boolean;
}

export interface MemoryAttributesOptions {
  /** Guest-physical address (page-aligned). */
  address: number | bigint;
  /** Bytes (page-aligned, > 0). */
  size: number | bigint;
  /** true: KVM_MEMORY_ATTRIBUTE_PRIVATE; false: shared (no attributes). */
  private: boolean;
}

export interface SevInit2Options {
  /** SEV_FEATURES for SEV-ES/SNP VMSAs (KVM_X86_SEV_VMSA_FEATURES bits). Default 0. */
  vmsaFeatures?: number | bigint;
  /** Must be 0 today. */
  flags?: number;
  /** GHCB protocol version for SEV-ES/SNP guests (0 = KVM's default). */
  ghcbVersion?: number;
}

export interface LaunchStartOptions {
  /** The guest policy (SEV API "Guest Policy"). */
  policy: number;
  /** An existing guest context to share keys with; 0 (default) = new context. */
  handle?: number;
  /** The guest owner's Diffie-Hellman certificate (GODH). */
  dhCert?: Uint8Array;
  /** The launch session blob (wrapped TEK/TIK, nonce). */
  session?: Uint8Array;
}

export interface SnpLaunchStartOptions {
  /** The SNP guest policy (64 bits; bit 17 must be set, e.g. 0x30000 = SMT allowed). */
  policy: number | bigint;
  /** Guest OS supported versions (16 bytes, default zeros). */
  gosvw?: Uint8Array;
  /** Must be 0. */
  flags?: number;
}

export interface SnpLaunchUpdateOptions {
  /** Guest-physical address of the first page (page-aligned); its slot must have a guest_memfd. */
  guestPhysAddr: number;
  /** Bytes (a multiple of 4096). */
  length: number;
  /** Page type: 'normal' (measured), 'zero', 'unmeasured', 'secrets' or 'cpuid'. */
  type: SnpLaunchPageType;
  /** Where the pages' contents come from (not for 'zero'): page-aligned offset into a GuestMemory. */
  source?: { memory: GuestMemory; offset: number };
  /** Must be 0. */
  flags?: number;
}

/** What one KVM_SEV_SNP_LAUNCH_UPDATE left to do (the kernel may stop early, successfully). */
export interface SnpLaunchUpdateProgress {
  /** Pages done by this call. */
  pages: number;
  /** The range still to do: length 0 when complete. */
  guestPhysAddr: number;
  length: number;
  /** The source offset for the rest (unchanged for zero pages). */
  sourceOffset: number;
}

export interface SnpLaunchFinishOptions {
  /** A 96-byte ID block and its 4096-byte ID_AUTH_INFO (both or neither). */
  idBlock?: Uint8Array;
  idAuth?: Uint8Array;
  /** ID_AUTH_INFO carries an author key that signs the ID key. */
  authorKey?: boolean;
  /** Reports may only be signed by a VLEK. */
  vcekDisabled?: boolean;
  /** 32 bytes the host puts in every attestation report (default zeros). */
  hostData?: Uint8Array;
  /** Must be 0. */
  flags?: number;
}

export interface LaunchStartResult {
  /** The firmware's handle for the new guest context. */
  handle: number;
  policy: number;
}

/** A guest-memory range for LAUNCH_UPDATE_DATA. */
export interface MemoryRange {
  offset: number;
  length: number;
}

export interface BatchOptions {
  /** Stops the batch before its next range (the range in progress completes). */
  signal?: AbortSignal;
  /** Called with the number of completed ranges while the batch runs (polled) and at the end. */
  onProgress?: (completed: number, total: number) => void;
  /** Polling interval for onProgress in ms (default 50). */
  progressIntervalMs?: number;
}

export interface BatchResult {
  /** Ranges encrypted and measured, in order from the first. */
  completed: number;
  /** True when the signal stopped the batch early. */
  cancelled: boolean;
}

export interface KvmLaunchSecretOptions {
  /** The packet header (flags, IV, MAC), 52 bytes in the SEV API. */
  header: Uint8Array;
  /** The encrypted secret (transport data). */
  transport: Uint8Array;
  /** Guest memory receiving the secret. */
  memory: GuestMemory;
  /** Offset of the secret in `memory` (16-byte aligned; the secret must not cross a page). */
  guestOffset: number;
  /** Bytes to write (default transport.length). */
  length?: number;
}

export interface SevGuestStatus {
  handle: number;
  policy: number;
  state: number;
  /** 'UNINIT', 'LUPDATE', 'LSECRET', 'RUNNING', 'SUPDATE', 'RUPDATE', 'SENT'. */
  stateName: string;
}

/** Thrown by launchUpdateDataBatch when a range fails: how many ranges completed before it. */
export interface BatchFailure extends SevError {
  readonly completed: number;
}

const checkSev = check;

function checkKvm<O extends NativeOutcome>(command: string, o: O, hint?: string): O {
  if (o.errno !== 0) {
    const e = SevError.fromIoctl(command, o.errno, 0);
    if (!hint) throw e;
    throw new SevError(`${e.message}: ${hint}`, { command, errno: o.errno });
  }
  return o;
}

/** ENOMEM from a command that pins guest pages: an error naming the limit that was hit. */
function memlockError(command: string, o: NativeOutcome, bytes?: number): SevError {
  const what = bytes === undefined ? 'pinning guest memory' : `pinning ${bytes} bytes`;
  return new SevError(
    `${command} failed: ENOMEM: ${what} exceeds RLIMIT_MEMLOCK (see \`ulimit -l\`); ` +
      'raise the limit, run with CAP_IPC_LOCK, register the region once, or use smaller chunks',
    { command, errno: ENOMEM, firmwareStatus: o.fwError > 0 ? o.fwError : undefined },
  );
}

function checkPinned<O extends NativeOutcome>(command: string, o: O, bytes: number): O {
  if (o.errno === ENOMEM) throw memlockError(command, o, bytes);
  return checkSev(command, o);
}


export class Vm {
  /** The VM type it was created with (0 = default; 2 SEV, 3 SEV-ES, 4 SNP). */
  readonly type: number;
  /** KVM_CAP_NR_MEMSLOTS for this VM. */
  readonly maxMemslots: number;
  private readonly nv: NativeVm;
  private readonly regions = new Map<number, MemoryRegion>();
  private readonly vcpuList: Vcpu[] = [];
  private readonly encRegions: { memory: GuestMemory; offset: number; size: number }[] = [];

  /** @internal Created by Kvm#createVm. */
  constructor(nativeVm: NativeVm, type: number) {
    this.nv = nativeVm;
    this.type = type;
    const slots = nativeVm.checkExtension(KVM_CAP.NR_MEMSLOTS);
    this.maxMemslots = slots.errno === 0 && slots.value > 0 ? slots.value : 32;
  }

  /** 'default', 'sev', 'sev-es', 'snp', ... */
  get typeName(): string {
    return VM_TYPE_NAMES[this.type] ?? `type-${this.type}`;
  }

  get closed(): boolean {
    return this.nv.closed;
  }

  /** The vCPUs created and not yet closed. */
  /** Regions registered with KVM_MEMORY_ENCRYPT_REG_REGION (pinned for the VM's life). */
  get encryptedRegions(): ReadonlyArray<{ readonly memory: GuestMemory; readonly offset: number; readonly size: number }> {
    return this.encRegions;
  }

  get vcpus(): readonly Vcpu[] {
    return [...this.vcpuList];
  }

  /** The memslots, by slot number. */
  get memoryRegions(): readonly MemoryRegion[] {
    return [...this.regions.values()].sort((a, b) => a.slot - b.slot);
  }

  private vm(command: string): NativeVm {
    if (this.nv.closed) throw new SevClosedError(command, 'Vm');
    return this.nv;
  }

  /** KVM_CHECK_EXTENSION on the VM fd: what this VM supports (0 = no). */
  checkExtension(cap: number): number {
    integer('KVM_CHECK_EXTENSION', 'cap', cap, 0, 0xffffffff);
    return checkKvm('KVM_CHECK_EXTENSION', this.vm('KVM_CHECK_EXTENSION').checkExtension(cap)).value;
  }

  /**
   * KVM_ENABLE_CAP on the VM: turn on a capability with its flags and up to four arguments, e.g.
   * `vm.enableCap(KVM_CAP.EXIT_HYPERCALL, { args: [1n << 12n] })` so that KVM_HC_MAP_GPA_RANGE (an
   * SNP guest's page-state changes) exits to user space.
   */
  enableCap(cap: number, options: { flags?: number; args?: ReadonlyArray<number | bigint> } = {}): void {
    const command = 'KVM_ENABLE_CAP';
    integer(command, 'cap', cap, 0, 0xffffffff);
    const flags = integer(command, 'flags', options.flags ?? 0, 0, 0xffffffff);
    const given = options.args ?? [];
    if (!Array.isArray(given) || given.length > 4) throw new SevArgumentError(command, 'args must be at most 4 integers');
    const args = [0, 1, 2, 3].map((i) => u64(command, `args[${i}]`, given[i] ?? 0));
    checkKvm(command, this.vm(command).enableCap(cap, flags, args));
  }

  // ---- memory ---------------------------------------------------------------------------------

  /**
   * KVM_SET_USER_MEMORY_REGION: map [memoryOffset, +size) of `memory` at `guestPhysAddr`. The
   * range must be page-aligned, inside `memory`, and not overlap another slot. Setting an existing
   * slot again may only change its address or flags (same memory and size), as in the kernel.
   */
  setUserMemoryRegion(options: MemoryRegionOptions): MemoryRegion {
    return this.setRegion('KVM_SET_USER_MEMORY_REGION', options, false);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION2: setUserMemoryRegion plus a guest_memfd (KVM_MEM_GUEST_MEMFD).
   * With one, the slot's private gfns (Vm#setMemoryAttributes) are backed by
   * [guestMemfdOffset, +size) of the guest_memfd, its shared ones by `memory`; those guest_memfd
   * pages must not be bound to another slot (the kernel's EEXIST). Rejected before the ioctl: a
   * closed or foreign GuestMemfd, an unaligned or too large offset, read-only or dirty logging
   * with a guest_memfd, changing an existing guest_memfd slot.
   */
  setUserMemoryRegion2(options: MemoryRegion2Options): MemoryRegion {
    return this.setRegion('KVM_SET_USER_MEMORY_REGION2', options, true);
  }

  private setRegion(command: string, options: MemoryRegion2Options, v2: boolean): MemoryRegion {
    const nv = this.vm(command);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected a region object');
    const slot = integer(command, 'slot', options.slot, 0, this.maxMemslots - 1);
    if (!(options.memory instanceof GuestMemory)) {
      throw new SevArgumentError(command, `memory must be a GuestMemory, got ${describe(options.memory)}`);
    }
    const memory = options.memory;
    memory.live(command);
    const gpa = u64(command, 'guestPhysAddr', options.guestPhysAddr);
    aligned(command, 'guestPhysAddr', gpa, PAGE_SIZE);
    const memoryOffset = integer(command, 'memoryOffset', options.memoryOffset ?? 0);
    aligned(command, 'memoryOffset', memoryOffset, PAGE_SIZE);
    const size = integer(command, 'size', options.size ?? memory.size - memoryOffset, 1);
    aligned(command, 'size', size, PAGE_SIZE);
    inside(command, 'slot range', memoryOffset, size, memory.size);
    const end = gpa + BigInt(size);
    if (end > 1n << 52n) throw new SevArgumentError(command, `slot ends beyond the 52-bit guest-physical space`);
    for (const r of this.regions.values()) {
      if (r.slot === slot) continue;
      if (gpa < r.guestPhysAddr + BigInt(r.size) && r.guestPhysAddr < end) {
        throw new SevArgumentError(
          command,
          `slot ${slot} [0x${gpa.toString(16)}, 0x${end.toString(16)}) overlaps slot ${r.slot} ` +
            `[0x${r.guestPhysAddr.toString(16)}, 0x${(r.guestPhysAddr + BigInt(r.size)).toString(16)})`,
        );
      }
    }
    const gmem = v2 ? options.guestMemfd : undefined;
    if (!v2 && (options as MemoryRegion2Options).guestMemfd !== undefined) {
      throw new SevArgumentError(command, 'a guest_memfd needs setUserMemoryRegion2');
    }
    let gmemOffset = 0;
    if (gmem !== undefined) {
      if (!(gmem instanceof GuestMemfd)) throw new SevArgumentError(command, `guestMemfd must be a GuestMemfd, got ${describe(gmem)}`);
      gmem.live(command);
      if (gmem.owner !== this) throw new SevArgumentError(command, 'the guest_memfd belongs to another VM');
      gmemOffset = integer(command, 'guestMemfdOffset', options.guestMemfdOffset ?? 0);
      aligned(command, 'guestMemfdOffset', gmemOffset, PAGE_SIZE);
      if (gmemOffset + size > gmem.size) {
        throw new SevArgumentError(command, `guest_memfd range 0x${gmemOffset.toString(16)}+0x${size.toString(16)} is outside the guest_memfd (0x${gmem.size.toString(16)} bytes)`);
      }
      if (options.readonly || options.logDirtyPages) {
        throw new SevArgumentError(command, 'a guest_memfd slot cannot be read-only or log dirty pages');
      }
      for (const r of this.regions.values()) {
        if (r.slot !== slot && r.guestMemfd === gmem && gmemOffset < r.guestMemfdOffset! + r.size && r.guestMemfdOffset! < gmemOffset + size) {
          throw new SevArgumentError(command, `those guest_memfd pages are bound to slot ${r.slot}`);
        }
      }
    }
    const existing = this.regions.get(slot);
    if (existing && (existing.guestMemfd || gmem)) {
      throw new SevArgumentError(command, `slot ${slot} exists and a guest_memfd slot cannot change: remove it first`);
    }
    if (existing && (existing.memory !== memory || existing.memoryOffset !== memoryOffset || existing.size !== size)) {
      throw new SevArgumentError(command, `slot ${slot} exists with other memory or size; remove it first`);
    }
    const flags =
      (options.readonly ? KVM_MEM.READONLY : 0) | (options.logDirtyPages ? KVM_MEM.LOG_DIRTY_PAGES : 0) | (gmem ? KVM_MEM.GUEST_MEMFD : 0);
    if (v2) {
      checkKvm(command, nv.setUserMemoryRegion2(slot, flags, gpa, memory.native, memoryOffset, size, gmem ? gmem.live(command) : null, BigInt(gmemOffset)));
    } else {
      checkKvm(command, nv.setUserMemoryRegion(slot, flags, gpa, memory.native, memoryOffset, size));
    }
    const region: MemoryRegion = Object.freeze(
      gmem
        ? { slot, guestPhysAddr: gpa, size, memory, memoryOffset, flags, guestMemfd: gmem, guestMemfdOffset: gmemOffset }
        : { slot, guestPhysAddr: gpa, size, memory, memoryOffset, flags },
    );
    this.regions.set(slot, region);
    return region;
  }

  /**
   * KVM_CREATE_GUEST_MEMFD: a guest_memfd of `size` bytes for this VM's private memory. Flags the
   * VM does not accept (KVM_CAP_GUEST_MEMFD_FLAGS) are refused before the ioctl. The fd keeps the
   * VM alive in the kernel until it is closed.
   */
  createGuestMemfd(options: GuestMemfdOptions): GuestMemfd {
    const command = 'KVM_CREATE_GUEST_MEMFD';
    const nv = this.vm(command);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { size }');
    const size = integer(command, 'size', options.size, 1);
    aligned(command, 'size', size, PAGE_SIZE);
    const flags = (options.mmap ? GUEST_MEMFD_FLAG.MMAP : 0) | (options.initShared ? GUEST_MEMFD_FLAG.INIT_SHARED : 0);
    if (flags) {
      const supported = this.checkExtension(KVM_CAP.GUEST_MEMFD_FLAGS);
      if (flags & ~supported) {
        throw new SevArgumentError(command, `flags 0x${flags.toString(16)} not supported by this ${this.typeName} VM (KVM_CAP_GUEST_MEMFD_FLAGS 0x${supported.toString(16)})`);
      }
    }
    const r = checkKvm(command, nv.createGuestMemfd(BigInt(size), BigInt(flags)));
    return new GuestMemfd(r.guestMemfd!, this);
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES: makes the guest-physical range private (backed by the memslots'
   * guest_memfd) or shared (backed by their user memory), with or without memslots there. On a VM
   * with private memory (type 'sw-protected') a guest access to a private gfn without guest_memfd
   * behind it ends KVM_RUN with a MEMORY_FAULT exit. Rejected before the ioctl: unaligned or empty
   * or wrapping ranges, PRIVATE on a VM without private memory (KVM_CAP_MEMORY_ATTRIBUTES).
   */
  setMemoryAttributes(options: MemoryAttributesOptions): void {
    const command = 'KVM_SET_MEMORY_ATTRIBUTES';
    const nv = this.vm(command);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { address, size, private }');
    const address = u64(command, 'address', options.address);
    const size = u64(command, 'size', options.size);
    aligned(command, 'address', address, PAGE_SIZE);
    aligned(command, 'size', size, PAGE_SIZE);
    if (size === 0n) throw new SevArgumentError(command, 'size must be > 0');
    if (address + size > (1n << 64n)) throw new SevArgumentError(command, 'the range wraps past 2^64');
    if (typeof options.private !== 'boolean') throw new SevArgumentError(command, `private must be a boolean, got ${describe(options.private)}`);
    const attributes = options.private ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n;
    if (options.private && !(this.checkExtension(KVM_CAP.MEMORY_ATTRIBUTES) & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
      throw new SevArgumentError(command, `a ${this.typeName} VM has no private memory (KVM_CAP_MEMORY_ATTRIBUTES lacks PRIVATE)`);
    }
    checkKvm(command, nv.setMemoryAttributes(address, size, attributes, 0n));
  }

  /** Deletes memslot `slot` (KVM_SET_USER_MEMORY_REGION with size 0); the VM drops its hold on the memory. */
  removeUserMemoryRegion(slot: number): void {
    const command = 'KVM_SET_USER_MEMORY_REGION';
    const nv = this.vm(command);
    integer(command, 'slot', slot, 0, this.maxMemslots - 1);
    const r = this.regions.get(slot);
    if (!r) throw new SevArgumentError(command, `slot ${slot} is not set`);
    if (r.guestMemfd) {
      checkKvm('KVM_SET_USER_MEMORY_REGION2', nv.setUserMemoryRegion2(slot, r.flags, r.guestPhysAddr, null, 0, 0, null, 0n));
    } else {
      checkKvm(command, nv.setUserMemoryRegion(slot, r.flags, r.guestPhysAddr, null, 0, 0));
    }
    this.regions.delete(slot);
  }

  /** KVM_SET_TSS_ADDR: 3 pages of guest-physical space for Intel real-mode emulation (no-op need on AMD). */
  setTssAddr(addr: number | bigint): void {
    const a = u64('KVM_SET_TSS_ADDR', 'addr', addr);
    checkKvm('KVM_SET_TSS_ADDR', this.vm('KVM_SET_TSS_ADDR').setTssAddr(a));
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page for Intel's real-mode identity page table. */
  setIdentityMapAddr(addr: number | bigint): void {
    const a = u64('KVM_SET_IDENTITY_MAP_ADDR', 'addr', addr);
    checkKvm('KVM_SET_IDENTITY_MAP_ADDR', this.vm('KVM_SET_IDENTITY_MAP_ADDR').setIdentityMapAddr(a));
  }

  // ---- vCPUs ----------------------------------------------------------------------------------

  /** KVM_CREATE_VCPU(id) and mmap of its kvm_run. Closing the Vm closes it too. */
  createVcpu(id: number): Vcpu {
    const command = 'KVM_CREATE_VCPU';
    const nv = this.vm(command);
    integer(command, 'id', id, 0, 0xffffffff);
    if (this.vcpuList.some((v) => v.id === id)) throw new SevArgumentError(command, `vcpu ${id} already exists`);
    const r = checkKvm(command, nv.createVcpu(id));
    const vcpu = new Vcpu(r.vcpu!, (v) => {
      const i = this.vcpuList.indexOf(v);
      if (i >= 0) this.vcpuList.splice(i, 1);
    });
    this.vcpuList.push(vcpu);
    return vcpu;
  }

  /**
   * Closes the vCPUs and the VM fd. Calls still running on the thread pool finish first: the fds
   * are closed, and the guest memory released, when the last of them returns. Idempotent.
   */
  close(): void {
    for (const v of [...this.vcpuList]) v.close();
    this.nv.close();
    this.regions.clear();
    this.encRegions.length = 0;
  }

  // ---- encrypted regions ----------------------------------------------------------------------

  /**
   * KVM_MEMORY_ENCRYPT_REG_REGION: pin [offset, +size) of `memory` for this SEV VM's lifetime so it
   * can stay encrypted in place. Charged to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
   */
  registerEncRegion(memory: GuestMemory, offset = 0, size?: number): Promise<void> {
    return runAsync(this.encRegionFlow(true, memory, offset, size));
  }
  registerEncRegionSync(memory: GuestMemory, offset = 0, size?: number): void {
    runSync(this.encRegionFlow(true, memory, offset, size));
  }
  /** KVM_MEMORY_ENCRYPT_UNREG_REGION: unpin a region registered before (same offset and size). */
  unregisterEncRegion(memory: GuestMemory, offset = 0, size?: number): Promise<void> {
    return runAsync(this.encRegionFlow(false, memory, offset, size));
  }
  unregisterEncRegionSync(memory: GuestMemory, offset = 0, size?: number): void {
    runSync(this.encRegionFlow(false, memory, offset, size));
  }
  private *encRegionFlow(reg: boolean, memory: GuestMemory, offset: number, size: number | undefined): Flow<void> {
    const command = reg ? 'KVM_MEMORY_ENCRYPT_REG_REGION' : 'KVM_MEMORY_ENCRYPT_UNREG_REGION';
    const nv = this.vm(command);
    const m = this.memoryArg(command, memory);
    const len = size ?? memory.size - (typeof offset === 'number' ? offset : 0);
    memory.check(command, offset, len);
    if (len === 0) throw new SevArgumentError(command, 'size must be > 0');
    const i = this.encRegions.findIndex((r) => r.memory === memory && r.offset === offset && r.size === len);
    if (!reg && i < 0) throw new SevArgumentError(command, `region 0x${offset.toString(16)}+0x${len.toString(16)} is not registered`);
    const o = yield* call((a) => nv[reg ? 'registerEncRegion' : 'unregisterEncRegion'](m, offset, len, a));
    if (reg) checkPinned(command, o, len);
    else checkKvm(command, o);
    if (reg) this.encRegions.push({ memory, offset, size: len });
    else this.encRegions.splice(i, 1);
  }

  // ---- KVM_MEMORY_ENCRYPT_OP ------------------------------------------------------------------

  /** KVM_SEV_INIT: make this default-type VM an SEV guest (ASID, platform init if needed). */
  sevInit(sev: SevFd): Promise<void> {
    return runAsync(this.simpleFlow('KVM_SEV_INIT', sev, (n, fd, a) => n.sevInit(fd, a)));
  }
  sevInitSync(sev: SevFd): void {
    runSync(this.simpleFlow('KVM_SEV_INIT', sev, (n, fd, a) => n.sevInit(fd, a)));
  }

  /** KVM_SEV_ES_INIT: as sevInit, for an SEV-ES guest. */
  sevEsInit(sev: SevFd): Promise<void> {
    return runAsync(this.simpleFlow('KVM_SEV_ES_INIT', sev, (n, fd, a) => n.sevEsInit(fd, a)));
  }
  sevEsInitSync(sev: SevFd): void {
    runSync(this.simpleFlow('KVM_SEV_ES_INIT', sev, (n, fd, a) => n.sevEsInit(fd, a)));
  }

  /** KVM_SEV_INIT2: initialise a VM created with an SEV VM type (sev, sev-es, snp). */
  sevInit2(sev: SevFd, options: SevInit2Options | null = {}): Promise<void> {
    return runAsync(this.init2Flow(sev, options ?? {}));
  }
  sevInit2Sync(sev: SevFd, options: SevInit2Options | null = {}): void {
    runSync(this.init2Flow(sev, options ?? {}));
  }
  private *init2Flow(sev: SevFd, options: SevInit2Options): Flow<void> {
    const command = 'KVM_SEV_INIT2';
    const fd = sevFd(command, sev);
    const features = u64(command, 'vmsaFeatures', options.vmsaFeatures ?? 0);
    const flags = integer(command, 'flags', options.flags ?? 0, 0, 0xffffffff);
    const ghcb = integer(command, 'ghcbVersion', options.ghcbVersion ?? 0, 0, 0xffff);
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.sevInit2(fd, features, flags, ghcb, a)));
  }

  /** LAUNCH_START: create the guest's encryption context under `policy`. */
  launchStart(sev: SevFd, options: LaunchStartOptions): Promise<LaunchStartResult> {
    return runAsync(this.launchStartFlow(sev, options));
  }
  launchStartSync(sev: SevFd, options: LaunchStartOptions): LaunchStartResult {
    return runSync(this.launchStartFlow(sev, options));
  }
  private *launchStartFlow(sev: SevFd, options: LaunchStartOptions): Flow<LaunchStartResult> {
    const command = 'LAUNCH_START';
    const fd = sevFd(command, sev);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { policy, ... }');
    const policy = integer(command, 'policy', options.policy, 0, 0xffffffff);
    const handle = integer(command, 'handle', options.handle ?? 0, 0, 0xffffffff);
    const dh = options.dhCert === undefined ? null : bytes(command, 'dhCert', options.dhCert);
    const session = options.session === undefined ? null : bytes(command, 'session', options.session);
    const nv = this.vm(command);
    const r = checkSev(command, yield* call((a) => nv.launchStart(fd, policy, handle, dh, session, a)));
    return { handle: r.handle, policy: r.policy };
  }

  /**
   * LAUNCH_UPDATE_DATA: encrypt [offset, +length) of guest memory in place and add it to the
   * launch digest. Offset and length must be multiples of 16.
   */
  launchUpdateData(sev: SevFd, memory: GuestMemory, offset: number, length: number): Promise<void> {
    return runAsync(this.updateDataFlow(sev, memory, offset, length));
  }
  launchUpdateDataSync(sev: SevFd, memory: GuestMemory, offset: number, length: number): void {
    runSync(this.updateDataFlow(sev, memory, offset, length));
  }
  private *updateDataFlow(sev: SevFd, memory: GuestMemory, offset: number, length: number): Flow<void> {
    const command = 'LAUNCH_UPDATE_DATA';
    const fd = sevFd(command, sev);
    const m = this.memoryArg(command, memory);
    checkUpdateRange(command, memory, { offset, length }, '');
    const nv = this.vm(command);
    checkPinned(command, yield* call((a) => nv.launchUpdateData(fd, m, offset, length, a)), length);
  }

  /**
   * LAUNCH_UPDATE_DATA over many ranges, in order, in one worker-thread job. Ranges are not
   * merged here (the launch layer plans them). Resolves with how many completed; a failing range
   * rejects with a SevError carrying `completed`. `signal` stops the batch between ranges.
   */
  async launchUpdateDataBatch(
    sev: SevFd,
    memory: GuestMemory,
    ranges: readonly MemoryRange[],
    options: BatchOptions = {},
  ): Promise<BatchResult> {
    const command = 'LAUNCH_UPDATE_DATA';
    const { fd, m, flat } = this.batchArgs(command, sev, memory, ranges);
    const nv = this.vm(command);
    const control = new Int32Array(new SharedArrayBuffer(8));
    const total = ranges.length;
    const abort = () => Atomics.store(control, 0, 1);
    if (options.signal?.aborted) return { completed: 0, cancelled: true };
    options.signal?.addEventListener('abort', abort, { once: true });
    const progress = options.onProgress;
    const timer = progress
      ? setInterval(() => progress(Atomics.load(control, 1), total), options.progressIntervalMs ?? 50)
      : undefined;
    timer?.unref();
    try {
      const r = await nv.launchUpdateDataBatch(fd, m, flat, control, true);
      progress?.(r.completed, total);
      return batchResult(command, r, total);
    } finally {
      if (timer) clearInterval(timer);
      options.signal?.removeEventListener('abort', abort);
    }
  }
  launchUpdateDataBatchSync(sev: SevFd, memory: GuestMemory, ranges: readonly MemoryRange[]): BatchResult {
    const command = 'LAUNCH_UPDATE_DATA';
    const { fd, m, flat } = this.batchArgs(command, sev, memory, ranges);
    return batchResult(command, this.vm(command).launchUpdateDataBatch(fd, m, flat, null, false), ranges.length);
  }
  private batchArgs(command: string, sev: SevFd, memory: GuestMemory, ranges: readonly MemoryRange[]) {
    const fd = sevFd(command, sev);
    const m = this.memoryArg(command, memory);
    if (!Array.isArray(ranges) || ranges.length === 0) {
      throw new SevArgumentError(command, 'expected a non-empty array of { offset, length } ranges');
    }
    const flat = new Float64Array(ranges.length * 2);
    ranges.forEach((range, i) => {
      const r = checkUpdateRange(command, memory, range, ` (range ${i})`);
      flat[2 * i] = r.offset;
      flat[2 * i + 1] = r.length;
    });
    this.vm(command);
    return { fd, m, flat };
  }

  /** LAUNCH_UPDATE_VMSA: (SEV-ES) encrypt and measure every vCPU's register state. */
  launchUpdateVmsa(sev: SevFd): Promise<void> {
    return runAsync(this.simpleFlow('LAUNCH_UPDATE_VMSA', sev, (n, fd, a) => n.launchUpdateVmsa(fd, a)));
  }
  launchUpdateVmsaSync(sev: SevFd): void {
    runSync(this.simpleFlow('LAUNCH_UPDATE_VMSA', sev, (n, fd, a) => n.launchUpdateVmsa(fd, a)));
  }

  /** LAUNCH_MEASURE: the launch measurement (HMAC digest ‖ mnonce, 48 bytes in the SEV API). */
  launchMeasure(sev: SevFd): Promise<Buffer> {
    return runAsync(this.measureFlow(sev));
  }
  launchMeasureSync(sev: SevFd): Buffer {
    return runSync(this.measureFlow(sev));
  }
  private *measureFlow(sev: SevFd): Flow<Buffer> {
    const command = 'LAUNCH_MEASURE';
    const fd = sevFd(command, sev);
    const nv = this.vm(command);
    const q = yield* call((a) => nv.launchMeasure(fd, null, a));
    const buf = Buffer.alloc(queriedLength(command, q, q.length));
    const r = checkSev(command, yield* call((a) => nv.launchMeasure(fd, buf, a)));
    return buf.subarray(0, r.length);
  }

  /** LAUNCH_SECRET: inject a secret packet (header + transport data) into guest memory. */
  launchSecret(sev: SevFd, options: KvmLaunchSecretOptions): Promise<void> {
    return runAsync(this.secretFlow(sev, options));
  }
  launchSecretSync(sev: SevFd, options: KvmLaunchSecretOptions): void {
    runSync(this.secretFlow(sev, options));
  }
  private *secretFlow(sev: SevFd, options: KvmLaunchSecretOptions): Flow<void> {
    const command = 'LAUNCH_SECRET';
    const fd = sevFd(command, sev);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { header, transport, memory, guestOffset }');
    const header = bytes(command, 'header', options.header);
    const transport = bytes(command, 'transport', options.transport);
    const m = this.memoryArg(command, options.memory);
    const length = options.length ?? transport.length;
    checkUpdateRange(command, options.memory, { offset: options.guestOffset, length }, '');
    const offset = options.guestOffset;
    const pageSize = options.memory.hugePages === 'hugetlb' ? 2 * 1024 * 1024 : PAGE_SIZE;
    if (Math.floor(offset / pageSize) !== Math.floor((offset + length - 1) / pageSize)) {
      throw new SevArgumentError(command, `the secret 0x${offset.toString(16)}+0x${length.toString(16)} crosses a page boundary; the kernel needs it physically contiguous`);
    }
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.launchSecret(fd, header, m, offset, length, transport, a)));
  }

  /** LAUNCH_FINISH: the launch is complete; the guest may run. */
  launchFinish(sev: SevFd): Promise<void> {
    return runAsync(this.simpleFlow('LAUNCH_FINISH', sev, (n, fd, a) => n.launchFinish(fd, a)));
  }
  launchFinishSync(sev: SevFd): void {
    runSync(this.simpleFlow('LAUNCH_FINISH', sev, (n, fd, a) => n.launchFinish(fd, a)));
  }

  /** GUEST_STATUS: the guest's handle, policy and state. */
  guestStatus(sev: SevFd): Promise<SevGuestStatus> {
    return runAsync(this.statusFlow(sev));
  }
  guestStatusSync(sev: SevFd): SevGuestStatus {
    return runSync(this.statusFlow(sev));
  }
  private *statusFlow(sev: SevFd): Flow<SevGuestStatus> {
    const command = 'GUEST_STATUS';
    const fd = sevFd(command, sev);
    const nv = this.vm(command);
    const r = checkSev(command, yield* call((a) => nv.guestStatus(fd, a)));
    return { handle: r.handle, policy: r.policy, state: r.state, stateName: SEV_GUEST_STATES[r.state] ?? `UNKNOWN_${r.state}` };
  }

  /** DBG_DECRYPT: read `length` bytes of guest memory at `offset`, decrypted (policy must allow debug). */
  dbgDecrypt(sev: SevFd, memory: GuestMemory, offset: number, length: number): Promise<Buffer> {
    return runAsync(this.decryptFlow(sev, memory, offset, length));
  }
  dbgDecryptSync(sev: SevFd, memory: GuestMemory, offset: number, length: number): Buffer {
    return runSync(this.decryptFlow(sev, memory, offset, length));
  }
  private *decryptFlow(sev: SevFd, memory: GuestMemory, offset: number, length: number): Flow<Buffer> {
    const command = 'DBG_DECRYPT';
    const fd = sevFd(command, sev);
    const m = this.memoryArg(command, memory);
    memory.check(command, offset, length);
    if (length === 0 || length > MAX_SEV_LENGTH) throw new SevArgumentError(command, 'length must be in [1, 2^32)');
    const dst = Buffer.alloc(length);
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.dbgDecrypt(fd, m, offset, dst, a)));
    return dst;
  }

  /** DBG_ENCRYPT: write `data`, encrypted with the guest key, at `offset` (policy must allow debug). */
  dbgEncrypt(sev: SevFd, memory: GuestMemory, offset: number, data: Uint8Array): Promise<void> {
    return runAsync(this.encryptFlow(sev, memory, offset, data));
  }
  dbgEncryptSync(sev: SevFd, memory: GuestMemory, offset: number, data: Uint8Array): void {
    runSync(this.encryptFlow(sev, memory, offset, data));
  }
  private *encryptFlow(sev: SevFd, memory: GuestMemory, offset: number, data: Uint8Array): Flow<void> {
    const command = 'DBG_ENCRYPT';
    const fd = sevFd(command, sev);
    const m = this.memoryArg(command, memory);
    const src = bytes(command, 'data', data);
    memory.check(command, offset, src.length);
    if (src.length === 0 || src.length > MAX_SEV_LENGTH) throw new SevArgumentError(command, 'data length must be in [1, 2^32)');
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.dbgEncrypt(fd, src, m, offset, a)));
  }

  /** GET_ATTESTATION_REPORT: a report binding the launch measurement to a 16-byte nonce. */
  getAttestationReport(sev: SevFd, mnonce: Uint8Array): Promise<Buffer> {
    return runAsync(this.reportFlow(sev, mnonce));
  }
  getAttestationReportSync(sev: SevFd, mnonce: Uint8Array): Buffer {
    return runSync(this.reportFlow(sev, mnonce));
  }
  private *reportFlow(sev: SevFd, mnonce: Uint8Array): Flow<Buffer> {
    const command = 'GET_ATTESTATION_REPORT';
    const fd = sevFd(command, sev);
    const nonce = bytes(command, 'mnonce', mnonce);
    if (nonce.length !== SEV_MNONCE_SIZE) throw new SevArgumentError(command, `mnonce must be ${SEV_MNONCE_SIZE} bytes, got ${nonce.length}`);
    const nv = this.vm(command);
    const q = yield* call((a) => nv.getAttestationReport(fd, nonce, null, a));
    const buf = Buffer.alloc(queriedLength(command, q, q.length));
    const r = checkSev(command, yield* call((a) => nv.getAttestationReport(fd, nonce, buf, a)));
    return buf.subarray(0, r.length);
  }

  // ---- SEV-SNP launch (KVM_X86_SNP_VM after KVM_SEV_INIT2) ------------------------------------

  /**
   * KVM_SEV_SNP_LAUNCH_START: create the SNP guest context under `policy` and bind the VM's ASID.
   * The kernel refuses policy bits it does not support (KVM_X86_SNP_POLICY_BITS) with EINVAL.
   */
  snpLaunchStart(sev: SevFd, options: SnpLaunchStartOptions): Promise<void> {
    return runAsync(this.snpStartFlow(sev, options));
  }
  snpLaunchStartSync(sev: SevFd, options: SnpLaunchStartOptions): void {
    runSync(this.snpStartFlow(sev, options));
  }
  private *snpStartFlow(sev: SevFd, options: SnpLaunchStartOptions): Flow<void> {
    const command = 'SNP_LAUNCH_START';
    const fd = sevFd(command, sev);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { policy, gosvw?, flags? }');
    const policy = u64(command, 'policy', options.policy);
    if (!(policy & SNP_POLICY_RSVD_MBO)) {
      throw new SevArgumentError(command, `policy bit 17 is reserved and must be set, got 0x${policy.toString(16)}`);
    }
    const gosvw = options.gosvw === undefined ? null : bytes(command, 'gosvw', options.gosvw);
    if (gosvw && gosvw.length !== 16) throw new SevArgumentError(command, `gosvw must be 16 bytes, got ${gosvw.length}`);
    const flags = integer(command, 'flags', options.flags ?? 0, 0, 0xffff);
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.snpLaunchStart(fd, policy, gosvw, flags, a)));
  }

  /**
   * KVM_SEV_SNP_LAUNCH_UPDATE: copy pages into the guest's private memory (guest_memfd), assign
   * them to the guest in the RMP and measure them by type. The range must be private
   * (setMemoryAttributes) in a guest_memfd slot. One ioctl: the kernel may stop early without an
   * error — the result says what is left (SnpLaunch loops until nothing is).
   */
  snpLaunchUpdate(sev: SevFd, options: SnpLaunchUpdateOptions): Promise<SnpLaunchUpdateProgress> {
    return runAsync(this.snpUpdateFlow(sev, options));
  }
  snpLaunchUpdateSync(sev: SevFd, options: SnpLaunchUpdateOptions): SnpLaunchUpdateProgress {
    return runSync(this.snpUpdateFlow(sev, options));
  }
  private *snpUpdateFlow(sev: SevFd, options: SnpLaunchUpdateOptions): Flow<SnpLaunchUpdateProgress> {
    const command = 'SNP_LAUNCH_UPDATE';
    const fd = sevFd(command, sev);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { guestPhysAddr, length, type, source? }');
    const gpa = integer(command, 'guestPhysAddr', options.guestPhysAddr);
    const length = integer(command, 'length', options.length, 1);
    aligned(command, 'guestPhysAddr', gpa, PAGE_SIZE);
    aligned(command, 'length', length, PAGE_SIZE);
    const type = SNP_PAGE_TYPES[options.type as SnpLaunchPageType];
    if (type === undefined || !Object.hasOwn(SNP_PAGE_TYPES, options.type)) {
      throw new SevArgumentError(command, `type must be one of ${Object.keys(SNP_PAGE_TYPES).join(', ')}, got ${describe(options.type)}`);
    }
    const flags = integer(command, 'flags', options.flags ?? 0, 0, 0xffff);
    let m = null;
    let offset = 0;
    if (options.type === 'zero') {
      if (options.source !== undefined) throw new SevArgumentError(command, 'zero pages take no source');
    } else {
      const src = options.source;
      if (typeof src !== 'object' || src === null) throw new SevArgumentError(command, `${options.type} pages need a source { memory, offset }`);
      m = this.memoryArg(command, src.memory);
      offset = integer(command, 'source offset', src.offset);
      aligned(command, 'source offset', offset, PAGE_SIZE);
      inside(command, 'source', offset, length, src.memory.size);
    }
    const nv = this.vm(command);
    const o = yield* call((a) => nv.snpLaunchUpdate(fd, gpa / PAGE_SIZE, m, offset, length, type, flags, a));
    if (o.errno === EIO && !o.fwError) {
      // kvm_gmem_populate failed on the first page before any firmware command.
      throw new SevError(
        `${command} failed: EIO: the page at 0x${gpa.toString(16)} is not private (setMemoryAttributes), ` +
          'or it was launched already, or its source page is not readable',
        { command, errno: EIO },
      );
    }
    const r = checkSev(command, o);
    return {
      pages: (length - r.length) / PAGE_SIZE,
      guestPhysAddr: r.gfnStart * PAGE_SIZE,
      length: r.length,
      sourceOffset: m ? r.offset : offset,
    };
  }

  /**
   * KVM_SEV_SNP_LAUNCH_FINISH: measure every vCPU's register state as a VMSA page (their state
   * is protected from then on), then finish the launch; with an ID block the firmware checks its
   * signatures, launch digest and policy first.
   */
  snpLaunchFinish(sev: SevFd, options: SnpLaunchFinishOptions = {}): Promise<void> {
    return runAsync(this.snpFinishFlow(sev, options));
  }
  snpLaunchFinishSync(sev: SevFd, options: SnpLaunchFinishOptions = {}): void {
    runSync(this.snpFinishFlow(sev, options));
  }
  private *snpFinishFlow(sev: SevFd, options: SnpLaunchFinishOptions): Flow<void> {
    const command = 'SNP_LAUNCH_FINISH';
    const fd = sevFd(command, sev);
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { idBlock?, idAuth?, hostData?, ... }');
    const idBlock = options.idBlock === undefined ? null : bytes(command, 'idBlock', options.idBlock);
    const idAuth = options.idAuth === undefined ? null : bytes(command, 'idAuth', options.idAuth);
    if (!idBlock !== !idAuth) throw new SevArgumentError(command, 'idBlock and idAuth go together');
    if (idBlock && idBlock.length !== SNP_ID_BLOCK_SIZE) throw new SevArgumentError(command, `idBlock must be ${SNP_ID_BLOCK_SIZE} bytes, got ${idBlock.length}`);
    if (idAuth && idAuth.length !== SNP_ID_AUTH_SIZE) throw new SevArgumentError(command, `idAuth must be ${SNP_ID_AUTH_SIZE} bytes, got ${idAuth.length}`);
    if (options.authorKey && !idBlock) throw new SevArgumentError(command, 'authorKey needs an idBlock');
    const hostData = options.hostData === undefined ? null : bytes(command, 'hostData', options.hostData);
    if (hostData && hostData.length !== SNP_HOST_DATA_SIZE) throw new SevArgumentError(command, `hostData must be ${SNP_HOST_DATA_SIZE} bytes, got ${hostData.length}`);
    const flags = integer(command, 'flags', options.flags ?? 0, 0, 0xffff);
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => nv.snpLaunchFinish(fd, idBlock, idAuth, !!options.authorKey, !!options.vcekDisabled, hostData, flags, a)));
  }

  /**
   * KVM_SEV_SNP_ENABLE_REQ_CERTS (Linux 7.2): before any vCPU exists, have the guest's extended
   * report requests exit to user space (KVM_EXIT_SNP_REQ_CERTS) so the VMM serves certificates.
   */
  snpEnableReqCerts(sev: SevFd): Promise<void> {
    return runAsync(this.simpleFlow('SNP_ENABLE_REQ_CERTS', sev, (n, fd, a) => n.snpEnableReqCerts(fd, a)));
  }
  snpEnableReqCertsSync(sev: SevFd): void {
    runSync(this.simpleFlow('SNP_ENABLE_REQ_CERTS', sev, (n, fd, a) => n.snpEnableReqCerts(fd, a)));
  }

  private *simpleFlow(
    command: string,
    sev: SevFd,
    c: (nv: NativeVm, fd: number, a: boolean) => NativeOutcome | Promise<NativeOutcome>,
  ): Flow<void> {
    const fd = sevFd(command, sev);
    const nv = this.vm(command);
    checkSev(command, yield* call((a) => c(nv, fd, a)));
  }

  private memoryArg(command: string, memory: unknown) {
    if (!(memory instanceof GuestMemory)) throw new SevArgumentError(command, `memory must be a GuestMemory, got ${describe(memory)}`);
    return memory.live(command);
  }
}

/** Validates a range and returns a plain copy (read once: getters cannot change it afterwards). */
function checkUpdateRange(command: string, memory: GuestMemory, range: MemoryRange, where: string): MemoryRange {
  if (typeof range !== 'object' || range === null) throw new SevArgumentError(command, `expected { offset, length }${where}`);
  const r = { offset: range.offset, length: range.length };
  integer(command, `offset${where}`, r.offset);
  integer(command, `length${where}`, r.length, 1, MAX_SEV_LENGTH);
  if (r.offset % SEV_DATA_ALIGNMENT || r.length % SEV_DATA_ALIGNMENT) {
    throw new SevArgumentError(
      command,
      `offset and length must be multiples of ${SEV_DATA_ALIGNMENT}${where}, got offset 0x${r.offset.toString(16)} length 0x${r.length.toString(16)}`,
    );
  }
  inside(command, 'range', r.offset, r.length, memory.size, where);
  return r;
}

function batchResult(command: string, r: NativeOutcome & { completed?: number; cancelled?: boolean }, total: number): BatchResult {
  const completed = r.completed ?? 0; // absent when the job never started (e.g. EBADF)
  if (r.errno !== 0) {
    const e = r.errno === ENOMEM ? memlockError(command, r) : SevError.fromIoctl(command, r.errno, r.fwError);
    const err = new SevError(`${e.message} (range ${completed} of ${total}; ${completed} completed)`, {
      command,
      errno: r.errno,
      firmwareStatus: e.firmwareStatus,
    });
    Object.defineProperty(err, 'completed', { value: completed, enumerable: true });
    throw err as BatchFailure;
  }
  return { completed, cancelled: r.cancelled ?? false };
}
