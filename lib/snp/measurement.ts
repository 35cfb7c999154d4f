// The launch digest a guest's report carries, computed from its images as sev-snp-measure
// computes it, for every mode:
//   sev, seves  SHA-256 over OVMF ‖ SEV hashes table ‖ VMSAs (lib/owner/launch-digest.ts);
//   snp         the SNP GCTX chain (gctx.ts): the OVMF pages (or a precomputed OVMF hash as the
//               seed), then each OVMF SEV metadata section, then one VMSA page per vCPU;
//   snp-svsm    COCONUT-SVSM below OVMF: OVMF pages, SVSM pages, the SVSM's metadata sections,
//               then the SVSM VMSAs.
// Metadata sections (QEMU target/i386/sev.c, snp_launch_update_data and friends):
//   SNP_SEC_MEMORY    zero pages (GCE: unmeasured pages)
//   SNP_SECRETS       one secrets page
//   CPUID             one CPUID page (EC2 adds its CPUID pages after all other sections)
//   SVSM_CAA          zero pages
//   SNP_KERNEL_HASHES the page with the SEV hashes table at the offset OVMF's hashes-table GPA
//                     has within its page (measured direct boot), else zero pages
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

import { fileErrorText, SevArgumentError } from '../errors';
import type { DigestInput } from '../owner/file-digest';
import { MAX_VCPUS, measuredData } from '../owner/launch-digest';
import { OvmfImage } from '../owner/ovmf';
import { buildSevHashesTable, checkSevHashesSupport, type KernelBootInputs } from '../owner/sev-hashes';
import { cpuidSignature, cpuTypeSignature } from '../owner/vmsa-builder';
import { Gctx, LAUNCH_DIGEST_SIZE, PAGE_SIZE, type GctxStep, type PageType } from './gctx';
import { snpVmsaPages, svsmEntry, svsmVmsaPages, type SnpVmmType } from './vmsa';

export type MeasurementMode = 'sev' | 'seves' | 'snp' | 'snp-svsm';


/** sev-snp-measure's inputs, as bytes rather than paths. */
export interface LaunchDigestOptions {
  mode: MeasurementMode;
  ovmf: Uint8Array | OvmfImage;
  /** vCPU count (not used for sev). */
  vcpus?: number;
  /** The vCPU's CPUID signature, from one of: a type name (EPYC-v4, EpycV4, EPYC-Turin...), */
  vcpuType?: string;
  /** the signature itself, */
  vcpuSig?: number;
  /** or family, model and stepping (family at most 270). */
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  /**
   * Measured direct boot: giving a kernel (even empty) measures the hashes of all three. Only
   * their SHA-256 is measured: bytes, or a FileDigest (digestFile: streamed, bounded memory).
   */
  kernel?: DigestInput;
  initrd?: DigestInput;
  append?: string;
  /** Hash the command line with its terminating NUL, as QEMU does (default true). */
  appendNul?: boolean;
  /** SNP SEV_FEATURES of the VMSAs (default 0x1, SNP active). */
  guestFeatures?: bigint | number;
  /** A precomputed OVMF hash (48 bytes or 96 hex digits): the chain starts from it (snp only). */
  ovmfHash?: Uint8Array | string;
  /** Default 'qemu'. */
  vmmType?: SnpVmmType;
  /** RDX of EC2 vCPUs: 0x600 (default, sev-snp-measure since 2026-04) or 0 (virtee/sev, older EC2). */
  ec2Rdx?: number;
  /** FPU state as KVM_SEV_INIT2 sets it (MXCSR 0x1F80, FCW 0x37F); default on for QEMU only. */
  x87Init?: boolean;
  /** snp-svsm: the COCONUT-SVSM image, and the size of OVMF's variable store below OVMF... */
  svsm?: Uint8Array | OvmfImage;
  varsSize?: number;
  /** ...or the variable store file, whose size is used. */
  varsFile?: string;
}

