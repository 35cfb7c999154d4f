// Why does a computed launch digest differ from the one a report carries? The usual causes are
// options that differ between the launch and the computation: the vCPU count, the vCPU type
// (QEMU puts the CPUID signature in RDX), the VMM (each builds its VMSAs a little differently),
// the VMSA's FPU state (KVM_SEV_INIT2 vs legacy KVM_SEV_INIT), the SEV features, and the kernel
// command line (its terminating NUL, present or not). explainLaunchDigest traces the computation
// (traceLaunchDigest) and then recomputes with each cause varied — through calcLaunchDigest,
// never a second implementation — naming the variations that give the expected digest. When no
// single change matches, pairs of changes are tried for mode snp (cheap there: the OVMF pages
// are hashed once and the chain seeded with the OVMF hash).
import { SevArgumentError } from '../errors';
import { OvmfImage } from '../owner/ovmf';
import { CPU_TYPES, cpuidSignature, cpuTypeSignature, type CpuSignature } from '../owner/vmsa-builder';
import { FileDigest } from '../owner/file-digest';
import { calcLaunchDigest, calcSnpOvmfHash, traceLaunchDigest, type LaunchDigestOptions, type LaunchDigestTrace } from './measurement';
import type { SnpVmmType } from './vmsa';

export type MeasurementCauseKind = 'vcpus' | 'vcpu-type' | 'vmm-type' | 'vmsa-init' | 'guest-features' | 'cmdline' | 'initrd' | 'kernel-hashes';

/** One variation of the given options. */
export interface MeasurementVariation {
  /** What was varied (two kinds for a pair). */
  causes: MeasurementCauseKind[];
  /** In words: "4 vCPUs instead of 2". */
  description: string;
  /**
   * How to compute it with `sev snp measure`: flags to set (name, value, ...) and flags to drop;
   * null when no flag expresses it (a command line hashed without its NUL).
   */
  flags: { set: string[]; drop: string[] } | null;
  /** The options changed from the given ones. */
  changes: Partial<LaunchDigestOptions>;
}

export interface MeasurementExplanation {
  expected: Buffer;
  /** The trace of the digest computed from the given options. */
  trace: LaunchDigestTrace;
  match: boolean;
  /** How many variations were computed (0 when the given options match). */
  tried: number;
  /** Whether pairs of changes were tried too (only when no single change matched). */
  triedPairs: boolean;
  /** The variations whose digest is the expected one. */
  matches: MeasurementVariation[];
}

/** The QEMU CPU model names, as sev-snp-measure spells them. */
const CPU_TYPE_NAMES: Record<string, string> = {
  epyc: 'EPYC',
  'epyc-rome': 'EPYC-Rome',
  'epyc-milan': 'EPYC-Milan',
  'epyc-genoa': 'EPYC-Genoa',
  'epyc-turin': 'EPYC-Turin',
};

const VMM_NAMES: Record<SnpVmmType, string> = { qemu: 'QEMU', ec2: 'EC2', krun: 'KRUN', gce: 'GCE' };

/** SEV_FEATURES bits (APM vol. 2, "VMSA SEV_FEATURES") tried one at a time. */
const FEATURE_BITS: Array<[number, string]> = [
  [1, 'vTOM'], [2, 'ReflectVC'], [3, 'RestrictedInjection'], [4, 'AlternateInjection'], [5, 'DebugSwap'],
  [6, 'PreventHostIBS'], [7, 'BTBIsolation'], [8, 'VmplSSS'], [9, 'SecureTSC'], [10, 'VmgexitParameter'],
  [11, 'PmcVirtualization'], [12, 'IbsVirtualization'], [14, 'VmsaRegProt'], [15, 'SmtProtection'],
];

const NO_SIGNATURE = { vcpuType: undefined, vcpuSig: undefined, vcpuFamily: undefined, vcpuModel: undefined, vcpuStepping: undefined };

/**
 * Computes the digest of `o` with its trace; when it is not `expected`, tries the usual causes
 * and returns the variations that match. Throws (SevArgumentError) when `o` itself is invalid.
 */
