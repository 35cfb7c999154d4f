// The VMSA pages an SEV-SNP (or SEV-ES) launch measures, one per vCPU, built on the SEV-ES
// builder of lib/owner as sev-snp-measure and virtee/sev model each VMM:
//   QEMU  RDX = CPUID signature, FPU state as KVM_SEV_INIT2 sets it;
//   EC2   RDX = 0x600 (KVM's default; sev-snp-measure since 2026-04, virtee/sev still 0),
//         SS/CS without accessed bits, 16-bit TSS, no FPU init;
//   GCE   QEMU's attributes, RDX = 0x600, GCE's own PAT, no FPU init;
//   KRUN  as virtee/sev computes it: EC2's attributes with CS 0x9A on every vCPU, RDX 0.
// Application processors start at OVMF's SEV-ES reset address. Under COCONUT-SVSM every vCPU
// starts in flat 32-bit protected mode at the SVSM's entry point instead.
import { SevArgumentError } from '../errors';
import { KNOWN_GUIDS } from '../owner/guid';
import type { OvmfImage } from '../owner/ovmf';
import { buildVmsa, type UserspaceVmm } from '../owner/vmsa-builder';

/** The VMM types of the SNP measurement tools. */
export type SnpVmmType = UserspaceVmm;

export interface SnpVmsaOptions {
  vcpus: number;
  vmm: SnpVmmType;
  /** CPUID signature for QEMU's RDX (EC2, GCE and KRUN do not use it). */
  signature?: number;
  /** SEV_FEATURES; 0 for SEV-ES. */
  sevFeatures: bigint | number;
  /** Supplies the APs' reset address (required, except for KRUN, even for one vCPU). */
  firmware: OvmfImage;
  /** RDX of EC2 vCPUs (default 0x600). */
  ec2Rdx?: number;
  /** FPU state as KVM_SEV_INIT2 sets it (default: QEMU only). */
  x87Init?: boolean;
}

const KRUN_CS_ATTRIB = 0x9a;

/** One page per vCPU: vCPU 0 starts at the reset vector, the APs at OVMF's reset address. */
export function snpVmsaPages(o: SnpVmsaOptions): Buffer[] {
  // QEMU refuses an SEV-ES/SNP firmware without the reset block whatever the vCPU count
  // ("failed to locate and/or save reset vector"), and so does sev-snp-measure; libkrun starts
  // its APs itself.
  if (o.vmm !== 'krun') o.firmware.sevEsResetAddress();
  const x87Init = o.x87Init ?? o.vmm === 'qemu';
  // libkrun's SNP state in virtee/sev is EC2's with RDX 0 and CS always 0x9A.
  const userspace = o.vmm === 'krun' ? 'ec2' : o.vmm;
  const rdx = o.vmm === 'krun' ? 0 : o.vmm === 'ec2' ? o.ec2Rdx : undefined;
  const build = (cpu: number) => {
    const v = buildVmsa({ cpu, userspace, signature: o.signature, rdx, sevFeatures: o.sevFeatures, x87Init, firmware: o.firmware });
    if (o.vmm === 'krun') v.setSegment('cs', { attrib: KRUN_CS_ATTRIB });
    return v.page;
  };
  const bsp = build(0);
  const ap = o.vcpus > 1 ? build(1) : bsp;
  return Array.from({ length: o.vcpus }, (_, i) => (i === 0 ? bsp : ap));
}

// Flat 32-bit segments (limit 4 GiB, granularity and D/B set): data 0xC93, code 0xC9B.
const FLAT_DATA = { selector: 16, attrib: 0xc93, limit: 0xffffffff, base: 0n };
const FLAT_CODE = { selector: 8, attrib: 0xc9b, limit: 0xffffffff, base: 0n };

/**
 * The VMSA of every vCPU under COCONUT-SVSM with QEMU (coconut-svsm/qemu target/i386/sev.c, as
 * sev-snp-measure models it): protected mode (CR0.PE), flat segments, RIP = the SVSM entry,
 * SEV_FEATURES 1 (SNP only), MXCSR as INIT2 sets it. The x87 control word stays 0, as in
 * sev-snp-measure's page.
 */
export function svsmVmsaPages(vcpus: number, entry: number, signature: number): Buffer[] {
  const v = buildVmsa({ cpu: 0, userspace: 'qemu', signature, sevFeatures: 1 });
  for (const s of ['es', 'ss', 'ds', 'fs'] as const) v.setSegment(s, FLAT_DATA);
  v.setSegment('cs', FLAT_CODE);
  v.set('cr0', 0x11).set('rip', entry);
  v.setFpuControl(0x1f80, 0);
  return Array.from({ length: vcpus }, () => v.page);
}

/** The SVSM entry point: the SVSM_INFO footer entry's offset from the SVSM image's GPA. */
export function svsmEntry(svsm: OvmfImage, svsmGpa: number): number {
  const info = svsm.entry(KNOWN_GUIDS.svsmInfo);
  if (!info || info.length < 4) throw new SevArgumentError('measurement', 'the SVSM image has no SVSM_INFO entry in its footer table');
  return svsmGpa + info.readUInt32LE(0);
}
