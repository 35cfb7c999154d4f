// The SEV-SNP launch as a typed sequence (as virtee/sev's launch::snp and QEMU's sev-snp-guest):
//   SnpLaunch.init(vm, platform, options)   KVM_SEV_INIT2 on a KVM_X86_SNP_VM (+ ENABLE_REQ_CERTS)
//     .start({ policy, gosvw? })                        → SnpLaunchStarted  (SNP_LAUNCH_START)
//   SnpLaunchStarted: update / streamFile               (SNP_LAUNCH_UPDATE, any page type)
//     .finish({ idBlock?, idAuth?, hostData?, ... })    → SnpLaunchFinished (SNP_LAUNCH_FINISH)
// An SNP guest's memory is private: each launched range lies in a memslot with a guest_memfd and
// has been made private (Vm#setMemoryAttributes) first. The pages' contents come from the VMM's
// own memory (usually the slot's shared mapping, where QEMU loads its images); the kernel copies
// them into guest_memfd, assigns them to the guest and the firmware measures them. FINISH
// measures every vCPU's register state as its VMSA, so set the registers before it.
import * as fs from 'node:fs';

import { SevArgumentError } from '../errors';
import { GuestMemory, Vm } from '../kvm';
import type { SnpLaunchFinishOptions, SnpLaunchUpdateOptions } from '../kvm/vm';
import type { SevPlatform } from '../platform';
import { aborted, fileRange, LaunchContext, pipelineChunks, type StreamOptions, type StreamResult } from './launcher';

const PAGE = 4096;
const DEFAULT_CHUNK = 8 << 20;

export interface SnpLaunchInitOptions {
  /** SEV_FEATURES beyond SNP_ACTIVE (KVM_X86_SEV_VMSA_FEATURES bits), default 0. */
  vmsaFeatures?: number | bigint;
  /** GHCB protocol version (SNP needs 2, the default). */
  ghcbVersion?: number;
  /** KVM_SEV_SNP_ENABLE_REQ_CERTS: the guest's certificate requests exit to this VMM. */
  requestCertificates?: boolean;
}

export interface SnpUpdateOptions extends SnpLaunchUpdateOptions {
  /** Called after every KVM_SEV_SNP_LAUNCH_UPDATE with the pages done so far. */
  onProgress?: (pagesDone: number, pagesTotal: number) => void;
  /** Stops between ioctls; the launch stays started. */
  signal?: AbortSignal;
}

export interface SnpStreamFileOptions extends StreamOptions {
  /** Guest-physical address the file's first page is launched at (page-aligned). */
  guestPhysAddr: number;
  /** Where the file is read to first: the VMM's memory and a page-aligned offset in it. */
  memory: GuestMemory;
  memoryOffset: number;
  /** Offset in the file (default 0). */
  fileOffset?: number;
  /** Bytes to stream (default: the rest of the file), rounded up to pages with zeros. */
  length?: number;
}

export class SnpLaunch {
  private readonly ctx: LaunchContext;

  private constructor(ctx: LaunchContext) {
    this.ctx = ctx;
    ctx.current = this;
  }

  /** Makes `vm` (created with type 'snp') an SNP guest on `platform`'s firmware: KVM_SEV_INIT2. */
  static async init(vm: Vm, platform: SevPlatform, options: SnpLaunchInitOptions | null = {}): Promise<SnpLaunch> {
    const command = 'KVM_SEV_INIT2';
    if (!(vm instanceof Vm)) throw new SevArgumentError(command, 'expected a Vm (Kvm#createVm({ type: "snp" }))');
    if (typeof platform !== 'object' || platform === null || !('fd' in platform)) {
      throw new SevArgumentError(command, 'expected an open SevPlatform');
    }
    if (vm.typeName !== 'snp') throw new SevArgumentError(command, `an SNP launch needs a VM of type snp, got ${vm.typeName}`);
    if (vm.vcpus.length > 0) {
      throw new SevArgumentError(command, 'initialise SNP before creating vCPUs (the kernel refuses it once vCPUs exist)');
    }
    options ??= {};
    await vm.sevInit2(platform, { vmsaFeatures: options.vmsaFeatures ?? 0, ghcbVersion: options.ghcbVersion ?? 2 });
    if (options.requestCertificates) await vm.snpEnableReqCerts(platform);
    return new SnpLaunch(new LaunchContext(vm, platform, 'snp'));
  }

  /** SNP_LAUNCH_START under `policy` (64-bit; bit 17 set, e.g. 0x30000). */
  async start(options: { policy: number | bigint; gosvw?: Uint8Array }): Promise<SnpLaunchStarted> {
    if (typeof options !== 'object' || options === null) throw new SevArgumentError('SNP_LAUNCH_START', 'expected { policy, gosvw? }');
    return this.ctx.step(this, 'SNP_LAUNCH_START', async () => {
      await this.ctx.vm.snpLaunchStart(this.ctx.platform, { policy: options.policy, gosvw: options.gosvw });
      const next = new SnpLaunchStarted(this.ctx, BigInt(options.policy));
      this.ctx.advance(this, next);
      return next;
    });
  }
}

export class SnpLaunchStarted {
  constructor(
    private readonly ctx: LaunchContext,
    readonly policy: bigint,
  ) {}

