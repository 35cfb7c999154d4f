// GuestMemory: guest RAM as one anonymous mmap owned by native code, seen from JS as an
// ArrayBuffer over the very same pages (no copies in either direction).
//
// Lifetime: the mapping is refcounted in native code. This object, its ArrayBuffer, every Vm
// memslot or encrypted region that uses it and every in-flight worker job (readFile, LAUNCH_*)
// each hold a reference; the pages are unmapped only when the last one lets go. So dropping every
// JS reference while a VM still uses the memory is safe (the VM keeps it), and `release()` frees it
// deterministically (detaching the ArrayBuffer) without waiting for GC.
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';

import { SevArgumentError, SevClosedError, SevError } from '../errors';
import { call, check, type Flow, runAsync, runSync } from '../flow';
import { HUGE_PAGE_SIZE, PAGE_SIZE } from './constants';
import { kvmNative, type NativeGuestMemory } from './native';
import { aligned, describe, inside, integer } from './validate';

/** How guest memory is backed. */
export type HugePages =
  /** Normal 4 KiB pages. */
  | 'none'
  /** madvise(MADV_HUGEPAGE): transparent huge pages where the kernel can provide them. */
  | 'transparent'
  /** MAP_HUGETLB: pre-reserved 2 MiB hugetlbfs pages (size must be a multiple of 2 MiB). */
  | 'hugetlb';

export interface GuestMemoryOptions {
  /** Default 'none'. */
  hugePages?: HugePages;
}

export interface ReadFileOptions {
  /** Where in guest memory the data goes (default 0). */
  offset?: number;
  /** Where in the file to start (default 0). */
  fileOffset?: number;
  /** Bytes to read (default: the rest of the file from fileOffset). */
  length?: number;
}

/**
 * One GuestMemory is one ArrayBuffer over the mapping, so it is bounded by the largest ArrayBuffer
 * this Node accepts (4 GiB on Node 20); larger guests use several GuestMemory regions, one memslot
 * each (as VMMs split RAM below and above 4 GiB anyway).
 */
export const MAX_GUEST_MEMORY = Math.min(2 ** 46, bufferConstants.MAX_LENGTH - (bufferConstants.MAX_LENGTH % HUGE_PAGE_SIZE));

export class GuestMemory {
  /** Size in bytes (a multiple of the page size). */
  readonly size: number;
  readonly hugePages: HugePages;
  /** @internal */
  readonly native: NativeGuestMemory;

  private constructor(nativeMemory: NativeGuestMemory, hugePages: HugePages) {
    this.native = nativeMemory;
    this.size = nativeMemory.size;
    this.hugePages = hugePages;
  }