const toOvmf = (image: Uint8Array | OvmfImage) => (image instanceof OvmfImage ? image : OvmfImage.parse(image));

/** One thing the launch measured, in order: an image, a metadata section, a table, a VMSA. */
export interface MeasuredPart {
  /** 'OVMF', 'OVMF hash', 'SVSM', a metadata section type ('SNP_SEC_MEMORY' ...), 'SEV hashes table', 'VMSA'. */
  what: string;
  /** Which one or why: 'vCPU 0 (BSP)', 'kernel hashes page', 'zero pages (no kernel)' ... */
  detail?: string;
  /** SNP: the SNP_LAUNCH_UPDATE page type of its pages. */
  pageType?: PageType;
  /** SNP: the GPA of its first page (VMSA pages: VMSA_GPA). */
  gpa?: number;
  /** Bytes measured (SNP: pages × 4096). */
  size: number;
  /** SEV/SEV-ES: SHA-256 of this part's bytes. (SNP: see each page's `contents`.) */
  sha256?: Buffer;
  /** SNP: every page's PAGE_INFO step (contents digest and the launch digest after it). */
  pages?: GctxStep[];
  /** The launch digest after this part (SEV/SEV-ES: SHA-256 of everything measured so far). */
  digest: Buffer;
}

/** How a launch digest came about: its parts in the order they were measured. */
export interface LaunchDigestTrace {
  mode: MeasurementMode;
  /** sha256 (SEV, SEV-ES: one hash over the concatenated parts) or sha384 (SNP: the GCTX chain). */
  algorithm: 'sha256' | 'sha384';
  digest: Buffer;
  parts: MeasuredPart[];
}

/**
 * The launch digest: 32 bytes (SHA-256) for sev/seves, 48 (SHA-384 GCTX) for snp/snp-svsm.
 * Throws SevArgumentError for missing or inconsistent inputs.
 */
export function calcLaunchDigest(o: LaunchDigestOptions): Buffer {
  return measure(o, undefined);
}

/** calcLaunchDigest, recording every measured part with its digests (the same computation). */
export function traceLaunchDigest(o: LaunchDigestOptions): LaunchDigestTrace {
  const parts: MeasuredPart[] = [];
  const digest = measure(o, parts);
  return { mode: o.mode, algorithm: o.mode === 'sev' || o.mode === 'seves' ? 'sha256' : 'sha384', digest, parts };
}

function measure(o: LaunchDigestOptions, parts: MeasuredPart[] | undefined): Buffer {
  if (o.ovmfHash !== undefined && o.mode !== 'snp') throw new SevArgumentError('measurement', 'a precomputed OVMF hash only works with mode snp');
  const ovmf = toOvmf(o.ovmf);
  switch (o.mode) {
    case 'sev':
      return sevDigest(ovmf, kernelBoot(o), undefined, parts);
    case 'seves': {
      const boot = kernelBoot(o);
      if (boot) checkSevHashesSupport(ovmf); // before the vCPU inputs, as sev-snp-measure reports it
      const pages = snpVmsaPages({ vcpus: vcpuCount(o), vmm: o.vmmType ?? 'qemu', signature: vcpuSignature(o), sevFeatures: 0, firmware: ovmf, ec2Rdx: o.ec2Rdx, x87Init: o.x87Init });
      return sevDigest(ovmf, boot, pages, parts);
    }
    case 'snp':
      return snpLaunchDigest(o, ovmf, parts);
    case 'snp-svsm':
      return svsmLaunchDigest(o, ovmf, parts);
    default:
      throw new SevArgumentError('measurement', `unknown mode '${(o as { mode: unknown }).mode}' (sev, seves, snp, snp-svsm)`);
  }
}

/**
 * SEV / SEV-ES: SHA-256 over what lib/owner's launch digest measures (OVMF, the hashes table,
 * vCPU 0's VMSA, then `count - 1` copies of the AP page), part by part when tracing.
 */
