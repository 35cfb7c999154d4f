// Initial vCPU state of an SEV-ES guest as KVM + the VMM set it before LAUNCH_UPDATE_VMSA, built
// the way sevctl `vmsa build` does so that the pages are byte-identical to its files:
//   1. x86 reset state (APM vol. 2 §14.1.3): CS F000:FFF0 base FFFF0000, CR0.ET, DR6/DR7,
//      RFLAGS bit 1, XCR0 x87, all limits 0xFFFF;
//   2. KVM's additions (arch/x86/kvm/svm/svm.c init_vmcb): CR4.MCE, EFER.SVME, G_PAT;
//   3. the VMM's segment attributes (QEMU x86_cpu_reset / libkrun setup_regs);
//   4. RDX = the CPUID Fn0000_0001 EAX signature (family/model/stepping), as at CPU reset;
//   5. for application processors (QEMU, EC2, GCE): CS.base/IP from OVMF's SEV-ES reset block.
// The SNP measurement tools (sev-snp-measure, virtee/sev) add the VMMs EC2 and GCE, SEV_FEATURES
// and the FPU state KVM_SEV_INIT2 gives a vCPU (MXCSR 0x1F80, FCW 0x37F; legacy KVM_SEV_INIT
// leaves both 0).
import { SevArgumentError } from '../errors';
import { OvmfImage } from './ovmf';
import { Vmsa, type SegmentName } from './vmsa';

/**
 * The VMM that creates the vCPUs; it decides segment attributes and AP start state. 'ec2' and
 * 'gce' are the VMMs of AWS EC2 and Google Compute Engine as the SNP measurement tools model them.
 */
export type UserspaceVmm = 'qemu' | 'krun' | 'ec2' | 'gce';

export interface CpuSignature {
  family: number;
  model: number;
  stepping: number;
}

export interface VmsaBuildOptions extends Partial<CpuSignature> {
  /** vCPU index: 0 is the boot processor, others are application processors. */
  cpu: number;
  userspace: UserspaceVmm;
  /** OVMF image (or its SEV-ES reset address) for APs (not libkrun's). */
  firmware?: OvmfImage | Uint8Array;
  resetAddress?: number;
  /** The CPUID Fn0000_0001 EAX signature itself, instead of family/model/stepping. */
  signature?: number;
  /** RDX, overriding what the VMM puts there (the signature, or 0x600 for EC2/GCE). */
  rdx?: number;
  /** SEV_FEATURES (0x3B0): the SNP guest features. */
  sevFeatures?: bigint | number;
  /** FPU state as KVM_SEV_INIT2 sets it: MXCSR 0x1F80, x87 FCW 0x37F. */
  x87Init?: boolean;
}

// VMCB segment attribute bits (descriptor bits 8..15 and 20..23 packed into 12 bits).
const ATTR_TYPE_ACCESSED = 0x01;
const ATTR_TYPE_WRITE_OR_READ = 0x02; // data: writable; code: readable
const ATTR_TYPE_CODE = 0x08;
const ATTR_S = 0x10; // code/data (not system) segment
const ATTR_P = 0x80; // present
const SYSTEM_TYPE_LDT = 0x2;
const SYSTEM_TYPE_TSS16_BUSY = 0x3;
const SYSTEM_TYPE_TSS_BUSY = 0xb;

const DATA_SEGMENTS: SegmentName[] = ['ds', 'es', 'fs', 'gs'];

/** RDX KVM sets at reset when the vCPU's CPUID has no leaf 1 (EC2 and GCE measure this). */
const KVM_DEFAULT_RDX = 0x600;
/** The x86 reset vector: a vCPU starting here has CS.base 0xFFFF0000, IP 0xFFF0. */
const RESET_VECTOR = 0xfffffff0;
/** The largest family the signature holds: base family 0xF plus an 8-bit extended family. */
export const MAX_CPU_FAMILY = 0xf + 0xff;