export function explainLaunchDigest(o: LaunchDigestOptions, expected: Uint8Array, options: { pairs?: boolean } = {}): MeasurementExplanation {
  // Parse the images and hash the kernel and initrd once: every variation below reuses them.
  const base: LaunchDigestOptions = { ...o, ovmf: o.ovmf instanceof OvmfImage ? o.ovmf : OvmfImage.parse(o.ovmf) };
  if (base.svsm !== undefined && !(base.svsm instanceof OvmfImage)) base.svsm = OvmfImage.parse(base.svsm);
  if (base.kernel !== undefined && !(base.kernel instanceof FileDigest)) base.kernel = FileDigest.of(base.kernel);
  if (base.initrd !== undefined && !(base.initrd instanceof FileDigest)) base.initrd = FileDigest.of(base.initrd);
  const trace = traceLaunchDigest(base);
  const want = Buffer.from(expected);
  if (want.length !== trace.digest.length) {
    throw new SevArgumentError('measurement', `the expected ${o.mode} measurement is ${trace.digest.length} bytes, got ${want.length}`);
  }
  const result: MeasurementExplanation = { expected: want, trace, match: trace.digest.equals(want), tried: 0, triedPairs: false, matches: [] };
  if (result.match) return result;

  // For snp, seed the chain with the OVMF hash so each variation hashes only the metadata pages
  // and VMSAs (the digest is the same: calcSnpOvmfHash is that prefix).
  if (base.mode === 'snp' && base.ovmfHash === undefined) base.ovmfHash = calcSnpOvmfHash(base.ovmf);

  const attempt = (v: MeasurementVariation): boolean => {
    result.tried++;
    try {
      return calcLaunchDigest({ ...base, ...v.changes }).equals(want);
    } catch (e) {
      if (e instanceof SevArgumentError) return false; // a variation these inputs do not allow
      throw e;
    }
  };
  const singles = variations(o);
  result.matches = singles.flat().filter(attempt);
  if (result.matches.length > 0 || !(options.pairs ?? o.mode === 'snp')) return result;

  // No single change: two at once, from two different kinds (the big lists only as the first).
  result.triedPairs = true;
  const primary = singles.map((group) => group.filter((v) => !v.secondary));
  for (let i = 0; i < primary.length; i++) {
    for (let j = i + 1; j < primary.length; j++) {
      for (const a of primary[i]) {
        for (const b of primary[j]) {
          if (a.causes.some((c) => b.causes.includes(c)) || (isBoot(a) && isBoot(b))) continue;
          const pair = combine(a, b);
          if (attempt(pair)) result.matches.push(pair);
        }
      }
    }
  }
  return result;
}

type Candidate = MeasurementVariation & { secondary?: boolean };

/** Dropping the kernel already drops the command line and the initrd: no pairs among these. */
const isBoot = (v: MeasurementVariation) => v.causes.some((c) => c === 'cmdline' || c === 'initrd' || c === 'kernel-hashes');
const set = (...flags: string[]) => ({ set: flags, drop: [] });
const drop = (...flags: string[]) => ({ set: [], drop: flags });

function combine(a: MeasurementVariation, b: MeasurementVariation): MeasurementVariation {
  return {
    causes: [...a.causes, ...b.causes],
    description: `${a.description}, and ${b.description}`,
    flags: a.flags && b.flags ? { set: [...a.flags.set, ...b.flags.set], drop: [...a.flags.drop, ...b.flags.drop] } : null,
    changes: { ...a.changes, ...b.changes },
  };
}