  /**
   * Maps `size` bytes of zeroed anonymous memory (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
   * MADV_DONTFORK). `size` must be a non-zero multiple of 4 KiB (2 MiB with `hugetlb`).
   */
  static create(size: number, options: GuestMemoryOptions | null = {}): GuestMemory {
    const command = 'GuestMemory.create';
    const hugePages = options?.hugePages ?? 'none';
    if (!['none', 'transparent', 'hugetlb'].includes(hugePages)) {
      throw new SevArgumentError(command, `hugePages must be 'none', 'transparent' or 'hugetlb', got ${describe(hugePages)}`);
    }
    if (typeof size === 'number' && size > MAX_GUEST_MEMORY) {
      throw new SevArgumentError(command, `size ${size} exceeds ${MAX_GUEST_MEMORY} bytes, the largest ArrayBuffer this Node allows; split guest RAM into several GuestMemory regions (one memslot each)`);
    }
    integer(command, 'size', size, 1, MAX_GUEST_MEMORY);
    aligned(command, 'size', size, hugePages === 'hugetlb' ? HUGE_PAGE_SIZE : PAGE_SIZE);
    try {
      return new GuestMemory(new kvmNative.GuestMemory(size, hugePages === 'hugetlb', hugePages === 'transparent'), hugePages);
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno !== 'number') throw e;
      const hint = hugePages === 'hugetlb' ? ' (are hugetlbfs pages reserved? see /proc/sys/vm/nr_hugepages)' : '';
      const err = SevError.fromIoctl('mmap', errno, 0);
      throw new SevError(`${err.message}: cannot map ${size} bytes of guest memory${hint}`, { command: 'mmap', errno });
    }
  }

  /** True after release(). */
  get released(): boolean {
    return this.native.released;
  }

  /** Host virtual address of the mapping (diagnostics). */
  get address(): bigint {
    return this.native.address;
  }

  /** The memory itself as an ArrayBuffer (the same object every time; writes reach the guest). */
  get buffer(): ArrayBuffer {
    const b = this.native.buffer;
    if (b === undefined || this.native.released) throw new SevClosedError('GuestMemory.buffer', 'GuestMemory');
    return b;
  }

  /** A Uint8Array view of [offset, offset + length) — no copy. */
  bytes(offset = 0, length = this.size - offset): Uint8Array {
    this.check('GuestMemory.bytes', offset, length);
    return new Uint8Array(this.buffer, offset, length);
  }

  /** A Buffer view of [offset, offset + length) — no copy. */
  view(offset = 0, length = this.size - offset): Buffer {
    this.check('GuestMemory.view', offset, length);
    return Buffer.from(this.buffer, offset, length);
  }

  /**
   * Reads a file (path, or an open fd that stays open) straight into guest memory with pread(2)
   * on a worker thread: no intermediate buffer, the event loop stays free. Resolves with the
   * number of bytes read (less than asked only if the file ends first).
   */
  readFile(file: string | number, options: ReadFileOptions | null = {}): Promise<number> {
    return runAsync(this.readFileFlow(file, options ?? {}));
  }
  /** readFile on the calling thread. */
  readFileSync(file: string | number, options: ReadFileOptions | null = {}): number {
    return runSync(this.readFileFlow(file, options ?? {}));
  }
  private *readFileFlow(file: string | number, options: ReadFileOptions): Flow<number> {
    const command = 'GuestMemory.readFile';
    this.live(command);
    const offset = integer(command, 'offset', options.offset ?? 0);
    const fileOffset = integer(command, 'fileOffset', options.fileOffset ?? 0);
    if (typeof file !== 'string' && typeof file !== 'number') {
      throw new SevArgumentError(command, `file must be a path or an fd, got ${describe(file)}`);
    }
    if (typeof file === 'number') integer(command, 'fd', file, 0, 0x7fffffff);
    // Sync open/fstat/close: cheap metadata calls; the bulk read is the worker's pread loop.
    let fd: number;
    try {
      fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
    } catch (e) {
      throw new SevError(`${command}: ${(e as Error).message}`, {
        command,
        errno: Math.abs((e as NodeJS.ErrnoException).errno ?? 0),
        cause: e,
      });
    }
    try {
      let length = options.length;
      if (length === undefined) {
        try {
          length = Math.max(0, fs.fstatSync(fd).size - fileOffset);
        } catch (e) {
          throw new SevError(`${command}: ${(e as Error).message}`, { command, errno: Math.abs((e as NodeJS.ErrnoException).errno ?? 0), cause: e });
        }
      }
      integer(command, 'length', length);
      inside(command, 'range', offset, length, this.size);
      const mem = this.native;
      const r = yield* call((a) => mem.readFile(fd, fileOffset, offset, length as number, a));
      return check('pread', r).bytesRead;
    } finally {
      if (typeof file === 'string') fs.closeSync(fd);
    }
  }

  /**
   * Gives up this object's hold on the memory now: the ArrayBuffer is detached (every view of it
   * becomes empty) and the pages are unmapped once no VM memslot, encrypted region or in-flight
   * job uses them. Idempotent.
   */
  release(): void {
    this.native.release();
  }

  /** @internal Throws SevClosedError when released. */
  live(command: string): NativeGuestMemory {
    if (this.native.released) throw new SevClosedError(command, 'GuestMemory');
    return this.native;
  }

  /** @internal Validates a byte range of this memory. */
  check(command: string, offset: number, length: number): void {
    this.live(command);
    integer(command, 'offset', offset);
    integer(command, 'length', length);
    inside(command, 'range', offset, length, this.size);
  }
}
