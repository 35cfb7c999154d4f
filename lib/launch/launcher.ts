// The SEV / SEV-ES launch as a typed sequence (a typestate, as in virtee/sev): each step returns
// the object for the next one, so a step out of order cannot be written —
//   SevLaunch.init(vm, platform, mode)    KVM_SEV_INIT2, or KVM_SEV_INIT / KVM_SEV_ES_INIT
//     .start({ policy, dhCert?, session? })          → LaunchStarted   (LAUNCH_START)
//   LaunchStarted: updateData / updateRanges / streamFile / updateVmsa
//     .measure()                                     → LaunchMeasured  (LAUNCH_MEASURE)
//   LaunchMeasured: injectSecret
//     .finish()                                      → LaunchFinished  (LAUNCH_FINISH)
// and reusing a state that has moved on (from plain JS) fails with a clear error before any ioctl.
import * as fs from 'node:fs';

import { SevArgumentError, SevError } from '../errors';
import { GuestMemory, Vm } from '../kvm';
import type { SevGuestStatus } from '../kvm/vm';
import { parseLaunchMeasure } from '../owner/measurement';
import type { SevPlatform } from '../platform';
import { pinnableBytes, memlockInfo } from './memlock';
import { Policy, type PolicyFlags } from './policy';
import { planChunks, type Range, UPDATE_ALIGNMENT, validateRanges } from './ranges';

export type SevMode = 'sev' | 'sev-es';

/** Progress of a data stream. */
export interface StreamProgress {
  bytesDone: number;
  bytesTotal: number;
  chunksDone: number;
  chunksTotal: number;
}

export interface StreamOptions {
  /** Called after every chunk the firmware has measured. */
  onProgress?: (p: StreamProgress) => void;
  /** Stops the stream between chunks; the launch stays in the started state. */
  signal?: AbortSignal;
  /** Bytes per LAUNCH_UPDATE_DATA (default 8 MiB; capped by what RLIMIT_MEMLOCK allows to pin). */
  chunkSize?: number;
}

export interface StreamFileOptions extends StreamOptions {
  /** Guest-memory offset where the file goes (16-byte aligned). */
  offset: number;
  /** Offset in the file (default 0). */
  fileOffset?: number;
  /** Bytes to stream (default: the rest of the file), rounded up to 16 with zero padding. */
  length?: number;
}

export interface StreamResult {
  bytes: number;
  chunks: number;
}

const DEFAULT_CHUNK = 8 << 20;

export function aborted(command: string, done: number): SevError {
  const e = new SevError(`${command}: cancelled after ${done} bytes`, { command });
  e.name = 'AbortError';
  (e as { code: string }).code = 'ABORT_ERR';
  return e;
}

/**
 * The part of `file` a stream launches: from `fileOffset` (default 0), `length` bytes (default
 * the rest of the file), checked against the file's size before anything is read.
 */