/** The current CPU signature of `o`, or undefined (none given, or sev). */
function currentSignature(o: LaunchDigestOptions): number | undefined {
  try {
    if (o.vcpuFamily !== undefined) return cpuidSignature({ family: o.vcpuFamily, model: o.vcpuModel ?? 0, stepping: o.vcpuStepping ?? 0 });
    if (o.vcpuSig !== undefined) return o.vcpuSig;
    if (o.vcpuType !== undefined) return cpuidSignature(cpuTypeSignature(o.vcpuType));
  } catch {
    // an invalid given signature: every known one is a variation
  }
  return undefined;
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

/** The single-change variations, one group per kind of cause. */
function variations(o: LaunchDigestOptions): Candidate[][] {
  const groups: Candidate[][] = [];
  const vmm = o.vmmType ?? 'qemu';
  const hasVmsas = o.mode !== 'sev';
  const svsm = o.mode === 'snp-svsm';

  if (hasVmsas && o.vcpus !== undefined) {
    const max = Math.max(64, o.vcpus + 8);
    const group: Candidate[] = [];
    for (let n = 1; n <= max; n++) {
      if (n !== o.vcpus) group.push({ causes: ['vcpus'], description: `${n} vCPU${n === 1 ? '' : 's'} instead of ${o.vcpus}`, flags: set('--vcpus', String(n)), changes: { vcpus: n } });
    }
    groups.push(group);
  }

  // The vCPU signature only reaches the VMSA under QEMU (RDX); the named types first, then the
  // other steppings of their family and model (QEMU's -cpu host passes the host's).
  const sig = currentSignature(o);
  if (hasVmsas && vmm === 'qemu') groups.push(cpuVariations(sig));

  if (hasVmsas && !svsm) {
    const group: Candidate[] = [];
    for (const other of Object.keys(VMM_NAMES) as SnpVmmType[]) {
      if (other === vmm) continue;
      const flags = ['--vmm-type', other];
      const description = `VMM ${VMM_NAMES[other]} instead of ${VMM_NAMES[vmm]}`;
      if (other === 'qemu' && sig === undefined) {
        // QEMU needs a signature that was not given: try the named types with it.
        for (const c of cpuVariations(undefined).filter((v) => !v.secondary)) {
          group.push({ causes: ['vmm-type', 'vcpu-type'], description: `${description} with ${c.description}`, flags: set(...flags, ...c.flags!.set), changes: { vmmType: other, ...c.changes } });
        }
      } else {
        group.push({ causes: ['vmm-type'], description, flags: set(...flags), changes: { vmmType: other } });
      }
    }
    groups.push(group);

    const init2 = o.x87Init ?? vmm === 'qemu';
    groups.push([{
      causes: ['vmsa-init'],
      description: init2
        ? 'VMSAs as legacy KVM_SEV_INIT builds them (MXCSR and FCW 0) instead of KVM_SEV_INIT2 (MXCSR 0x1F80, FCW 0x37F)'
        : 'VMSAs as KVM_SEV_INIT2 builds them (MXCSR 0x1F80, FCW 0x37F) instead of legacy KVM_SEV_INIT (MXCSR and FCW 0)',
      flags: set('--vmsa-init', init2 ? 'legacy' : 'init2'),
      changes: { x87Init: !init2 },
    }]);
  }

  if (o.mode === 'snp') {
    const features = BigInt(o.guestFeatures ?? 1);
    const group: Candidate[] = [];
    const seen = new Set<bigint>([features]);
    const add = (value: bigint, description: string) => {
      if (seen.has(value)) return;
      seen.add(value);
      group.push({ causes: ['guest-features'], description: `guest features ${hex(value)} (${description}) instead of ${hex(features)}`, flags: set('--guest-features', hex(value)), changes: { guestFeatures: value } });
    };
    add(1n, 'SNP only');
    add(0x21n, 'SNP + DebugSwap, what KVM enables by default on hosts that support it');
    for (const [bit, name] of FEATURE_BITS) add(features ^ (1n << BigInt(bit)), `${name} ${features & (1n << BigInt(bit)) ? 'off' : 'on'}`);
    groups.push(group);
  }

  if (o.kernel !== undefined && !svsm) {
    const group: Candidate[] = [];
    const append = o.append ?? '';
    if (o.appendNul !== false) {
      group.push({ causes: ['cmdline'], description: 'the command line hashed without its terminating NUL (QEMU hashes it with the NUL; the VMM or tool that gave the expected value did not)', flags: null, changes: { appendNul: false } });
    } else {
      group.push({ causes: ['cmdline'], description: 'the command line hashed with its terminating NUL, as QEMU does', flags: set(), changes: { appendNul: true } });
    }
    if (append !== '') {
      group.push({ causes: ['cmdline'], description: 'no --append (QEMU hashes a lone NUL)', flags: drop('--append'), changes: { append: undefined } });
      group.push({ causes: ['cmdline'], description: 'no --append, hashed as an empty string without NUL', flags: null, changes: { append: undefined, appendNul: false } });
      const trimmed = append.trim();
      if (trimmed !== append) group.push({ causes: ['cmdline'], description: 'the command line without its leading/trailing white space', flags: set('--append', trimmed), changes: { append: trimmed } });
    }
    group.push({ causes: ['cmdline'], description: 'the command line with a trailing newline', flags: set('--append', `${append}\n`), changes: { append: `${append}\n` }, secondary: true });
    groups.push(group);
    if (o.initrd !== undefined) {
      groups.push([{ causes: ['initrd'], description: 'no initrd (QEMU hashes empty data)', flags: drop('--initrd'), changes: { initrd: undefined } }]);
    }
    groups.push([{
      causes: ['kernel-hashes'],
      description: 'no measured direct boot (kernel-hashes=off, or the kernel loaded by the firmware)',
      flags: drop('--kernel', '--initrd', '--append'),
      changes: { kernel: undefined, initrd: undefined, append: undefined, appendNul: undefined },
    }]);
  }
  return groups;
}

/** The known vCPU types (then every stepping of their family/model) other than `sig`. */
function cpuVariations(sig: number | undefined): Candidate[] {
  const group: Candidate[] = [];
  const seen = new Set<number>(sig === undefined ? [] : [sig]);
  const from = sig === undefined ? '' : ` instead of signature ${hex(sig)}`;
  const types = Object.entries(CPU_TYPES) as Array<[string, CpuSignature]>;
  for (const [key, fms] of types) {
    const s = cpuidSignature(fms);
    if (seen.has(s)) continue;
    seen.add(s);
    group.push({ causes: ['vcpu-type'], description: `vCPU type ${CPU_TYPE_NAMES[key]} (signature ${hex(s)})${from}`, flags: set('--vcpu-type', CPU_TYPE_NAMES[key]), changes: { ...NO_SIGNATURE, vcpuType: CPU_TYPE_NAMES[key] } });
  }
  for (const [, fms] of types) {
    for (let stepping = 0; stepping < 16; stepping++) {
      const f = { ...fms, stepping };
      const s = cpuidSignature(f);
      if (seen.has(s)) continue;
      seen.add(s);
      group.push({
        causes: ['vcpu-type'],
        description: `vCPU family ${f.family} model ${f.model} stepping ${stepping} (signature ${hex(s)}, e.g. -cpu host)${from}`,
        flags: set('--vcpu-family', String(f.family), '--vcpu-model', String(f.model), '--vcpu-stepping', String(stepping)),
        changes: { ...NO_SIGNATURE, vcpuFamily: f.family, vcpuModel: f.model, vcpuStepping: stepping },
        secondary: true,
      });
    }
  }
  return group;
}