  /**
   * SNP_LAUNCH_UPDATE of [guestPhysAddr, +length) with pages of one type, repeated until the
   * kernel has done all of it (it may stop early, e.g. at a memslot's end). Resolves with the
   * number of pages and ioctls.
   */
  update(options: SnpUpdateOptions): Promise<{ pages: number; calls: number }> {
    return this.ctx.step(this, 'SNP_LAUNCH_UPDATE', () => this.updateLoop(options));
  }

  private async updateLoop(options: SnpUpdateOptions): Promise<{ pages: number; calls: number }> {
    const command = 'SNP_LAUNCH_UPDATE';
    if (typeof options !== 'object' || options === null) throw new SevArgumentError(command, 'expected { guestPhysAddr, length, type, source? }');
    const total = Math.floor(options.length / PAGE);
    let rest = { guestPhysAddr: options.guestPhysAddr, length: options.length, sourceOffset: options.source?.offset ?? 0 };
    let calls = 0;
    while (rest.length > 0) {
      if (options.signal?.aborted) throw aborted(command, options.length - rest.length);
      const r = await this.ctx.vm.snpLaunchUpdate(this.ctx.platform, {
        guestPhysAddr: rest.guestPhysAddr,
        length: rest.length,
        type: options.type,
        source: options.source ? { memory: options.source.memory, offset: rest.sourceOffset } : undefined,
        flags: options.flags,
      });
      calls++;
      rest = r;
      options.onProgress?.(total - rest.length / PAGE, total);
    }
    return { pages: total, calls };
  }

  /**
   * Streams a file into the guest as measured (NORMAL) pages: each chunk is read into `memory`
   * (pread on a worker thread) while the previous chunk is being launched, so the stream costs
   * about max(read, launch). The tail past the file's end is launched as zeros.
   */
  async streamFile(file: string | number, options: SnpStreamFileOptions): Promise<StreamResult> {
    const command = 'SNP_LAUNCH_UPDATE';
    if (typeof options !== 'object' || options === null) {
      throw new SevArgumentError(command, 'expected { guestPhysAddr, memory, memoryOffset, ... }');
    }
    if (!(options.memory instanceof GuestMemory)) throw new SevArgumentError(command, 'memory must be a GuestMemory');
    const { fileOffset, length } = fileRange(command, file, options.fileOffset, options.length);
    const padded = Math.ceil(length / PAGE) * PAGE;
    const chunk = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(chunk) || chunk < PAGE || chunk % PAGE) throw new SevArgumentError(command, 'chunkSize must be a positive multiple of 4096');
    if (!Number.isSafeInteger(options.memoryOffset) || options.memoryOffset % PAGE || options.memoryOffset + padded > options.memory.size) {
      throw new SevArgumentError(command, `memoryOffset 0x${Number(options.memoryOffset).toString(16)}+0x${padded.toString(16)} must be page-aligned and inside memory`);
    }
    if (!Number.isSafeInteger(options.guestPhysAddr) || options.guestPhysAddr % PAGE) {
      throw new SevArgumentError(command, 'guestPhysAddr must be a page-aligned integer');
    }
    return this.ctx.step(this, command, async () => {
      const memory = options.memory;
      if (padded > length) memory.bytes(options.memoryOffset + length, padded - length).fill(0);
      const fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
      const chunks: Array<{ at: number; length: number }> = [];
      for (let at = 0; at < padded; at += chunk) chunks.push({ at, length: Math.min(chunk, padded - at) });
      const read = (i: number) => {
        const c = chunks[i];
        const inFile = Math.max(0, Math.min(c.length, length - c.at));
        return inFile === 0 ? Promise.resolve(0) : memory.readFile(fd, { offset: options.memoryOffset + c.at, fileOffset: fileOffset + c.at, length: inFile });
      };
      const launch = (i: number) => this.updateLoop({
        guestPhysAddr: options.guestPhysAddr + chunks[i].at,
        length: chunks[i].length,
        type: 'normal',
        source: { memory, offset: options.memoryOffset + chunks[i].at },
      });
      try {
        await pipelineChunks(command, chunks, read, launch,
          (i, done) => options.onProgress?.({ bytesDone: done, bytesTotal: padded, chunksDone: i + 1, chunksTotal: chunks.length }),
          options.signal);
        return { bytes: padded, chunks: chunks.length };
      } finally {
        if (typeof file !== 'number') fs.closeSync(fd);
      }
    });
  }

  /**
   * SNP_LAUNCH_FINISH: every vCPU's registers are measured as its VMSA (and protected from then
   * on), then the launch ends. With an ID block the firmware first checks its signatures, that
   * its launch digest is this launch's (BAD_MEASUREMENT) and its policy this guest's.
   */
  async finish(options: SnpLaunchFinishOptions = {}): Promise<SnpLaunchFinished> {
    if (this.ctx.vm.vcpus.length === 0) {
      throw new SevArgumentError('SNP_LAUNCH_FINISH', 'create the vCPUs (and set their registers) first: FINISH measures them');
    }
    return this.ctx.step(this, 'SNP_LAUNCH_FINISH', async () => {
      await this.ctx.vm.snpLaunchFinish(this.ctx.platform, options);
      const next = new SnpLaunchFinished(this.policy);
      this.ctx.advance(this, next);
      return next;
    });
  }
}

export class SnpLaunchFinished {
  constructor(readonly policy: bigint) {}
}
