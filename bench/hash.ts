// Owner-side hashing against `openssl dgst` on the same files, in the same run, page cache warm for
// both (each command runs once before it is timed):
//   measurement build   `sev measurement build` (SEV hashes table: SHA-256 of kernel and initrd)
//                       end to end, process start included, vs `openssl dgst -sha256 kernel initrd`;
//   snp measure         `sev snp measure --kernel --initrd` end to end (the kernel hashes are
//                       SHA-256 here too, the GCTX chain SHA-384 over the OVMF pages) vs the same;
//   OVMF hash           the SNP OVMF hash (GCTX chain: SHA-384 of each 4 KiB page, then of its
//                       PAGE_INFO) of a firmware image as large as the input, through the library
//                       (calcSnpOvmfHash, file read included; the CLI reads firmware of at most
//                       16 MiB) vs `openssl dgst -sha384` of the file.
// Each figure is a throughput (bytes hashed / wall time); the ratio is openssl's time over
// node-sev's, the median of per-run ratios (neighbouring runs see the same machine load), with
// min–max. The CLI rows also show the child's peak RSS (getrusage maxrss, ≤ 64 MiB whatever the
// size). Sizes: BENCH_HASH_SIZES_MIB (default 64,256,1024: a kernel and an initrd of that size
// each), BENCH_REPS runs (default 3).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { runWithPeakRss } from '../test/helpers/peak-rss';
import { type BenchOptions, type BenchRow, median, printRows, ROOT, rowPasses } from './common';

const MiB = 1 << 20;
const TARGET = 0.9;
const PEAK_RSS_MIB = 64;
const SEV_BIN = path.join(ROOT, 'bin', 'sev.js');
const OVMF_SUFFIX = path.join(process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures'), 'snp', 'measurement', 'ovmf_AmdSev_suffix.bin');
const TIK = Buffer.from('0123456789abcdef').toString('base64');

function openssl(algorithm: 'sha256' | 'sha384', files: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('openssl', ['dgst', `-${algorithm}`, ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl dgst failed: ${r.error ?? r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function sev(args: string[]): { seconds: number; peakMiB: number } {
  const r = runWithPeakRss(SEV_BIN, args);
  if (r.status !== 0) throw new Error(`sev ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { seconds: r.seconds, peakMiB: r.peakMiB };
}

/** The OVMF-hash child: reads the image and computes its SNP OVMF hash; prints the seconds. */
function ovmfChild(file: string): void {
  const { calcSnpOvmfHash } = require(path.join(ROOT, 'dist', 'lib', 'snp', 'measurement'));
  const t0 = process.hrtime.bigint();
  calcSnpOvmfHash(fs.readFileSync(file));
  process.stdout.write(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }) + '\n');
}

function ovmfHash(file: string): number {
  const r = spawnSync(process.execPath, [__filename, '--ovmf-child', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`OVMF hash child failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { seconds: number }).seconds;
}

interface Side {
  name: string;
  run: () => { seconds: number; peakMiB?: number };
}

/** Runs both sides `reps` times, alternating, after one warm-up each; a row from their medians. */
function compare(scenario: string, bytes: number, node: Side, ref: Side, reps: number, rssLimit?: number): BenchRow {
  node.run();
  ref.run(); // warm the page cache and the binaries for both
  const n: number[] = [];
  const r: number[] = [];
  let peak = 0;
  for (let i = 0; i < reps; i++) {
    const a = node.run();
    n.push(a.seconds);
    peak = Math.max(peak, a.peakMiB ?? 0);
    r.push(ref.run().seconds);
  }
  const ratios = n.map((t, i) => r[i] / t);
  return {
    scenario,
    unit: ' MB/s',
    value: bytes / median(n) / 1e6,
    reference: bytes / median(r) / 1e6,
    ratio: median(ratios),
    ratioRange: [Math.min(...ratios), Math.max(...ratios)],
    target: TARGET,
    ...(rssLimit === undefined ? {} : { peakRssMiB: peak, peakRssLimitMiB: rssLimit }),
  };
}

function writeFile(file: string, bytes: number, suffix?: Buffer): void {
  const fd = fs.openSync(file, 'w');
  const block = randomBytes(MiB);
  const body = bytes - (suffix?.length ?? 0);
  for (let off = 0; off < body; off += MiB) fs.writeSync(fd, block, 0, Math.min(MiB, body - off));
  if (suffix) fs.writeSync(fd, suffix);
  fs.closeSync(fd);
}

/** The owner-side hashing rows. */
export function hashBench(options: BenchOptions): BenchRow[] {
  if (!fs.existsSync(OVMF_SUFFIX)) return [{ scenario: 'owner-side hashing', why: `the AmdSev OVMF fixture is not at ${OVMF_SUFFIX} (set SEV_FIXTURES)` }];
  const sizes = (process.env.BENCH_HASH_SIZES_MIB ?? (options.short ? '8' : '64,256,1024')).split(',').map(Number);
  const reps = options.short ? 1 : Number(process.env.BENCH_REPS ?? 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bench-hash-'));
  const rows: BenchRow[] = [];
  try {
    const ovmf = fs.readFileSync(OVMF_SUFFIX);
    for (const mib of sizes) {
      const kernel = path.join(dir, 'kernel');
      const initrd = path.join(dir, 'initrd');
      writeFile(kernel, mib * MiB);
      writeFile(initrd, mib * MiB);
      const images = ['--kernel', kernel, '--initrd', initrd];
      const sha256Both: Side = { name: 'openssl', run: () => ({ seconds: openssl('sha256', [kernel, initrd]) }) };
      const build = ['measurement', 'build', '--api-major', '1', '--api-minor', '49', '--build-id', '6', '--policy', '1', '--tik', TIK, '--nonce', TIK, '--firmware', OVMF_SUFFIX, ...images];
      rows.push(compare(`measurement build, kernel + initrd ${mib} MiB each, vs openssl dgst -sha256`, 2 * mib * MiB, { name: 'sev', run: () => sev(build) }, sha256Both, reps, PEAK_RSS_MIB));
      const snp = ['snp', 'measure', '--ovmf', OVMF_SUFFIX, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', ...images];
      rows.push(compare(`snp measure, kernel + initrd ${mib} MiB each, vs openssl dgst -sha256`, 2 * mib * MiB, { name: 'sev', run: () => sev(snp) }, sha256Both, reps, PEAK_RSS_MIB));
      fs.rmSync(kernel);
      fs.rmSync(initrd);
      const firmware = path.join(dir, 'ovmf.fd');
      writeFile(firmware, mib * MiB, ovmf);
      rows.push(compare(`SNP OVMF hash (library, GCTX page chain), ${mib} MiB image, vs openssl dgst -sha384`, mib * MiB, { name: 'lib', run: () => ({ seconds: ovmfHash(firmware) }) }, { name: 'openssl', run: () => ({ seconds: openssl('sha384', [firmware]) }) }, reps));
      fs.rmSync(firmware);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module) {
  if (process.argv[2] === '--ovmf-child') {
    ovmfChild(process.argv[3]);
  } else {
    const short = process.argv.includes('--short');
    const rows = hashBench({ short });
    printRows('Owner-side hashing vs openssl dgst on the same files (page cache warm)', rows, process.argv.includes('--json'));
    process.exitCode = short || rows.every((r) => rowPasses(r) !== false) ? 0 : 1;
  }
}
