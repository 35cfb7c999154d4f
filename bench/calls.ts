// Call overhead: a synchronous PLATFORM_STATUS from JS (SevPlatform.statusSync, the whole typed
// result built) against the same ioctl from C (bench/status_ref.c), both under the same emulator,
// alternating runs. Each side times batches of 10 calls between two clock readings and reports
// the median per-call time over BENCH_CALLS calls (default 10,000); the figure is the median of
// the per-run ratios C / JS over BENCH_REPS runs. Target: JS ≤ 1.5× C (ratio ≥ 0.667).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { type BenchOptions, type BenchRow, median, ROOT, underEmulator } from './common';

const BATCH = 10;
const TARGET = 1 / 1.5;

/** The Node side, under the emulator. */
function nodeChild(calls: number): void {
  const { SevPlatform } = require(path.join(ROOT, 'dist', 'lib', 'platform', 'platform'));
  const platform = SevPlatform.open({ writable: false });
  for (let i = 0; i < 1000; i++) platform.statusSync(); // warm up (JIT), as the C loop does
  const batches = Math.floor(calls / BATCH);
  const per = new Float64Array(batches);
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) platform.statusSync();
    per[b] = Number(process.hrtime.bigint() - t0) / BATCH;
  }
  platform.close();
  per.sort();
  process.stdout.write(JSON.stringify({ calls: batches * BATCH, p50Ns: per[batches >> 1] }) + '\n');
}

export function callsBench(options: BenchOptions): BenchRow[] {
  const calls = Number(process.env.BENCH_CALLS ?? 10000);
  const reps = options.short ? 1 : Number(process.env.BENCH_REPS ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bench-calls-'));
  try {
    const ref = path.join(dir, 'status_ref');
    execFileSync('cc', ['-O2', '-o', ref, path.join(ROOT, 'bench', 'status_ref.c')]);
    const c: number[] = [];
    const js: number[] = [];
    for (let i = 0; i < reps; i++) {
      c.push(underEmulator<{ p50Ns: number }>([ref, String(calls)]).p50Ns);
      js.push(underEmulator<{ p50Ns: number }>([process.execPath, __filename, '--child', String(calls)]).p50Ns);
    }
    const ratios = js.map((t, i) => c[i] / t);
    return [
      {
        scenario: `PLATFORM_STATUS sync from JS vs C, p50 of ${calls} calls (ratio C/JS; ≤ 1.5×)`,
        unit: ' µs',
        value: median(js) / 1000,
        reference: median(c) / 1000,
        ratio: median(ratios),
        ratioRange: [Math.min(...ratios), Math.max(...ratios)],
        target: Number(TARGET.toFixed(3)),
      },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    nodeChild(Number(process.argv[3]));
  } else {
    const { printRows } = require('./common') as typeof import('./common');
    printRows('Call overhead', callsBench({ short: process.argv.includes('--short') }), process.argv.includes('--json'));
  }
}
