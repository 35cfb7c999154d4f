// The SEV-SNP launch digest (SNP ABI spec 56860, SNP_LAUNCH_UPDATE and "PAGE_INFO"): the
// firmware keeps a SHA-384 digest in the guest context and, for every page added at launch,
// replaces it with SHA-384 of this 0x70-byte PAGE_INFO structure:
//   0x00 current digest [48]
//   0x30 contents [48]    SHA-384 of the page for NORMAL and VMSA pages, zeros otherwise
//   0x60 u16 length 0x70
//   0x62 u8 page type     (PAGE_TYPES below)
//   0x63 u8 IMI page      0: pages added by the VMM at launch
//   0x64 u8 VMPL3, VMPL2, VMPL1 permissions, then a reserved byte: all 0 at launch
//   0x68 u64 GPA
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';

// Typed here: @types/node 20 predates crypto.hash.
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;

import { SevArgumentError } from '../errors';

export const LAUNCH_DIGEST_SIZE = 48;
export const PAGE_SIZE = 4096;
const PAGE_INFO_SIZE = 0x70;

/** SNP_LAUNCH_UPDATE page types, in code order: NORMAL is 1 ... CPUID is 6. */
export const PAGE_TYPES = ['normal', 'vmsa', 'zero', 'unmeasured', 'secrets', 'cpuid'] as const;
export type PageType = (typeof PAGE_TYPES)[number];

/**
 * The GPA a VMSA page is measured at: the RMP records it at GPA -1, page aligned and cut to
 * the 52-bit physical address width.
 */
export const VMSA_GPA = 0xfffffffff000;

/**
 * SHA-384 of `data`. A launch digest takes two hashes per 4 KiB page, so the per-call cost counts:
 * Node's one-shot crypto.hash (20.12+) skips the Hash object createHash builds and frees.
 */
export const sha384: (data: Uint8Array) => Buffer =
  typeof oneShotHash === 'function'
    ? (data) => oneShotHash('sha384', data, 'buffer') as unknown as Buffer
    : (data) => createHash('sha384').update(data).digest();

/** One measured step, for callers that want to show how a digest came about. */
export interface GctxStep {
  type: PageType;
  gpa: number;
  /** The contents field of PAGE_INFO (a page's SHA-384, or zeros). */
  contents: Buffer;
  /** The launch digest after this step. */
  digest: Buffer;
}

/** The guest context's launch digest, updated page by page as the firmware does. */
export class Gctx {
  private ld: Buffer;
  /** Every update in order, when recording was asked for. */
  readonly steps: GctxStep[] | undefined;

  /** Starts from zeros, or from `seed` (a precomputed digest, e.g. the OVMF hash). */
  constructor(seed?: Uint8Array, options: { record?: boolean } = {}) {
    if (seed !== undefined && seed.length !== LAUNCH_DIGEST_SIZE) {
      throw new SevArgumentError('measurement', `a launch digest is ${LAUNCH_DIGEST_SIZE} bytes, got ${seed.length}`);
    }
    this.ld = seed ? Buffer.from(seed) : Buffer.alloc(LAUNCH_DIGEST_SIZE);
    this.steps = options.record ? [] : undefined;
  }

  /** The current launch digest (a copy). */
  digest(): Buffer {
    return Buffer.from(this.ld);
  }

  /** PAGE_INFO, reused: only the digests, the type and the GPA change from page to page. */
  private readonly info = Buffer.alloc(PAGE_INFO_SIZE);

  private update(type: PageType, gpa: number, contents: Buffer): void {
    const info = this.info;
    this.ld.copy(info, 0);
    contents.copy(info, 0x30);
    info.writeUInt16LE(PAGE_INFO_SIZE, 0x60);
    info[0x62] = PAGE_TYPES.indexOf(type) + 1;
    // GPAs stay below 2^52 (VMSA_GPA): two 32-bit halves, no BigInt per page.
    info.writeUInt32LE(gpa % 0x100000000, 0x68);
    info.writeUInt32LE(Math.floor(gpa / 0x100000000), 0x6c);
    this.ld = sha384(info);
    this.steps?.push({ type, gpa, contents, digest: this.ld });
  }

  /** NORMAL pages: `data` (a whole number of pages) measured page by page from `gpa`. */
  updateNormalPages(gpa: number, data: Uint8Array): void {
    requirePages('data', data.length);
    for (let off = 0; off < data.length; off += PAGE_SIZE) {
      this.update('normal', gpa + off, sha384(data.subarray(off, off + PAGE_SIZE)));
    }
  }

  /** One VMSA page, at VMSA_GPA. */
  updateVmsaPage(page: Uint8Array): void {
    if (page.length !== PAGE_SIZE) throw new SevArgumentError('measurement', `a VMSA page is ${PAGE_SIZE} bytes, got ${page.length}`);
    this.update('vmsa', VMSA_GPA, sha384(page));
  }

  /** Pages whose contents the firmware does not hash (ZERO, UNMEASURED, SECRETS, CPUID). */
  updateEmptyPages(type: Exclude<PageType, 'normal' | 'vmsa'>, gpa: number, length = PAGE_SIZE): void {
    requirePages('length', length);
    for (let off = 0; off < length; off += PAGE_SIZE) this.update(type, gpa + off, Buffer.alloc(LAUNCH_DIGEST_SIZE));
  }
}

function requirePages(what: string, length: number): void {
  if (length % PAGE_SIZE !== 0) {
    throw new SevArgumentError('measurement', `${what} must be a multiple of ${PAGE_SIZE} bytes, got ${length}`);
  }
}
