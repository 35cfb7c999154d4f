// Differential check of `sev snp measure` against sev-snp-measure (virtee, Python), the
// reference the launch digests are meant to match byte for byte. Not part of `npm test` (the
// reference is not installed in CI):
//   npm run diff:snp-measure -- PATH_TO_SEV_SNP_MEASURE [--cases N] [--seed S] [--keep DIR] [--verbose]
// (or SEV_SNP_MEASURE=PATH). Each case is a random configuration — an OVMF from the fixtures or a
// generated one with a random footer table and SEV metadata, random kernel/initrd/cmdline bytes,
// 1..16 vCPUs, vCPU types/signatures/family-model-stepping, VMM types QEMU/EC2/GCE, guest
// features, a precomputed OVMF hash, SVSM with a variable store size — run through both tools
// with the same flags. Agreement: the same output, or both refusing the input. Exit 1 on any
// disagreement; --keep DIR keeps the inputs of each disagreement with a script to rerun it.
// Inputs where we refuse on purpose what sev-snp-measure computes are not generated: a family
// above 270 or a signature above 32 bits (they do not fit CPUID), 0 vCPUs, a variable store size
// that is not whole pages, and (SEV, SEV-ES) an SEV hashes table area smaller than the table —
// QEMU refuses that launch. (sev-snp-measure refuses --vars-size 0, which we take.)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { guidToBytes, KNOWN_GUIDS } from '../lib/owner/guid';

const ROOT = path.resolve(__dirname, '..', '..');
const SEV_BIN = path.join(ROOT, 'bin', 'sev.js');
const FIXTURES = path.join(process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures'), 'snp', 'measurement');
const PAGE = 4096;

/** xorshift128+: reproducible cases from --seed. */
class Rng {
  private s0: bigint;
  private s1: bigint;
  constructor(seed: number) {
    this.s0 = BigInt(seed) ^ 0x9e3779b97f4a7c15n;
    this.s1 = (BigInt(seed) * 0xbf58476d1ce4e5b9n + 1n) & 0xffffffffffffffffn;
    for (let i = 0; i < 16; i++) this.next();
  }
  next(): bigint {
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x ^= (x << 23n) & 0xffffffffffffffffn;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.s1 + y) & 0xffffffffffffffffn;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Number(this.next() % BigInt(hi - lo + 1));
  }
  chance(p: number): boolean {
    return Number(this.next() % 1000000n) < p * 1000000;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 8) {
      const v = this.next();
      for (let j = 0; j < 8 && i + j < n; j++) b[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
    }
    return b;
  }
}

const u32 = (...values: number[]) => Buffer.concat(values.map((v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}));

/** data ‖ u16 (data + 18) ‖ GUID: one OVMF footer-table entry. */
function footerEntry(guid: string, data: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16LE(data.length + 18);
  return Buffer.concat([data, size, guidToBytes(guid)]);
}

interface GeneratedSection { gpa: number; size: number; type: number }

/**
 * A random OVMF-like image (`pages` pages): footer table with an SEV-ES reset block, an SEV hashes
 * table area and SEV metadata (each optional), and for an SVSM image an SVSM_INFO entry.
 */
