// The host probe behind `sev ok`: the checks an administrator otherwise does by hand before SEV
// guests can run (CPU and CPUID 0x8000001F, kernel and kvm_amd settings, device access, firmware),
// each PASS / FAIL / SKIP with the reason and, on failure, the fix.
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';

import { native } from '../native';
import { SevPlatform } from './platform';

export type ProbeLevel = 'sev' | 'es' | 'snp';
export type ProbeState = 'PASS' | 'FAIL' | 'SKIP';

export interface ProbeCheck {
  id: string;
  name: string;
  /** The lowest level the check matters for: a `sev` probe ignores `es`/`snp` checks. */
  level: ProbeLevel;
  state: ProbeState;
  /** What was found (a value, or why it failed / was skipped). */
  detail?: string;
  /** How to fix a FAIL. */
  fix?: string;
}

export interface ProbeReport {
  level: ProbeLevel;
  /** Generation name when running under the emulator (`sev-emu run`), else null. */
  emulated: string | null;
  ok: boolean;
  checks: ProbeCheck[];
}

const LEVEL_RANK: Record<ProbeLevel, number> = { sev: 0, es: 1, snp: 2 };
const bool = (ok: boolean): ProbeState => (ok ? 'PASS' : 'FAIL');

/** CPUID Fn8000_001F EAX feature bits (AMD APM vol. 3, "Encrypted memory capabilities"). */
const CPUID_SME = 1 << 0;
const CPUID_SEV = 1 << 1;
const CPUID_PAGE_FLUSH_MSR = 1 << 2;
const CPUID_SEV_ES = 1 << 3;
const CPUID_SEV_SNP = 1 << 4;
const CPUID_VMPL = 1 << 5;

/** What the probe reads from the host; injectable so the logic is testable. */
export interface ProbeHost {
  cpuid(leaf: number, subleaf?: number): [number, number, number, number];
  readText(path: string): string | null;
  /** errno of open(path, flags), 0 on success (the fd is closed again). */
  tryOpen(path: string, flags: number): number;
  emulated(): string | null;
}

export const realHost: ProbeHost = {
  cpuid: (leaf, subleaf = 0) => native.cpuid(leaf, subleaf),
  readText(path) {
    try {
      return fs.readFileSync(path, 'utf8');
    } catch {
      return null;
    }
  },
  tryOpen(path, flags) {
    try {
      fs.closeSync(fs.openSync(path, flags));
      return 0;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      const errno = (osConstants.errno as Record<string, number>)[code];
      return errno ? -errno : 1;
    }
  },
  emulated: () => native.emulator(),
};

function vendor(host: ProbeHost): string {
  const [, ebx, ecx, edx] = host.cpuid(0);
  const b = Buffer.alloc(12);
  b.writeUInt32LE(ebx >>> 0, 0);
  b.writeUInt32LE(edx >>> 0, 4);
  b.writeUInt32LE(ecx >>> 0, 8);
  return b.toString('latin1');
}

function brand(host: ProbeHost): string {
  const parts: Buffer[] = [];
  for (let leaf = 0x80000002; leaf <= 0x80000004; leaf++) {
    const b = Buffer.alloc(16);
    host.cpuid(leaf).forEach((r, i) => b.writeUInt32LE(r >>> 0, i * 4));
    parts.push(b);
  }
  return Buffer.concat(parts).toString('latin1').replace(/\0/g, '').trim();
}

/** kvm_amd boolean parameters read "Y"/"N" (newer kernels) or "1"/"0" (older). */
function paramEnabled(text: string | null): boolean | null {
  if (text === null) return null;
  const v = text.trim();
  return v === 'Y' || v === '1';
}