function sevDigest(ovmf: OvmfImage, boot: KernelBootInputs | undefined, vmsas: Buffer[] | undefined, parts: MeasuredPart[] | undefined): Buffer {
  const chunks = measuredData({ firmware: ovmf, kernelBoot: boot, vcpus: vmsas && { count: vmsas.length, bsp: vmsas[0], ap: vmsas[vmsas.length - 1] } });
  const h = createHash('sha256');
  chunks.forEach((chunk, i) => {
    h.update(chunk);
    if (!parts) return;
    const vcpu = i - (boot ? 2 : 1);
    const what = i === 0 ? 'OVMF' : vcpu < 0 ? 'SEV hashes table' : 'VMSA';
    const detail = i === 0 ? undefined : vcpu < 0 ? 'kernel, initrd and command line hashes (padded)' : vcpuName(vcpu);
    parts.push({ what, detail, size: chunk.length, sha256: createHash('sha256').update(chunk).digest(), digest: h.copy().digest() });
  });
  return h.digest();
}

const vcpuName = (i: number) => `vCPU ${i}${i === 0 ? ' (BSP)' : ''}`;

/** Runs `update` on the GCTX and, when tracing, records its pages as one part. */
function part(gctx: Gctx, parts: MeasuredPart[] | undefined, what: string, detail: string | undefined, update: () => void): void {
  const start = gctx.steps?.length ?? 0;
  update();
  if (!parts || !gctx.steps) return;
  const pages = gctx.steps.slice(start);
  if (pages.length === 0) return;
  parts.push({ what, detail, pageType: pages[0].type, gpa: pages[0].gpa, size: pages.length * PAGE_SIZE, pages, digest: gctx.digest() });
}

/** The SNP OVMF hash: the GCTX digest after OVMF's pages alone (`--snp-ovmf-hash` input). */
export function calcSnpOvmfHash(ovmf: Uint8Array | OvmfImage): Buffer {
  const image = toOvmf(ovmf);
  const gctx = new Gctx();
  gctx.updateNormalPages(image.gpa(), image.data);
  return gctx.digest();
}

function snpLaunchDigest(o: LaunchDigestOptions, ovmf: OvmfImage, parts: MeasuredPart[] | undefined): Buffer {
  const vmm = o.vmmType ?? 'qemu';
  const seed = o.ovmfHash === undefined ? undefined : ovmfHashBytes(o.ovmfHash);
  const gctx = new Gctx(seed, { record: parts !== undefined });
  if (seed) parts?.push({ what: 'OVMF hash', detail: 'precomputed: the chain starts from it', size: 0, digest: gctx.digest() });
  else part(gctx, parts, 'OVMF', 'firmware image', () => gctx.updateNormalPages(ovmf.gpa(), ovmf.data));
  const boot = kernelBoot(o);
  if (boot && !ovmf.hasSevMetadataSection('snpKernelHashes')) {
    throw new SevArgumentError('measurement', "a kernel was given but the OVMF metadata doesn't include an SNP_KERNEL_HASHES section (measured direct boot needs an AmdSev build)");
  }
  updateMetadataPages(gctx, ovmf, vmm, boot, parts);
  const pages = snpVmsaPages({ vcpus: vcpuCount(o), vmm, signature: vcpuSignature(o), sevFeatures: o.guestFeatures ?? 1, firmware: ovmf, ec2Rdx: o.ec2Rdx, x87Init: o.x87Init });
  pages.forEach((page, i) => part(gctx, parts, 'VMSA', vcpuName(i), () => gctx.updateVmsaPage(page)));
  return gctx.digest();
}

