// Start-up: `sev show version` and `sev ok`, whole process from spawn to exit, against a bare
// `node -e 0` (the floor: nothing of node-sev loaded), all run by one child under `sev-emu run`
// so every process pays the same preloaded emulator, alternating, median of N runs
// (BENCH_STARTUP_RUNS, default 21). Target: ≤ 1.5× the bare node, shown as the ratio
// node / sev ≥ 0.667.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { type BenchOptions, type BenchRow, median, ROOT, underEmulator } from './common';

const TARGET = 1 / 1.5;
const SEV_BIN = path.join(ROOT, 'bin', 'sev.js');

const COMMANDS: Record<string, string[]> = {
  'node -e 0': ['-e', '0'],
  'sev show version': [SEV_BIN, 'show', 'version'],
  'sev ok': [SEV_BIN, 'ok'],
};

/** Under the emulator: times each command `runs` times, interleaved; prints {name: [ms...]}. */
function child(runs: number): void {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(COMMANDS).map((k) => [k, []]));
  for (let i = -2; i < runs; i++) {
    // Two warm-up rounds (page cache, the addon's first load), then the timed ones.
    for (const [name, args] of Object.entries(COMMANDS)) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // `sev ok` exits 1 when a check fails (no SEV CPU flag on this host): it still ran to the end.
      if (r.status !== 0 && !(name === 'sev ok' && r.status === 1)) throw new Error(`${name} failed (${r.status}): ${r.stderr}`);
      if (i >= 0) times[name].push(ms);
    }
  }
  process.stdout.write(JSON.stringify(times) + '\n');
}

export function startupBench(options: BenchOptions): BenchRow[] {
  const runs = options.short ? 3 : Number(process.env.BENCH_STARTUP_RUNS ?? 21);
  const times = underEmulator<Record<string, number[]>>([process.execPath, __filename, '--child', String(runs)]);
  const floor = times['node -e 0'];
  return ['sev show version', 'sev ok'].map((name) => {
    const ratios = times[name].map((t, i) => floor[i] / t);
    return {
      scenario: `${name} start-up vs node -e 0 (ratio node/sev; ≤ 1.5×)`,
      unit: ' ms',
      value: median(times[name]),
      reference: median(floor),
      ratio: median(ratios),
      ratioRange: [Math.min(...ratios), Math.max(...ratios)] as [number, number],
      target: Number(TARGET.toFixed(3)),
    };
  });
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    child(Number(process.argv[3]));
  } else {
    const { printRows } = require('./common') as typeof import('./common');
    printRows('Start-up vs bare node', startupBench({ short: process.argv.includes('--short') }), process.argv.includes('--json'));
  }
}