export function fileRange(command: string, file: string | number, fileOffset = 0, length?: number): { fileOffset: number; length: number } {
  let size: number;
  try {
    size = typeof file === 'number' ? fs.fstatSync(file).size : fs.statSync(file).size;
  } catch (e) {
    throw new SevArgumentError(command, `cannot stream ${String(file)}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const len = length ?? size - fileOffset;
  if (!Number.isSafeInteger(len) || len <= 0 || !Number.isSafeInteger(fileOffset) || fileOffset < 0 || fileOffset + len > size) {
    throw new SevArgumentError(command, `file range ${fileOffset}+${len} is not inside ${String(file)} (${size} bytes)`);
  }
  return { fileOffset, length: len };
}

/**
 * Reads and launches chunks in order, reading chunk k+1 while chunk k is launched, so a stream
 * costs about max(read, launch). `done(i)` follows each launched chunk; `signal` stops between
 * chunks with an AbortError saying how many bytes were launched.
 */
export async function pipelineChunks(
  command: string,
  chunks: ReadonlyArray<{ length: number }>,
  read: (i: number) => Promise<unknown>,
  launch: (i: number) => Promise<unknown>,
  done: (i: number, bytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  let bytes = 0;
  let reading: Promise<unknown> | null = read(0);
  for (let i = 0; i < chunks.length; i++) {
    await reading;
    reading = null;
    if (signal?.aborted) throw aborted(command, bytes);
    const launching = launch(i);
    if (i + 1 < chunks.length) {
      reading = read(i + 1);
      reading.catch(() => {}); // reported when awaited; never an unhandled rejection
    }
    try {
      await launching;
    } catch (e) {
      await reading?.catch(() => {});
      throw e;
    }
    bytes += chunks[i].length;
    done(i, bytes);
  }
}

/** What every launch state shares: the VM, the firmware, and who may act now. */
export class LaunchContext {
  /** The state object allowed to act; others have been superseded. */
  current: object | null = null;
  busy: string | null = null;
  pinned = 0;

  constructor(
    readonly vm: Vm,
    readonly platform: SevPlatform,
    readonly mode: SevMode | 'snp',
  ) {}

  /** Checks that `state` is the live step and no other step is running, then marks it busy. */
  async step<T>(state: object, command: string, f: () => Promise<T>): Promise<T> {
    this.enter(state, command);
    try {
      return await f();
    } finally {
      this.busy = null;
    }
  }

  enter(state: object, command: string): void {
    if (this.current !== state) {
      throw new SevArgumentError(command, 'this launch step is over: use the object the previous step returned');
    }
    if (this.busy) throw new SevArgumentError(command, `${this.busy} is still running on this launch`);
    this.busy = command;
  }

  advance(from: object, to: object): void {
    if (this.current === from) this.current = to;
  }
}

export class SevLaunch {
  private readonly ctx: LaunchContext;

  private constructor(ctx: LaunchContext) {
    this.ctx = ctx;
    ctx.current = this;
  }

  /**
   * Makes `vm` an SEV (or SEV-ES) guest on `platform`'s firmware: KVM_SEV_INIT2 for VMs created
   * with an SEV VM type, KVM_SEV_INIT / KVM_SEV_ES_INIT for a default VM (older kernels).
   */
  static async init(vm: Vm, platform: SevPlatform, options: { mode?: SevMode; vmsaFeatures?: bigint | number } | null = {}): Promise<SevLaunch> {
    if (!(vm instanceof Vm)) throw new SevArgumentError('init', 'expected a Vm (Kvm#createVm)');
    if (typeof platform !== 'object' || platform === null || !('fd' in platform)) {
      throw new SevArgumentError('init', 'expected an open SevPlatform');
    }
    options ??= {};
    const mode = options.mode ?? (vm.typeName === 'sev-es' ? 'sev-es' : 'sev');
    if (mode !== 'sev' && mode !== 'sev-es') throw new SevArgumentError('init', `mode must be 'sev' or 'sev-es', got ${String(mode)}`);
    if (vm.vcpus.length > 0) {
      throw new SevArgumentError('init', 'initialise SEV before creating vCPUs (the kernel refuses SEV init once vCPUs exist)');
    }
    if (vm.typeName === 'sev' || vm.typeName === 'sev-es') {
      if ((vm.typeName === 'sev-es') !== (mode === 'sev-es')) {
        throw new SevArgumentError('KVM_SEV_INIT2', `a ${vm.typeName} VM cannot be launched as ${mode}`);
      }
      await vm.sevInit2(platform, { vmsaFeatures: options.vmsaFeatures ?? 0 });
    } else if (vm.typeName === 'default') {
      await (mode === 'sev-es' ? vm.sevEsInit(platform) : vm.sevInit(platform));
    } else {
      throw new SevArgumentError('init', `VM type ${vm.typeName} is not an SEV VM type`);
    }
    return new SevLaunch(new LaunchContext(vm, platform, mode));
  }

  get mode(): SevMode {
    return this.ctx.mode as SevMode;
  }

  /**
   * LAUNCH_START under `policy`. With a guest owner's DH certificate and session blob
   * (lib/owner), the firmware unwraps the owner's TEK/TIK; without them it makes its own.
   */
  async start(options: { policy: Policy | PolicyFlags | number; dhCert?: Uint8Array; session?: Uint8Array }): Promise<LaunchStarted> {
    if (typeof options !== 'object' || options === null) throw new SevArgumentError('LAUNCH_START', 'expected { policy, dhCert?, session? }');
    const policy = Policy.from(options.policy);
    if (policy.es !== (this.ctx.mode === 'sev-es')) {
      throw new SevArgumentError('LAUNCH_START', `policy ${policy} ${policy.es ? 'requires' : 'forbids'} SEV-ES but this launch is ${this.ctx.mode}`);
    }
    if ((options.dhCert === undefined) !== (options.session === undefined)) {
      throw new SevArgumentError('LAUNCH_START', 'dhCert and session go together (both from the guest owner) or not at all');
    }
    return this.ctx.step(this, 'LAUNCH_START', async () => {
      const r = await this.ctx.vm.launchStart(this.ctx.platform, {
        policy: policy.value,
        dhCert: options.dhCert,
        session: options.session,
      });
      const next = new LaunchStarted(this.ctx, r.handle, policy);
      this.ctx.advance(this, next);
      return next;
    });
  }
}

export class LaunchStarted {
  constructor(
    private readonly ctx: LaunchContext,
    /** The firmware's handle of the guest context. */
    readonly handle: number,
    readonly policy: Policy,
  ) {}

  /** LAUNCH_UPDATE_DATA over one range of guest memory (encrypt in place and measure). */
  updateData(memory: GuestMemory, offset: number, length: number): Promise<StreamResult> {
    return this.updateRanges(memory, [{ offset, length }]);
  }

  /**
   * LAUNCH_UPDATE_DATA over ranges, measured in the order given. Adjacent ranges are merged and
   * runs are split into chunks, all issued in one worker-thread job.
   */
  async updateRanges(memory: GuestMemory, ranges: readonly Range[], options: StreamOptions | null = {}): Promise<StreamResult> {
    const command = 'LAUNCH_UPDATE_DATA';
    options ??= {};
    checkMemory(command, memory);
    validateRanges(command, ranges, memory.size);
    const chunks = planChunks(ranges, this.chunkSize(command, options.chunkSize));
    const total = chunks.reduce((n, c) => n + c.length, 0);
    return this.ctx.step(this, command, async () => {
      const prefix = prefixSums(chunks);
      const r = await this.ctx.vm.launchUpdateDataBatch(this.ctx.platform, memory, chunks, {
        signal: options.signal,
        onProgress: options.onProgress
          ? (completed) => options.onProgress!({ bytesDone: prefix[completed], bytesTotal: total, chunksDone: completed, chunksTotal: chunks.length })
          : undefined,
      });
      if (r.cancelled) throw aborted(command, prefix[r.completed]);
      return { bytes: total, chunks: chunks.length };
    });
  }

  /**
   * Streams a file into guest memory and measures it: reading chunk k+1 (pread on a worker
   * thread, straight into guest memory) overlaps the firmware's work on chunk k, so the stream
   * costs about max(read, measure), not their sum. No copy beyond file → guest memory.
   */
  async streamFile(memory: GuestMemory, file: string | number, options: StreamFileOptions): Promise<StreamResult> {
    const command = 'LAUNCH_UPDATE_DATA';
    checkMemory(command, memory);
    if (typeof options !== 'object' || options === null) {
      throw new SevArgumentError(command, 'expected options with at least { offset } (where in guest memory the file goes)');
    }
    const { fileOffset, length } = fileRange(command, file, options.fileOffset, options.length);
    const padded = Math.ceil(length / UPDATE_ALIGNMENT) * UPDATE_ALIGNMENT;
    validateRanges(command, [{ offset: options.offset, length: padded }], memory.size);
    const chunks = planChunks([{ offset: options.offset, length: padded }], this.chunkSize(command, options.chunkSize));
    return this.ctx.step(this, command, async () => {
      // The tail beyond the file's end is measured as zeros: clear it first.
      if (padded > length) memory.bytes(options.offset + length, padded - length).fill(0);
      const fd = typeof file === 'number' ? file : fs.openSync(file, 'r'); // once, not per chunk
      try {
        return await this.pipeline(memory, fd, fileOffset, options, length, padded, chunks);
      } finally {
        if (typeof file !== 'number') fs.closeSync(fd);
      }
    });
  }

  /** Reads chunk k+1 into guest memory while the firmware measures chunk k. */
  private async pipeline(
    memory: GuestMemory,
    fd: number,
    fileOffset: number,
    options: StreamFileOptions,
    length: number,
    padded: number,
    chunks: Range[],
  ): Promise<StreamResult> {
    const readChunk = (i: number) => {
      const c = chunks[i];
      const inFile = Math.max(0, Math.min(c.length, options.offset + length - c.offset));
      return inFile === 0
        ? Promise.resolve(0)
        : memory.readFile(fd, { offset: c.offset, fileOffset: fileOffset + (c.offset - options.offset), length: inFile });
    };
    await pipelineChunks('LAUNCH_UPDATE_DATA', chunks, readChunk,
      (i) => this.ctx.vm.launchUpdateData(this.ctx.platform, memory, chunks[i].offset, chunks[i].length),
      (i, done) => options.onProgress?.({ bytesDone: done, bytesTotal: padded, chunksDone: i + 1, chunksTotal: chunks.length }),
      options.signal);
    return { bytes: padded, chunks: chunks.length };
  }

  /** LAUNCH_UPDATE_VMSA (SEV-ES): encrypt and measure every vCPU's initial register state. */
  updateVmsa(): Promise<void> {
    if (this.ctx.mode !== 'sev-es') {
      return Promise.reject(new SevArgumentError('LAUNCH_UPDATE_VMSA', 'only SEV-ES guests have encrypted register state'));
    }
    if (this.ctx.vm.vcpus.length === 0) {
      return Promise.reject(new SevArgumentError('LAUNCH_UPDATE_VMSA', 'create the vCPUs (and set their registers) first'));
    }
    return this.ctx.step(this, 'LAUNCH_UPDATE_VMSA', () => this.ctx.vm.launchUpdateVmsa(this.ctx.platform));
  }

  /** LAUNCH_MEASURE: ends the update phase; returns the measurement for the guest owner. */
  async measure(): Promise<LaunchMeasured> {
    return this.ctx.step(this, 'LAUNCH_MEASURE', async () => {
      const blob = await this.ctx.vm.launchMeasure(this.ctx.platform);
      const next = new LaunchMeasured(this.ctx, this.handle, this.policy, blob);
      this.ctx.advance(this, next);
      return next;
    });
  }

  /** GUEST_STATUS. */
  status(): Promise<SevGuestStatus> {
    return this.ctx.vm.guestStatus(this.ctx.platform);
  }

  private chunkSize(command: string, requested?: number): number {
    const chunk = requested ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(chunk) || chunk < 4096 || chunk % 4096) {
      throw new SevArgumentError(command, 'chunkSize must be a positive multiple of 4096');
    }
    // Each LAUNCH_UPDATE_DATA pins its pages on top of any registered region.
    const room = pinnableBytes(memlockInfo(), this.ctx.vm.encryptedRegions.reduce((n, r) => n + r.size, 0));
    if (room < 4096) {
      throw new SevError(
        `${command}: RLIMIT_MEMLOCK leaves no room to pin guest pages (limit ${memlockInfo().limit} bytes, ` +
          'already pinned by registered regions); raise it (ulimit -l) or grant CAP_IPC_LOCK',
        { command, errno: 12 },
      );
    }
    return Math.min(chunk, Math.floor(room / 4096) * 4096);
  }
}

export class LaunchMeasured {
  /** The measurement (HMAC-SHA256 under the TIK) and the firmware's nonce. */
  readonly measurement: Buffer;
  readonly mnonce: Buffer;

  constructor(
    private readonly ctx: LaunchContext,
    readonly handle: number,
    readonly policy: Policy,
    /** The LAUNCH_MEASURE blob as sevctl/QEMU report it: measurement ‖ mnonce. */
    readonly blob: Buffer,
  ) {
    const m = parseLaunchMeasure(blob);
    this.measurement = m.measurement;
    this.mnonce = m.mnonce;
  }

  /**
   * LAUNCH_SECRET: the firmware checks the packet's MAC over this launch's measurement,
   * decrypts it with the TEK and writes it into guest memory at `guestOffset`.
   */
  injectSecret(options: { header: Uint8Array; ciphertext: Uint8Array; memory: GuestMemory; guestOffset: number }): Promise<void> {
    return this.ctx.step(this, 'LAUNCH_SECRET', () =>
      this.ctx.vm.launchSecret(this.ctx.platform, {
        header: options.header,
        transport: options.ciphertext,
        memory: options.memory,
        guestOffset: options.guestOffset,
      }),
    );
  }

  /** LAUNCH_FINISH: the guest may run. */
  async finish(): Promise<LaunchFinished> {
    return this.ctx.step(this, 'LAUNCH_FINISH', async () => {
      await this.ctx.vm.launchFinish(this.ctx.platform);
      const next = new LaunchFinished(this.ctx, this.handle, this.policy);
      this.ctx.advance(this, next);
      return next;
    });
  }

  status(): Promise<SevGuestStatus> {
    return this.ctx.vm.guestStatus(this.ctx.platform);
  }
}

export class LaunchFinished {
  constructor(
    private readonly ctx: LaunchContext,
    readonly handle: number,
    readonly policy: Policy,
  ) {}

  status(): Promise<SevGuestStatus> {
    return this.ctx.vm.guestStatus(this.ctx.platform);
  }

  /** GET_ATTESTATION_REPORT (SEV, firmware API ≥ 0.23) for a verifier's 16-byte nonce. */
  attestationReport(mnonce: Uint8Array): Promise<Buffer> {
    return this.ctx.vm.getAttestationReport(this.ctx.platform, mnonce);
  }
}

function checkMemory(command: string, memory: unknown): asserts memory is GuestMemory {
  if (!(memory instanceof GuestMemory)) throw new SevArgumentError(command, 'expected a GuestMemory');
}

function prefixSums(chunks: readonly Range[]): number[] {
  const sums = [0];
  for (const c of chunks) sums.push(sums[sums.length - 1] + c.length);
  return sums;
}