function generateImage(rng: Rng, o: { svsm?: boolean; kernelHashes?: boolean } = {}): Buffer {
  const pages = rng.int(1, o.svsm ? 8 : 24);
  const total = pages * PAGE;
  const sections: GeneratedSection[] = [];
  if (rng.chance(0.9)) {
    const count = rng.int(0, 8);
    const types = o.svsm ? [1, 2, 3, 4] : [1, 1, 2, 3, 4, 0x10];
    for (let i = 0; i < count; i++) {
      const type = rng.pick(types);
      const size = type === 0x10 ? PAGE : rng.int(1, type === 1 || type === 4 ? 12 : 2) * PAGE;
      sections.push({ gpa: rng.int(0x100, 0x4000) * PAGE, size, type });
    }
  }
  if (o.kernelHashes && rng.chance(0.8)) sections.splice(rng.int(0, sections.length), 0, { gpa: rng.int(0x100, 0x4000) * PAGE, size: PAGE, type: 0x10 });
  const metadata = Buffer.concat([Buffer.from('ASEV', 'latin1'), u32(16 + 12 * sections.length, 1, sections.length), ...sections.map((s) => u32(s.gpa, s.size, s.type))]);
  const entries: Buffer[] = [];
  if (o.svsm) entries.push(footerEntry(KNOWN_GUIDS.svsmInfo, u32(rng.int(0, total - 1))));
  else if (rng.chance(0.85)) entries.push(footerEntry(KNOWN_GUIDS.sevEsResetBlock, u32(rng.int(0x800000, 0xfffff000) & ~0xf)));
  if (!o.svsm && rng.chance(o.kernelHashes ? 0.95 : 0.5)) {
    // The area lies within one page (real OVMF: 0x1000 bytes at a page boundary + 0xC00).
    const offset = rng.int(0, (PAGE - 176) / 16) * 16;
    entries.push(footerEntry(KNOWN_GUIDS.sevHashTableRv, u32(rng.int(0x100, 0x4000) * PAGE + offset, rng.chance(0.8) ? 0x400 : rng.int(176, 0x1000))));
  }
  const metaEntryIndex = entries.length;
  if (sections.length > 0 || rng.chance(0.1)) entries.push(footerEntry(KNOWN_GUIDS.ovmfSevMetadata, u32(0)));
  const body = Buffer.concat(entries);
  const footer = footerEntry(KNOWN_GUIDS.ovmfTableFooter, Buffer.alloc(0));
  footer.writeUInt16LE(body.length + 18, 0);
  const tail = Buffer.concat([body, footer, rng.bytes(32)]);
  if (tail.length + metadata.length > total) return generateImage(rng, o);
  const image = Buffer.concat([rng.bytes(total - tail.length), tail]);
  const metaStart = rng.int(0, (total - tail.length - metadata.length) >> 2) << 2;
  metadata.copy(image, metaStart);
  if (metaEntryIndex < entries.length) {
    // Patch the metadata entry's offset (from the image's end) now that its place is known.
    const entryStart = total - tail.length + entries.slice(0, metaEntryIndex).reduce((n, e) => n + e.length, 0);
    image.writeUInt32LE(total - metaStart, entryStart);
  }
  return image;
}

const CPU_TYPES = ['EPYC', 'EPYC-v1', 'EPYC-v2', 'EPYC-IBPB', 'EPYC-v3', 'EPYC-v4', 'EPYC-Rome', 'EPYC-Rome-v1', 'EPYC-Rome-v2', 'EPYC-Rome-v3', 'EPYC-Milan', 'EPYC-Milan-v1', 'EPYC-Milan-v2', 'EPYC-Genoa', 'EPYC-Genoa-v1', 'EPYC-Turin'];

function randomCmdline(rng: Rng): string {
  const kind = rng.int(0, 9);
  if (kind === 0) return '';
  if (kind === 1) return 'console=ttyS0 root=/dev/vda1 rw — ünïcode ✓';
  const chars = ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=,._/:-"\'';
  let s = '';
  for (let i = rng.int(1, 200); i > 0; i--) s += chars[rng.int(0, chars.length - 1)];
  return s;
}

interface Case {
  /** Flags common to both tools, with our spelling; `mode` and `vmm` are mapped per tool. */
  mode: 'snp' | 'seves' | 'sev' | 'snp-svsm';
  vmm?: 'qemu' | 'ec2' | 'gce';
  flags: string[];
  files: Record<string, Buffer>;
  summary: string;
}

function fixture(name: string): Buffer | undefined {
  const file = path.join(FIXTURES, name);
  return fs.existsSync(file) ? fs.readFileSync(file) : undefined;
}