/** RDX at reset: the CPUID Fn0000_0001 EAX signature (AMD CPUID spec, "Family, Model, Stepping"). */
export function cpuidSignature({ family, model, stepping }: CpuSignature): number {
  for (const [name, value, max] of [['family', family, MAX_CPU_FAMILY], ['model', model, 0xff], ['stepping', stepping, 0xf]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new SevArgumentError('vmsa', `CPU ${name} must be an integer from 0 to ${max}, got ${value}`);
    }
  }
  let sig = stepping;
  sig |= family > 0xf ? 0xf00 | ((family - 0xf) << 20) : family << 8;
  sig |= ((model & 0xf) << 4) | ((model >> 4) << 16);
  return sig >>> 0;
}

/** QEMU CPU model names (EPYC-*) and their family/model/stepping (QEMU target/i386/cpu.c). */
export const CPU_TYPES: Readonly<Record<string, CpuSignature>> = Object.freeze({
  epyc: { family: 23, model: 1, stepping: 2 },
  'epyc-rome': { family: 23, model: 49, stepping: 0 },
  'epyc-milan': { family: 25, model: 1, stepping: 1 },
  'epyc-genoa': { family: 25, model: 17, stepping: 0 },
  'epyc-turin': { family: 26, model: 0, stepping: 0 },
});

/**
 * Family/model/stepping of a QEMU CPU model name, with or without a -vN / -IBPB suffix. The
 * CamelCase names of virtee/sev (EpycV4, EpycRomeV1, EpycIBPB) are accepted too.
 */
export function cpuTypeSignature(name: string): CpuSignature {
  const key = name.toLowerCase().replace(/-/g, '').replace(/(v\d+|ibpb)$/, '');
  const found = Object.entries(CPU_TYPES).find(([known]) => known.replace(/-/g, '') === key);
  if (!found) {
    throw new SevArgumentError('vmsa', `unknown CPU type '${name}' (known: EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, with optional -vN)`);
  }
  return found[1];
}

function resetState(v: Vmsa): void {
  v.set('cr0', 1 << 4) // CR0.ET
    .set('rip', 0xfff0)
    .set('dr6', 0xffff0ff0)
    .set('dr7', 0x400)
    .set('rflags', 0x2)
    .set('xcr0', 0x1);
  for (const s of ['es', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'idtr', 'ldtr', 'tr'] as const) v.setSegment(s, { limit: 0xffff });
  v.setSegment('cs', { selector: 0xf000, base: 0xffff0000n, limit: 0xffff });
}

function kvmState(v: Vmsa): void {
  v.set('cr4', 0x40) // CR4.MCE, copied from the host
    .set('efer', 0x1000) // EFER.SVME
    .set('g_pat', 0x0007040600070406n); // the power-on PAT
  v.setSegment('ldtr', { attrib: ATTR_P | SYSTEM_TYPE_LDT });
  v.setSegment('tr', { attrib: ATTR_P | SYSTEM_TYPE_TSS16_BUSY }); // QEMU overrides it
}

function qemuState(v: Vmsa): void {
  v.setSegment('ldtr', { attrib: ATTR_P | SYSTEM_TYPE_LDT });
  v.setSegment('tr', { attrib: ATTR_P | SYSTEM_TYPE_TSS_BUSY });
  v.setSegment('cs', { attrib: ATTR_P | ATTR_S | ATTR_TYPE_CODE | ATTR_TYPE_WRITE_OR_READ | ATTR_TYPE_ACCESSED });
  for (const s of [...DATA_SEGMENTS, 'ss'] as const) v.setSegment(s, { attrib: ATTR_P | ATTR_S | ATTR_TYPE_WRITE_OR_READ | ATTR_TYPE_ACCESSED });
}

