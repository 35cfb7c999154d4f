// Initial vCPU state of an SEV-ES guest as KVM + the VMM set it before LAUNCH_UPDATE_VMSA, built
// the way sevctl `vmsa build` does so that the pages are byte-identical to its files:
//   1. x86 reset state (APM vol. 2 §14.1.3): CS F000:FFF0 base FFFF0000, CR0.ET, DR6/DR7,
//      RFLAGS bit 1, XCR0 x87, all limits 0xFFFF;
//   2. KVM's additions (arch/x86/kvm/svm/svm.c init_vmcb): CR4.MCE, EFER.SVME, G_PAT;
//   3. the VMM's segment attributes (QEMU x86_cpu_reset / libkrun setup_regs);
//   4. RDX = the CPUID Fn0000_0001 EAX signature (family/model/stepping), as at CPU reset;
//   5. for QEMU application processors: CS.base/IP from OVMF's SEV-ES reset block.
import { SevArgumentError } from '../errors';
import { OvmfImage } from './ovmf';
import { Vmsa, type SegmentName } from './vmsa';

/** The VMM that creates the vCPUs; it decides segment attributes and AP start state. */
export type UserspaceVmm = 'qemu' | 'krun';

export interface CpuSignature {
  family: number;
  model: number;
  stepping: number;
}

export interface VmsaBuildOptions extends Partial<CpuSignature> {
  /** vCPU index: 0 is the boot processor, others are application processors. */
  cpu: number;
  userspace: UserspaceVmm;
  /** OVMF image (or its SEV-ES reset address) for QEMU APs. */
  firmware?: OvmfImage | Uint8Array;
  resetAddress?: number;
}

// VMCB segment attribute bits (descriptor bits 8..15 and 20..23 packed into 12 bits).
const ATTR_TYPE_ACCESSED = 0x01;
const ATTR_TYPE_WRITE_OR_READ = 0x02; // data: writable; code: readable
const ATTR_TYPE_CODE = 0x08;
const ATTR_S = 0x10; // code/data (not system) segment
const ATTR_P = 0x80; // present
const SYSTEM_TYPE_LDT = 0x2;
const SYSTEM_TYPE_TSS_BUSY = 0xb;

const DATA_SEGMENTS: SegmentName[] = ['ds', 'es', 'fs', 'gs'];

/** RDX at reset: the CPUID Fn0000_0001 EAX signature (AMD CPUID spec, "Family, Model, Stepping"). */
export function cpuidSignature({ family, model, stepping }: CpuSignature): number {
  const f = family & 0xfff;
  const m = model & 0xff;
  let sig = stepping & 0xf;
  sig |= f > 0xf ? 0xf00 | ((f - 0xf) << 20) : f << 8;
  sig |= ((m & 0xf) << 4) | ((m >> 4) << 16);
  return sig >>> 0;
}

/** QEMU CPU model names (EPYC-*) and their family/model/stepping (QEMU target/i386/cpu.c). */
export const CPU_TYPES: Readonly<Record<string, CpuSignature>> = Object.freeze({
  epyc: { family: 23, model: 1, stepping: 2 },
  'epyc-rome': { family: 23, model: 49, stepping: 0 },
  'epyc-milan': { family: 25, model: 1, stepping: 1 },
  'epyc-genoa': { family: 25, model: 17, stepping: 0 },
});

/** Family/model/stepping of a QEMU CPU model name, with or without a -vN / -IBPB suffix. */
export function cpuTypeSignature(name: string): CpuSignature {
  const base = name.toLowerCase().replace(/-(v\d+|ibpb)$/, '');
  const sig = CPU_TYPES[base];
  if (!sig) {
    throw new SevArgumentError('vmsa', `unknown CPU type '${name}' (known: EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, with optional -vN)`);
  }
  return sig;
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
  v.setSegment('tr', { attrib: ATTR_P | 0x3 }); // 16-bit busy TSS; QEMU overrides it
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

/**
 * Applies the options that `vmsa update` may change: CPU signature (when any of family /
 * model / stepping is non-zero) and, for QEMU APs, the OVMF reset address.
 */
export function applyVmsaOptions(v: Vmsa, o: VmsaBuildOptions): Vmsa {
  const sig = { family: o.family ?? 0, model: o.model ?? 0, stepping: o.stepping ?? 0 };
  if (sig.family > 0 || sig.model > 0 || sig.stepping > 0) v.set('rdx', cpuidSignature(sig));
  if (o.userspace === 'qemu' && o.cpu !== 0) {
    const addr = o.resetAddress ?? (o.firmware ? toOvmf(o.firmware).sevEsResetAddress() : undefined);
    if (addr !== undefined) {
      v.set('rip', addr & 0xffff);
      v.setSegment('cs', { base: BigInt((addr & 0xffff0000) >>> 0) });
    }
  }
  return v;
}

/** Builds the initial VMSA page of vCPU `cpu` (sevctl `vmsa build`). */
export function buildVmsa(o: VmsaBuildOptions): Vmsa {
  if (!Number.isInteger(o.cpu) || o.cpu < 0) throw new SevArgumentError('vmsa', `cpu must be a non-negative integer, got ${o.cpu}`);
  const v = new Vmsa();
  resetState(v);
  kvmState(v);
  if (o.userspace === 'krun') krunState(v, o.cpu);
  else qemuState(v);
  return applyVmsaOptions(v, o);
}

function toOvmf(f: OvmfImage | Uint8Array): OvmfImage {
  return f instanceof OvmfImage ? f : OvmfImage.parse(f);
}