function randomCase(rng: Rng): Case {
  const mode = rng.pick(['snp', 'snp', 'snp', 'snp', 'seves', 'seves', 'sev', 'snp-svsm'] as const);
  const files: Record<string, Buffer> = {};
  const flags: string[] = [];
  const notes: string[] = [mode];
  const kernel = mode !== 'snp-svsm' && rng.chance(0.55);
  const pickOvmf = (): Buffer => {
    const choice = rng.int(0, 9);
    const name = choice <= 2 ? 'ovmf_AmdSev_suffix.bin' : choice === 3 ? 'ovmf_OvmfX64_suffix.bin' : choice === 4 ? 'sev-snp-measure_svsm_ovmf.fd' : undefined;
    const data = name === undefined ? undefined : fixture(name);
    notes.push(data ? name! : 'generated OVMF');
    return data ?? generateImage(rng, { kernelHashes: kernel });
  };
  files.ovmf = pickOvmf();
  flags.push('--ovmf', '@ovmf');
  if (mode !== 'sev') {
    const vcpus = rng.chance(0.25) ? 1 : rng.int(1, 16);
    flags.push('--vcpus', String(vcpus));
    notes.push(`${vcpus} vCPUs`);
  }
  let vmm: Case['vmm'];
  if (mode === 'snp' || mode === 'seves') {
    vmm = rng.pick(['qemu', 'qemu', 'qemu', 'ec2', 'gce'] as const);
    if (vmm !== 'qemu' || rng.chance(0.3)) notes.push(`VMM ${vmm}`);
  }
  if (mode !== 'sev') {
    const cpu = rng.int(0, mode === 'snp-svsm' || vmm === 'qemu' ? 18 : 21);
    if (cpu < 9) {
      const t = rng.pick(CPU_TYPES);
      flags.push('--vcpu-type', t);
      notes.push(t);
    } else if (cpu < 13) {
      const sig = rng.chance(0.5) ? rng.int(0, 0xffffffff) : rng.int(0, 0xfffff);
      flags.push('--vcpu-sig', rng.chance(0.5) ? `0x${sig.toString(16)}` : String(sig));
      notes.push(`sig 0x${sig.toString(16)}`);
    } else if (cpu < 18) {
      const f = [rng.int(0, 270), rng.int(0, 255), rng.int(0, 15)];
      flags.push('--vcpu-family', String(f[0]), '--vcpu-model', String(f[1]), '--vcpu-stepping', String(f[2]));
      notes.push(`family/model/stepping ${f.join('/')}`);
    } else {
      notes.push('no vCPU type');
    }
  }
  if (mode === 'snp' && rng.chance(0.5)) {
    const features = rng.chance(0.7) ? 1n | (BigInt(rng.int(0, 0xffff)) & ~0x2000n) : rng.next();
    flags.push('--guest-features', `0x${features.toString(16)}`);
    notes.push(`features 0x${features.toString(16)}`);
  }
  if (mode === 'snp' && rng.chance(0.1)) {
    flags.push('--snp-ovmf-hash', rng.bytes(48).toString('hex'));
    notes.push('OVMF hash');
  }
  if (kernel) {
    files.kernel = rng.chance(0.15) ? Buffer.alloc(0) : rng.bytes(rng.int(1, 65536));
    flags.push('--kernel', '@kernel');
    notes.push(`kernel ${files.kernel.length} B`);
    if (rng.chance(0.5)) {
      files.initrd = rng.bytes(rng.int(0, 100000));
      flags.push('--initrd', '@initrd');
      notes.push(`initrd ${files.initrd.length} B`);
    }
    if (rng.chance(0.7)) {
      const cmdline = randomCmdline(rng);
      flags.push(`--append=${cmdline}`);
      notes.push(`cmdline ${JSON.stringify(cmdline).slice(0, 40)}`);
    }
  }
  if (mode === 'snp-svsm') {
    files.svsm = (rng.chance(0.5) && fixture('sev-snp-measure_svsm.bin')) || generateImage(rng, { svsm: true });
    flags.push('--svsm', '@svsm');
    const vars = rng.int(1, 128) * PAGE;
    if (rng.chance(0.5)) flags.push('--vars-size', String(vars));
    else {
      files.vars = Buffer.alloc(vars);
      flags.push('--vars-file', '@vars');
    }
    notes.push(`vars ${vars} B`);
  }
  if (rng.chance(0.3)) flags.push('--output-format', 'base64');
  return { mode, vmm, flags, files, summary: notes.join(', ') };
}

interface Outcome { status: number | null; stdout: string; stderr: string }