function svsmLaunchDigest(o: LaunchDigestOptions, ovmf: OvmfImage, parts: MeasuredPart[] | undefined): Buffer {
  if ((o.vmmType ?? 'qemu') !== 'qemu') throw new SevArgumentError('measurement', 'SVSM mode is only implemented for QEMU');
  if (!o.svsm) throw new SevArgumentError('measurement', 'mode snp-svsm needs the SVSM image');
  if (o.kernel) throw new SevArgumentError('measurement', 'mode snp-svsm does not measure a kernel');
  const svsm = toOvmf(o.svsm);
  // QEMU maps the SVSM right below OVMF's variable store, which sits right below OVMF's code.
  const svsmGpa = svsm.gpa(ovmf.gpa() - varsSize(o));
  const signature = vcpuSignature(o);
  const gctx = new Gctx(undefined, { record: parts !== undefined });
  part(gctx, parts, 'OVMF', 'firmware image', () => gctx.updateNormalPages(ovmf.gpa(), ovmf.data));
  part(gctx, parts, 'SVSM', 'COCONUT-SVSM image', () => gctx.updateNormalPages(svsmGpa, svsm.data));
  updateMetadataPages(gctx, svsm, 'qemu', undefined, parts);
  svsmVmsaPages(vcpuCount(o), svsmEntry(svsm, svsmGpa), signature!).forEach((page, i) => part(gctx, parts, 'VMSA', `${vcpuName(i)}, SVSM entry`, () => gctx.updateVmsaPage(page)));
  return gctx.digest();
}

/** The OVMF metadata section types by their edk2 names. */
const SECTION_NAMES: Record<string, string> = {
  snpSecMemory: 'SNP_SEC_MEMORY',
  snpSecrets: 'SNP_SECRETS',
  cpuid: 'CPUID',
  svsmCaa: 'SVSM_CAA',
  snpKernelHashes: 'SNP_KERNEL_HASHES',
};

function updateMetadataPages(gctx: Gctx, image: OvmfImage, vmm: SnpVmmType, boot: KernelBootInputs | undefined, parts: MeasuredPart[] | undefined): void {
  for (const s of image.sevMetadata) {
    const name = SECTION_NAMES[s.type];
    switch (s.type) {
      case 'snpSecMemory':
        part(gctx, parts, name, vmm === 'gce' ? 'unmeasured pages (GCE)' : 'zero pages', () => gctx.updateEmptyPages(vmm === 'gce' ? 'unmeasured' : 'zero', s.gpa, s.size));
        break;
      case 'snpSecrets':
        part(gctx, parts, name, 'secrets page', () => gctx.updateEmptyPages('secrets', s.gpa));
        break;
      case 'cpuid':
        if (vmm !== 'ec2') part(gctx, parts, name, 'CPUID page', () => gctx.updateEmptyPages('cpuid', s.gpa));
        break;
      case 'svsmCaa':
        part(gctx, parts, name, 'zero pages', () => gctx.updateEmptyPages('zero', s.gpa, s.size));
        break;
      case 'snpKernelHashes':
        if (boot) part(gctx, parts, name, 'kernel, initrd and command line hashes page', () => gctx.updateNormalPages(s.gpa, hashesPage(image, s.size, boot)));
        else part(gctx, parts, name, 'zero pages (no kernel given)', () => gctx.updateEmptyPages('zero', s.gpa, s.size));
        break;
    }
  }
  if (vmm === 'ec2') {
    for (const s of image.sevMetadata) if (s.type === 'cpuid') part(gctx, parts, 'CPUID', 'CPUID page (EC2 measures it last)', () => gctx.updateEmptyPages('cpuid', s.gpa));
  }
}

/** The kernel-hashes page: the SEV hashes table at its GPA's offset within the page. */
function hashesPage(ovmf: OvmfImage, sectionSize: number, boot: KernelBootInputs): Buffer {
  const area = ovmf.sevHashTableArea();
  if (!area) throw new SevArgumentError('measurement', 'the OVMF footer table has no SEV hashes table entry (SEV_HASH_TABLE_RV_GUID)');
  if (sectionSize !== PAGE_SIZE) throw new SevArgumentError('measurement', `the SNP_KERNEL_HASHES section is ${sectionSize} bytes, expected one page`);
  const table = buildSevHashesTable(boot);
  const offset = area.gpa % PAGE_SIZE;
  if (offset + table.length > PAGE_SIZE) throw new SevArgumentError('measurement', `the SEV hashes table at page offset ${offset} crosses the page end`);
  const page = Buffer.alloc(PAGE_SIZE);
  table.copy(page, offset);
  return page;
}

