// What an SEV / SEV-ES launch with QEMU + OVMF measures, in order (QEMU target/i386/sev.c):
//   1. the OVMF image (LAUNCH_UPDATE_DATA over the whole flash, at ROM setup);
//   2. for measured direct kernel boot, the padded SEV hashes table (sev-hashes.ts);
//   3. SEV-ES only: one VMSA page per vCPU (LAUNCH_UPDATE_VMSA), vCPU 0 first, then the APs.
// The launch digest GCTX.LD is SHA-256 over all of it (SEV API spec 55766, LAUNCH_UPDATE_DATA).
import { SevArgumentError } from '../errors';
import { launchDigest } from './measurement';
import { OvmfImage } from './ovmf';
import { buildSevHashesTable, checkSevHashesSupport, type KernelBootInputs } from './sev-hashes';
import { VMSA_PAGE_SIZE } from './vmsa';
import { buildVmsa, type CpuSignature, type UserspaceVmm } from './vmsa-builder';

/** The vCPUs of an SEV-ES guest: vCPU 0's VMSA page and the page every AP starts with. */
export interface SevEsVcpus {
  count: number;
  bsp: Uint8Array;
  ap: Uint8Array;
}

/** The images QEMU feeds to LAUNCH_UPDATE_DATA / LAUNCH_UPDATE_VMSA. */
export interface LaunchImages {
  firmware: Uint8Array | OvmfImage;
  /** `-kernel` / `-initrd` / `-append` with kernel-hashes=on. */
  kernelBoot?: KernelBootInputs;
  /** SEV-ES guests only. */
  vcpus?: SevEsVcpus;
}

/** The most vCPUs a KVM guest can have (KVM_MAX_VCPUS on x86): a launch never measures more. */
export const MAX_VCPUS = 4096;

/** The measured chunks in launch order (their SHA-256 is the launch digest). */
export function measuredData(images: LaunchImages): Buffer[] {
  const ovmf = images.firmware instanceof OvmfImage ? images.firmware : OvmfImage.parse(images.firmware);
  const chunks = [ovmf.data];
  if (images.kernelBoot) {
    checkSevHashesSupport(ovmf);
    chunks.push(buildSevHashesTable(images.kernelBoot));
  }
  if (images.vcpus) {
    const { count, bsp, ap } = images.vcpus;
    if (!Number.isInteger(count) || count < 1 || count > MAX_VCPUS) {
      throw new SevArgumentError('measurement', `the vCPU count must be an integer from 1 to ${MAX_VCPUS} (KVM's limit), got ${count}`);
    }
    for (const [name, page] of [['vCPU 0 VMSA', bsp], ['AP VMSA', ap]] as const) {
      if (page.length !== VMSA_PAGE_SIZE) {
        throw new SevArgumentError('measurement', `${name} must be ${VMSA_PAGE_SIZE} bytes, got ${page.length}`);
      }
    }
    chunks.push(Buffer.from(bsp));
    const apPage = Buffer.from(ap); // one copy, hashed once per AP
    for (let i = 1; i < count; i++) chunks.push(apPage);
  }
  return chunks;
}

/** The launch digest (GCTX.LD) of a QEMU + OVMF launch. */
export function launchDigestOf(images: LaunchImages): Buffer {
  return launchDigest(measuredData(images));
}

/**
 * The VMSA pages of an SEV-ES guest built from the CPU signature and the VMM, as sevctl
 * `vmsa build` would (APs start at OVMF's SEV-ES reset address under QEMU).
 */
export function sevEsVcpusFor(options: { count: number; firmware: Uint8Array | OvmfImage; userspace?: UserspaceVmm } & Partial<CpuSignature>): SevEsVcpus {
  const ovmf = options.firmware instanceof OvmfImage ? options.firmware : OvmfImage.parse(options.firmware);
  const common = { ...options, userspace: options.userspace ?? 'qemu', firmware: ovmf } as const;
  return {
    count: options.count,
    bsp: buildVmsa({ ...common, cpu: 0 }).page,
    ap: buildVmsa({ ...common, cpu: 1 }).page,
  };
}