function runBoth(c: Case, dir: string, reference: string): { ours: Outcome; theirs: Outcome; ourArgs: string[]; theirArgs: string[] } {
  const paths: Record<string, string> = {};
  for (const [name, data] of Object.entries(c.files)) {
    paths[name] = path.join(dir, name);
    fs.writeFileSync(paths[name], data);
  }
  const flags = c.flags.map((f) => (f.startsWith('@') ? paths[f.slice(1)] : f));
  const ourArgs = ['snp', 'measure', '--mode', c.mode, ...flags, ...(c.vmm ? ['--vmm-type', c.vmm] : [])];
  const theirMode = c.mode === 'snp-svsm' ? 'snp:svsm' : c.mode;
  const theirArgs = [path.join(reference, 'sev-snp-measure.py'), '--mode', theirMode, ...flags, ...(c.vmm ? ['--vmm-type', c.vmm === 'qemu' ? 'QEMU' : c.vmm] : [])];
  const run = (cmd: string, args: string[]): Outcome => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: dir, timeout: 120_000 });
    return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
  };
  return { ours: run(process.execPath, [SEV_BIN, ...ourArgs]), theirs: run('python3', theirArgs), ourArgs, theirArgs };
}

function main(argv: string[]): number {
  let reference = process.env.SEV_SNP_MEASURE;
  let cases = 200;
  let seed = Date.now() % 1_000_000;
  let keep: string | undefined;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cases') cases = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--keep') keep = argv[++i];
    else if (a === '--verbose') verbose = true;
    else if (!a.startsWith('--')) reference = a;
    else {
      console.error(`unknown option ${a}`);
      return 2;
    }
  }
  if (!reference || !fs.existsSync(path.join(reference, 'sev-snp-measure.py'))) {
    console.error('usage: npm run diff:snp-measure -- PATH_TO_SEV_SNP_MEASURE [--cases N] [--seed S] [--keep DIR] [--verbose]');
    console.error('       (PATH: a checkout of github.com/virtee/sev-snp-measure holding sev-snp-measure.py; or set SEV_SNP_MEASURE)');
    return 2;
  }
  if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed)) {
    console.error('--cases and --seed take integers');
    return 2;
  }
  if (!fs.existsSync(FIXTURES)) console.log(`(fixtures not found at ${FIXTURES}: generated OVMF images only)`);
  const rng = new Rng(seed);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'diff-snp-measure-'));
  const tally = { same: 0, bothRefused: 0, disagree: 0 };
  const byMode: Record<string, { same: number; bothRefused: number; disagree: number }> = {};
  try {
    for (let i = 1; i <= cases; i++) {
      const c = randomCase(rng);
      const dir = path.join(work, String(i));
      fs.mkdirSync(dir);
      const { ours, theirs, ourArgs, theirArgs } = runBoth(c, dir, reference);
      const m = (byMode[c.mode] ??= { same: 0, bothRefused: 0, disagree: 0 });
      let verdict: 'same' | 'bothRefused' | 'disagree';
      if (ours.status === 0 && theirs.status === 0) verdict = ours.stdout === theirs.stdout ? 'same' : 'disagree';
      else verdict = ours.status !== 0 && theirs.status !== 0 ? 'bothRefused' : 'disagree';
      tally[verdict]++;
      m[verdict]++;
      if (verdict === 'disagree') {
        console.log(`✗ case ${i}: ${c.summary}`);
        console.log(`    ours   (exit ${ours.status}): ${ours.stdout || ours.stderr}`);
        console.log(`    theirs (exit ${theirs.status}): ${theirs.stdout || theirs.stderr.split('\n').slice(-1)[0]}`);
        if (keep) {
          const kept = path.join(keep, `case-${seed}-${i}`);
          fs.mkdirSync(kept, { recursive: true });
          for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(kept, f));
          const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
          const local = (s: string) => s.split(dir).join('.');
          fs.writeFileSync(path.join(kept, 'rerun.sh'), `cd "$(dirname "$0")"\nnode ${quote(SEV_BIN)} ${ourArgs.map(local).map(quote).join(' ')}\npython3 ${theirArgs.map(local).map(quote).join(' ')}\n`);
        }
      } else if (verbose) {
        console.log(`${verdict === 'same' ? '✓' : '·'} case ${i}: ${c.summary}${verdict === 'bothRefused' ? ` — both refuse (ours: ${ours.stderr.split('\n')[0]})` : ''}`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`\nseed ${seed}, ${cases} cases: ${tally.same} same digest, ${tally.bothRefused} refused by both, ${tally.disagree} disagreements`);
  for (const [mode, m] of Object.entries(byMode)) console.log(`  ${mode.padEnd(9)} ${m.same} same, ${m.bothRefused} both refused, ${m.disagree} disagree`);
  return tally.disagree === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
