// Inside a guest: is this an SEV-SNP guest, and can it get attestation reports? What
// `snpguest ok` answers, from the same sources the guest kernel uses: the SEV_STATUS MSR
// (0xC0010131, read through /dev/cpu/0/msr; Linux prints the same names at boot, "SEV: Status:"),
// the sev-guest device, and the configfs-tsm report interface.
import * as fs from 'node:fs';

export const MSR_SEV_STATUS = 0xc0010131;

/** SEV_STATUS bits as Linux names them (arch/x86/coco/sev/core.c, sev_status_feat_names). */
export const SEV_STATUS_BITS: Readonly<Record<number, string>> = Object.freeze({
  0: 'SEV',
  1: 'SEV-ES',
  2: 'SEV-SNP',
  3: 'vTom',
  4: 'ReflectVC',
  5: 'RI',
  6: 'AI',
  7: 'DebugSwap',
  8: 'NoHostIBS',
  9: 'BTBIsol',
  10: 'VmplSSS',
  11: 'SecureTSC',
  12: 'VMGExitParam',
  14: 'IBSVirt',
  16: 'VMSARegProt',
  17: 'SMTProt',
  18: 'SecureAVIC',
  23: 'IBPBOnEntry',
});

/** The names of the set bits of a SEV_STATUS value (unnamed bits as `bit N`). */
export function decodeSevStatus(value: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((value >> BigInt(bit)) & 1n) names.push(SEV_STATUS_BITS[bit] ?? `bit ${bit}`);
  }
  return names;
}

export type GuestCheckState = 'PASS' | 'FAIL' | 'SKIP';

export interface GuestCheck {
  name: string;
  state: GuestCheckState;
  detail?: string;
  fix?: string;
}

export interface GuestProbe {
  ok: boolean;
  /** SEV_STATUS, when /dev/cpu/0/msr could be read. */
  sevStatus?: bigint;
  features: string[];
  checks: GuestCheck[];
}

export interface GuestProbeOptions {
  msrPath?: string;
  guestDevice?: string;
  tsmReportDir?: string;
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/** SEV_STATUS through the msr driver (a pread at the MSR index); throws the fs error. */
export function readSevStatus(msrPath = '/dev/cpu/0/msr'): bigint {
  const fd = fs.openSync(msrPath, 'r');
  try {
    const buf = Buffer.alloc(8);
    if (fs.readSync(fd, buf, 0, 8, MSR_SEV_STATUS) !== 8) throw Object.assign(new Error('short read'), { code: 'EIO' });
    return buf.readBigUInt64LE(0);
  } finally {
    fs.closeSync(fd);
  }
}

/** The guest-side checks; none throws. */
export function probeGuest(opts: GuestProbeOptions = {}): GuestProbe {
  const checks: GuestCheck[] = [];
  let sevStatus: bigint | undefined;
  let features: string[] = [];
  try {
    sevStatus = readSevStatus(opts.msrPath);
    features = decodeSevStatus(sevStatus);
  } catch (e) {
    checks.push({
      name: 'SEV_STATUS MSR (0xC0010131)',
      state: 'FAIL',
      detail: `cannot read ${opts.msrPath ?? '/dev/cpu/0/msr'} (${errorCode(e)})`,
      fix: 'load the msr module (modprobe msr) and run as root',
    });
  }
  if (sevStatus !== undefined) {
    for (const [bit, name] of [[0, 'SEV'], [1, 'SEV-ES'], [2, 'SEV-SNP']] as const) {
      const on = ((sevStatus >> BigInt(bit)) & 1n) === 1n;
      checks.push({ name: `${name} active (SEV_STATUS bit ${bit})`, state: on ? 'PASS' : 'FAIL' });
    }
    checks.push({ name: 'guest features', state: 'PASS', detail: `SEV_STATUS 0x${sevStatus.toString(16)}: ${features.join(' ') || 'none'}` });
  }
  const device = opts.guestDevice ?? '/dev/sev-guest';
  try {
    fs.closeSync(fs.openSync(device, 'r+'));
    checks.push({ name: `${device} opens`, state: 'PASS' });
  } catch (e) {
    checks.push({ name: `${device} opens`, state: 'FAIL', detail: errorCode(e), fix: 'load the sev-guest module (modprobe sev-guest) and run as root' });
  }
  const tsm = opts.tsmReportDir ?? '/sys/kernel/config/tsm/report';
  try {
    // open(O_DIRECTORY) rather than stat: what an emulated guest answers too.
    fs.closeSync(fs.openSync(tsm, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
    checks.push({ name: `configfs-tsm (${tsm})`, state: 'PASS' });
  } catch (e) {
    checks.push({ name: `configfs-tsm (${tsm})`, state: 'SKIP', detail: `${errorCode(e)}: reports through /dev/sev-guest only`, fix: 'mount configfs (mount -t configfs none /sys/kernel/config) on Linux ≥ 6.7' });
  }
  const attestation = checks.some((c) => c.state === 'PASS' && (c.name.startsWith(device) || c.name.startsWith('configfs-tsm')));
  const ok = checks.every((c) => c.state !== 'FAIL' || c.name.startsWith(device)) && attestation;
  return { ok, sevStatus, features, checks };
}