function krunState(v: Vmsa, cpu: number): void {
  v.set('rsi', 0x7000).set('rbp', 0x8ff0).set('rsp', 0x8ff0);
  v.setSegment('cs', { attrib: ATTR_P | ATTR_S | ATTR_TYPE_CODE | ATTR_TYPE_WRITE_OR_READ });
  for (const s of DATA_SEGMENTS) v.setSegment(s, { attrib: ATTR_P | ATTR_S | ATTR_TYPE_WRITE_OR_READ | ATTR_TYPE_ACCESSED });
  v.setSegment('ss', { attrib: ATTR_P | ATTR_S | ATTR_TYPE_WRITE_OR_READ });
  if (cpu > 0) {
    v.set('rip', 0).set('rsp', 0).set('rbp', 0).set('rsi', 0);
    v.setSegment('cs', { selector: 0x9100, base: 0x91000n });
  }
}

/** RDX as the VMM leaves it, or undefined to keep the page's value. */
function resetRdx(o: VmsaBuildOptions): number | undefined {
  if (o.rdx !== undefined) return o.rdx;
  if (o.userspace === 'ec2' || o.userspace === 'gce') return KVM_DEFAULT_RDX;
  if (o.signature !== undefined) return o.signature;
  const sig = { family: o.family ?? 0, model: o.model ?? 0, stepping: o.stepping ?? 0 };
  return sig.family > 0 || sig.model > 0 || sig.stepping > 0 ? cpuidSignature(sig) : undefined;
}

/**
 * Applies the options that `vmsa update` may change: RDX (the CPU signature when one is given,
 * see resetRdx), for APs the OVMF reset address (except libkrun, which starts its APs itself),
 * SEV features and the INIT2 FPU state.
 */
export function applyVmsaOptions(v: Vmsa, o: VmsaBuildOptions): Vmsa {
  const rdx = resetRdx(o);
  if (rdx !== undefined) v.set('rdx', rdx);
  if (o.userspace !== 'krun' && o.cpu !== 0) {
    const addr = o.resetAddress ?? (o.firmware ? toOvmf(o.firmware).sevEsResetAddress() : undefined);
    if (addr !== undefined) {
      v.set('rip', addr & 0xffff);
      v.setSegment('cs', { base: BigInt((addr & 0xffff0000) >>> 0) });
    }
  }
  if (o.sevFeatures !== undefined) v.set('sev_features', o.sevFeatures);
  if (o.x87Init) v.setFpuControl(0x1f80, 0x37f); // KVM's initial FPU state (FNINIT), copied by INIT2
  return v;
}

/** EC2's attributes differ from QEMU's: no accessed bits on SS and, at the reset vector, CS. */
function ec2State(v: Vmsa): void {
  const atResetVector = v.segment('cs').base + v.get('rip') === BigInt(RESET_VECTOR);
  v.setSegment('cs', { attrib: ATTR_P | ATTR_S | ATTR_TYPE_CODE | ATTR_TYPE_WRITE_OR_READ | (atResetVector ? 0 : ATTR_TYPE_ACCESSED) });
  v.setSegment('ss', { attrib: ATTR_P | ATTR_S | ATTR_TYPE_WRITE_OR_READ });
  v.setSegment('tr', { attrib: ATTR_P | SYSTEM_TYPE_TSS16_BUSY }); // KVM's, kept
}

/** Builds the initial VMSA page of vCPU `cpu` (sevctl `vmsa build`). */
export function buildVmsa(o: VmsaBuildOptions): Vmsa {
  if (!Number.isInteger(o.cpu) || o.cpu < 0) throw new SevArgumentError('vmsa', `cpu must be a non-negative integer, got ${o.cpu}`);
  const v = new Vmsa();
  resetState(v);
  kvmState(v);
  if (o.userspace === 'krun') krunState(v, o.cpu);
  else qemuState(v); // EC2 and GCE start from QEMU's attributes
  applyVmsaOptions(v, o);
  if (o.userspace === 'ec2') ec2State(v);
  if (o.userspace === 'gce') v.set('g_pat', 0x00070106); // GCE's hypervisor writes its own PAT
  return v;
}

function toOvmf(f: OvmfImage | Uint8Array): OvmfImage {
  return f instanceof OvmfImage ? f : OvmfImage.parse(f);
}
