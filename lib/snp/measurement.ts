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
import * as fs from 'node:fs';

import { SevArgumentError } from '../errors';
import { launchDigestOf, MAX_VCPUS } from '../owner/launch-digest';
import { OvmfImage } from '../owner/ovmf';
import { buildSevHashesTable, checkSevHashesSupport, type KernelBootInputs } from '../owner/sev-hashes';
import { cpuidSignature, cpuTypeSignature } from '../owner/vmsa-builder';
import { Gctx, LAUNCH_DIGEST_SIZE, PAGE_SIZE } from './gctx';
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
  /** Measured direct boot: giving a kernel (even empty) measures the hashes of all three. */
  kernel?: Uint8Array;
  initrd?: Uint8Array;
  append?: string;
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

/**
 * The launch digest: 32 bytes (SHA-256) for sev/seves, 48 (SHA-384 GCTX) for snp/snp-svsm.
 * Throws SevArgumentError for missing or inconsistent inputs.
 */
export function calcLaunchDigest(o: LaunchDigestOptions): Buffer {
  if (o.ovmfHash !== undefined && o.mode !== 'snp') throw new SevArgumentError('measurement', 'a precomputed OVMF hash only works with mode snp');
  const ovmf = toOvmf(o.ovmf);
  switch (o.mode) {
    case 'sev':
      return launchDigestOf({ firmware: ovmf, kernelBoot: kernelBoot(o) });
    case 'seves': {
      const boot = kernelBoot(o);
      if (boot) checkSevHashesSupport(ovmf); // before the vCPU inputs, as sev-snp-measure reports it
      const pages = snpVmsaPages({ vcpus: vcpuCount(o), vmm: o.vmmType ?? 'qemu', signature: vcpuSignature(o), sevFeatures: 0, firmware: ovmf, ec2Rdx: o.ec2Rdx, x87Init: o.x87Init });
      // launchDigestOf measures vCPU 0's page, then `count - 1` copies of the AP page.
      return launchDigestOf({ firmware: ovmf, kernelBoot: boot, vcpus: { count: pages.length, bsp: pages[0], ap: pages[pages.length - 1] } });
    }
    case 'snp':
      return snpLaunchDigest(o, ovmf);
    case 'snp-svsm':
      return svsmLaunchDigest(o, ovmf);
    default:
      throw new SevArgumentError('measurement', `unknown mode '${(o as { mode: unknown }).mode}' (sev, seves, snp, snp-svsm)`);
  }
}

/** The SNP OVMF hash: the GCTX digest after OVMF's pages alone (`--snp-ovmf-hash` input). */
export function calcSnpOvmfHash(ovmf: Uint8Array | OvmfImage): Buffer {
  const image = toOvmf(ovmf);
  const gctx = new Gctx();
  gctx.updateNormalPages(image.gpa(), image.data);
  return gctx.digest();
}

function snpLaunchDigest(o: LaunchDigestOptions, ovmf: OvmfImage): Buffer {
  const vmm = o.vmmType ?? 'qemu';
  const gctx = new Gctx(o.ovmfHash === undefined ? undefined : ovmfHashBytes(o.ovmfHash));
  if (o.ovmfHash === undefined) gctx.updateNormalPages(ovmf.gpa(), ovmf.data);
  const boot = kernelBoot(o);
  if (boot && !ovmf.hasSevMetadataSection('snpKernelHashes')) {
    throw new SevArgumentError('measurement', "a kernel was given but the OVMF metadata doesn't include an SNP_KERNEL_HASHES section (measured direct boot needs an AmdSev build)");
  }
  updateMetadataPages(gctx, ovmf, vmm, boot);
  const pages = snpVmsaPages({ vcpus: vcpuCount(o), vmm, signature: vcpuSignature(o), sevFeatures: o.guestFeatures ?? 1, firmware: ovmf, ec2Rdx: o.ec2Rdx, x87Init: o.x87Init });
  for (const page of pages) gctx.updateVmsaPage(page);
  return gctx.digest();
}

function svsmLaunchDigest(o: LaunchDigestOptions, ovmf: OvmfImage): Buffer {
  if ((o.vmmType ?? 'qemu') !== 'qemu') throw new SevArgumentError('measurement', 'SVSM mode is only implemented for QEMU');
  if (!o.svsm) throw new SevArgumentError('measurement', 'mode snp-svsm needs the SVSM image');
  if (o.kernel) throw new SevArgumentError('measurement', 'mode snp-svsm does not measure a kernel');
  const svsm = toOvmf(o.svsm);
  // QEMU maps the SVSM right below OVMF's variable store, which sits right below OVMF's code.
  const svsmGpa = svsm.gpa(ovmf.gpa() - varsSize(o));
  const signature = vcpuSignature(o);
  const gctx = new Gctx();
  gctx.updateNormalPages(ovmf.gpa(), ovmf.data);
  gctx.updateNormalPages(svsmGpa, svsm.data);
  updateMetadataPages(gctx, svsm, 'qemu', undefined);
  for (const page of svsmVmsaPages(vcpuCount(o), svsmEntry(svsm, svsmGpa), signature!)) gctx.updateVmsaPage(page);
  return gctx.digest();
}

function updateMetadataPages(gctx: Gctx, image: OvmfImage, vmm: SnpVmmType, boot: KernelBootInputs | undefined): void {
  for (const s of image.sevMetadata) {
    switch (s.type) {
      case 'snpSecMemory':
        gctx.updateEmptyPages(vmm === 'gce' ? 'unmeasured' : 'zero', s.gpa, s.size);
        break;
      case 'snpSecrets':
        gctx.updateEmptyPages('secrets', s.gpa);
        break;
      case 'cpuid':
        if (vmm !== 'ec2') gctx.updateEmptyPages('cpuid', s.gpa);
        break;
      case 'svsmCaa':
        gctx.updateEmptyPages('zero', s.gpa, s.size);
        break;
      case 'snpKernelHashes':
        if (boot) gctx.updateNormalPages(s.gpa, hashesPage(image, s.size, boot));
        else gctx.updateEmptyPages('zero', s.gpa, s.size);
        break;
    }
  }
  if (vmm === 'ec2') {
    for (const s of image.sevMetadata) if (s.type === 'cpuid') gctx.updateEmptyPages('cpuid', s.gpa);
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
  return { kernel: o.kernel, initrd: o.initrd, cmdline: o.append };
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
      throw new SevArgumentError('measurement', `cannot read the OVMF variable store ${o.varsFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const n = o.varsSize;
  if (n === undefined) throw new SevArgumentError('measurement', 'mode snp-svsm needs the OVMF variable store size or file');
  if (!Number.isInteger(n) || n < 0 || n % PAGE_SIZE !== 0) throw new SevArgumentError('measurement', `the variable store size must be a whole number of pages, got ${n}`);
  return n;
}