function kernelBoot(o: LaunchDigestOptions): KernelBootInputs | undefined {
  if (o.kernel === undefined) {
    if (o.initrd !== undefined || o.append !== undefined) throw new SevArgumentError('measurement', 'an initrd or a command line needs a kernel');
    return undefined;
  }
  return { kernel: o.kernel, initrd: o.initrd, cmdline: o.append, cmdlineNul: o.appendNul };
}

function vcpuCount(o: LaunchDigestOptions): number {
  const n = o.vcpus;
  if (n === undefined) throw new SevArgumentError('measurement', `mode ${o.mode} needs the vCPU count`);
  if (!Number.isInteger(n) || n < 1 || n > MAX_VCPUS) throw new SevArgumentError('measurement', `the vCPU count must be an integer from 1 to ${MAX_VCPUS}, got ${n}`);
  return n;
}

/** The CPUID signature, in sev-snp-measure's order of precedence; only QEMU requires one. */
function vcpuSignature(o: LaunchDigestOptions): number | undefined {
  if (o.vcpuFamily !== undefined) {
    if (o.vcpuModel === undefined || o.vcpuStepping === undefined) throw new SevArgumentError('measurement', 'a vCPU family needs the model and the stepping');
    return cpuidSignature({ family: o.vcpuFamily, model: o.vcpuModel, stepping: o.vcpuStepping });
  }
  if (o.vcpuSig !== undefined) {
    if (!Number.isInteger(o.vcpuSig) || o.vcpuSig < 0 || o.vcpuSig > 0xffffffff) throw new SevArgumentError('measurement', `the vCPU signature must be a 32-bit unsigned integer, got ${o.vcpuSig}`);
    return o.vcpuSig;
  }
  if (o.vcpuType !== undefined) return cpuidSignature(cpuTypeSignature(o.vcpuType));
  if ((o.vmmType ?? 'qemu') === 'qemu') throw new SevArgumentError('measurement', `mode ${o.mode} with QEMU needs a vCPU type, signature, or family/model/stepping`);
  return undefined;
}

function ovmfHashBytes(hash: Uint8Array | string): Buffer {
  const bytes = typeof hash === 'string' ? (/^[0-9a-f]*$/i.test(hash) ? Buffer.from(hash, 'hex') : Buffer.alloc(0)) : Buffer.from(hash);
  if (bytes.length !== LAUNCH_DIGEST_SIZE) throw new SevArgumentError('measurement', `the OVMF hash must be ${LAUNCH_DIGEST_SIZE} bytes (${LAUNCH_DIGEST_SIZE * 2} hex digits)`);
  return bytes;
}

function varsSize(o: LaunchDigestOptions): number {
  if (o.varsFile !== undefined) {
    if (o.varsSize !== undefined) throw new SevArgumentError('measurement', 'give the OVMF variable store size or its file, not both');
    try {
      return fs.statSync(o.varsFile).size;
    } catch (e) {
      throw new SevArgumentError('measurement', `--vars-file: ${fileErrorText('read', o.varsFile, e)}`);
    }
  }
  const n = o.varsSize;
  if (n === undefined) throw new SevArgumentError('measurement', 'mode snp-svsm needs the OVMF variable store size or file');
  if (!Number.isInteger(n) || n < 0 || n % PAGE_SIZE !== 0) throw new SevArgumentError('measurement', `the variable store size must be a whole number of pages, got ${n}`);
  return n;
}