export async function probe(level: ProbeLevel = 'sev', host: ProbeHost = realHost): Promise<ProbeReport> {
  const checks: ProbeCheck[] = [];
  const emulated = host.emulated();
  const add = (c: ProbeCheck) => checks.push(c);

  const v = vendor(host);
  add({ id: 'amd-cpu', name: 'AMD CPU', level: 'sev', state: bool(v === 'AuthenticAMD'), detail: v,
    fix: 'SEV needs an AMD EPYC processor' });
  const b = brand(host);
  add({ id: 'epyc', name: 'EPYC processor', level: 'sev', state: bool(/EPYC/i.test(b)), detail: b || 'unknown',
    fix: 'SEV is available on AMD EPYC server processors only' });

  const maxExt = host.cpuid(0x80000000)[0] >>> 0;
  const [eax, ebx, ecx, edx] = maxExt >= 0x8000001f ? host.cpuid(0x8000001f) : [0, 0, 0, 0];
  const src = emulated ? ` (emulated ${emulated})` : '';
  const biosFix = 'enable SMEE and SEV in the BIOS (SEV ASID count > 0), then reboot';
  add({ id: 'cpuid-sme', name: 'Secure Memory Encryption (SME) in CPUID', level: 'sev',
    state: bool((eax & CPUID_SME) !== 0), detail: `CPUID 0x8000001F EAX=0x${(eax >>> 0).toString(16)}${src}`, fix: biosFix });
  add({ id: 'cpuid-sev', name: 'Secure Encrypted Virtualization (SEV) in CPUID', level: 'sev',
    state: bool((eax & CPUID_SEV) !== 0), fix: biosFix });
  add({ id: 'cpuid-sev-es', name: 'Encrypted State (SEV-ES) in CPUID', level: 'es',
    state: bool((eax & CPUID_SEV_ES) !== 0), fix: 'SEV-ES needs EPYC 7xx2 (Rome) or later; ' + biosFix });
  add({ id: 'cpuid-sev-snp', name: 'Secure Nested Paging (SEV-SNP) in CPUID', level: 'snp',
    state: bool((eax & CPUID_SEV_SNP) !== 0), fix: 'SEV-SNP needs EPYC 7xx3 (Milan) or later; enable SNP and IOMMU in the BIOS' });
  add({ id: 'cpuid-vmpl', name: 'VM Permission Levels', level: 'snp', state: bool((eax & CPUID_VMPL) !== 0),
    detail: `${(ebx >>> 12) & 0xf} VMPLs`, fix: 'needs an SEV-SNP capable processor' });
  const sevCpu = (eax & CPUID_SEV) !== 0;
  const info = (id: string, name: string, detail: string) =>
    add({ id, name, level: 'sev', state: sevCpu ? 'PASS' : 'SKIP', detail: sevCpu ? detail : 'no SEV in CPUID' });
  info('c-bit', 'C-bit location', String(ebx & 0x3f));
  info('phys-reduction', 'Physical address bit reduction', String((ebx >>> 6) & 0x3f));
  info('asids', 'Number of encrypted guests supported simultaneously', String(ecx >>> 0));
  info('min-asid', 'Minimum ASID for SEV-enabled, SEV-ES-disabled guests', String(edx >>> 0));
  info('page-flush', 'Page flush MSR', (eax & CPUID_PAGE_FLUSH_MSR) !== 0 ? 'enabled' : 'disabled');

  // /proc/cpuinfo lists the flags the kernel enabled. Under the emulator it is the emulated
  // EPYC's (native/emu answers the file), so the same checks apply there.
  const cpuinfo = host.readText('/proc/cpuinfo');
  const flags = new Set((cpuinfo?.match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
  for (const [flag, lvl] of [['sme', 'sev'], ['sev', 'sev'], ['sev_es', 'es'], ['sev_snp', 'snp']] as const) {
    add({
      id: `cpuinfo-${flag}`, name: `/proc/cpuinfo flag ${flag}`, level: lvl,
      state: cpuinfo === null ? 'SKIP' : bool(flags.has(flag)),
      detail: cpuinfo === null ? '/proc/cpuinfo unreadable' : emulated ? `emulated ${emulated} /proc/cpuinfo` : undefined,
      fix: `the kernel did not enable ${flag}: check the BIOS settings and the kernel version/config (CONFIG_AMD_MEM_ENCRYPT)`,
    });
  }
  const memFix = 'add mem_encrypt=on to the kernel command line (or build with CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT=y)';
  if (emulated) {
    // The emulated host is an SEV host booted with memory encryption active. Its kernel state
    // shows in its /proc/cpuinfo: Linux lists `sme` only while SME is active (amd.c clears the
    // flag when sme_me_mask is 0). /proc/cmdline is the real kernel's and says nothing about the
    // emulated one, so it is not read here (and the emulator does not fake it for every program).
    const sme = flags.has('sme');
    add({
      id: 'sme-active', name: 'Memory encryption active in the kernel', level: 'sev',
      state: cpuinfo === null ? 'SKIP' : bool(sme),
      detail: cpuinfo === null ? '/proc/cpuinfo unreadable'
        : sme ? 'emulated platform: memory encryption active (sme in /proc/cpuinfo)' : 'emulated platform: no sme in /proc/cpuinfo',
      fix: memFix,
    });
  } else {
    const cmdline = host.readText('/proc/cmdline') ?? '';
    const memEncrypt = cmdline.match(/(?:^|\s)mem_encrypt=(\S+)/)?.[1];
    const smeActive = memEncrypt === 'on' || flags.has('sme') && memEncrypt === undefined;
    add({
      id: 'sme-active', name: 'Memory encryption active in the kernel', level: 'sev',
      state: bool(smeActive || flags.has('sev')),
      detail: memEncrypt ? `mem_encrypt=${memEncrypt}` : 'mem_encrypt not on the kernel command line',
      fix: memFix,
    });
  }

  for (const [param, lvl, label] of [['sev', 'sev', 'SEV'], ['sev_es', 'es', 'SEV-ES'], ['sev_snp', 'snp', 'SEV-SNP']] as const) {
    const val = paramEnabled(host.readText(`/sys/module/kvm_amd/parameters/${param}`));
    add({
      id: `kvm-${param.replace('_', '-')}`, name: `${label} enabled in KVM (kvm_amd.${param})`, level: lvl,
      state: val === null ? 'FAIL' : bool(val),
      detail: val === null ? 'kvm_amd is not loaded or has no such parameter' : val ? 'Y' : 'N',
      fix: `load kvm_amd with ${param}=1 (kernel command line: kvm_amd.${param}=1)`,
    });
  }

  const { O_RDONLY, O_RDWR } = fs.constants;
  const devErr = (path: string, flags: number, name: string, id: string) => {
    const r = host.tryOpen(path, flags);
    add({
      id, name, level: 'sev', state: bool(r === 0),
      detail: r === 0 ? undefined : errnoText(r),
      fix: r === -osConstants.errno.ENOENT
        ? `${path} is missing: load the ${path === '/dev/kvm' ? 'kvm_amd' : 'ccp and kvm_amd'} module(s)`
        : `grant access to ${path} (run as root or add the user to its group)`,
    });
    return r === 0;
  };
  devErr('/dev/kvm', O_RDWR, '/dev/kvm accessible', 'dev-kvm');
  const devPath = process.env.SEV_DEVICE || '/dev/sev';
  const readable = devErr(devPath, O_RDONLY, `${devPath} readable`, 'dev-sev-read');
  devErr(devPath, O_RDWR, `${devPath} writable`, 'dev-sev-write');

  if (readable) {
    try {
      const p = SevPlatform.open({ path: devPath, writable: false });
      try {
        const s = await p.status();
        add({ id: 'firmware', name: 'SEV firmware', level: 'sev', state: 'PASS',
          detail: `API ${s.api.major}.${s.api.minor} build ${s.build}, state ${s.state}${src}` });
        const recent = s.api.major > 0 || s.api.minor >= 16;
        add({ id: 'firmware-api', name: 'Firmware API ≥ 0.16 (GET_ID, attestation)', level: 'sev',
          state: bool(recent), detail: `${s.api.major}.${s.api.minor}`, fix: 'update the SEV firmware (BIOS/AGESA update or /lib/firmware/amd/amd_sev_*.sbin)' });
        add({ id: 'firmware-es', name: 'Firmware configured for SEV-ES', level: 'es', state: bool(s.es),
          fix: 'SEV-ES needs firmware and kvm_amd.sev_es=1' });
        if (LEVEL_RANK[level] >= LEVEL_RANK.snp) await snpFirmwareChecks(p, add, src);
      } finally {
        p.close();
      }
    } catch (e) {
      add({ id: 'firmware', name: 'SEV firmware', level: 'sev', state: 'FAIL', detail: (e as Error).message,
        fix: 'check dmesg for ccp / SEV firmware initialisation errors' });
    }
  } else {
    add({ id: 'firmware', name: 'SEV firmware', level: 'sev', state: 'SKIP', detail: `${devPath} not readable` });
  }

  const relevant = checks.filter((c) => LEVEL_RANK[c.level] <= LEVEL_RANK[level]);
  return { level, emulated, ok: relevant.every((c) => c.state !== 'FAIL'), checks: relevant };
}

/** SNP_PLATFORM_STATUS: SNP initialized by the kernel (which needs the RMP set up by the BIOS) and firmware ≥ 1.51. */
async function snpFirmwareChecks(p: SevPlatform, add: (c: ProbeCheck) => void, src: string): Promise<void> {
  try {
    const s = await p.snpStatus();
    add({ id: 'snp-firmware', name: 'SEV-SNP firmware initialized (SNP_PLATFORM_STATUS)', level: 'snp', state: bool(s.state === 1),
      detail: `API ${s.api.major}.${s.api.minor} build ${s.buildId}, SNP ${s.state === 1 ? 'INIT' : 'UNINIT'}, ${s.guestCount} guests${src}`,
      fix: 'enable SEV-SNP and SNP memory coverage in the BIOS; the kernel then initializes SNP at boot (dmesg: "SEV-SNP API")' });
    add({ id: 'snp-rmp', name: 'Reverse Map Table (RMP) initialized', level: 'snp', state: bool(s.isRmpInitialized),
      fix: 'the BIOS must reserve the RMP (SNP memory coverage enabled); check dmesg for "RMP table"' });
    const recent = s.api.major > 1 || (s.api.major === 1 && s.api.minor >= 51);
    add({ id: 'snp-firmware-api', name: 'SNP firmware API ≥ 1.51 (what Linux requires)', level: 'snp', state: bool(recent),
      detail: `${s.api.major}.${s.api.minor}`, fix: 'update the SEV firmware (/lib/firmware/amd/amd_sev_fam19h_model*.sbin or a BIOS update)' });
  } catch (e) {
    add({ id: 'snp-firmware', name: 'SEV-SNP firmware initialized (SNP_PLATFORM_STATUS)', level: 'snp', state: 'FAIL', detail: (e as Error).message,
      fix: 'a kernel with SEV-SNP host support (6.11+) and SNP-capable firmware' });
  }
}

function errnoText(r: number): string {
  const name = Object.entries(osConstants.errno).find(([, v]) => v === -r)?.[0];
  return name ? `open failed: ${name}` : 'open failed';
}
