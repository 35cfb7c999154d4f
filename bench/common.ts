// What the benchmarks share: where the project is, medians, and running a child under the emulator.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs `cmd` under `sev-emu run --temp-state [options]`; its last stdout line is its JSON result. */
export function underEmulator<T>(cmd: string[], options: string[] = []): T {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sev-emu.js'), 'run', '--temp-state', ...options, '--', ...cmd], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/** `sev-emu info --json`, asked outside any emulator: which KVMs this machine offers. */
export function kvmBackends(): { backends: ('soft' | 'host')[]; missing: string[] } {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sev-emu.js'), 'info', '--json'], { encoding: 'utf8', env });
  const info = JSON.parse(r.stdout) as { hostKvm: string; softKvm: string };
  const backends: ('soft' | 'host')[] = [];
  const missing: string[] = [];
  if (info.softKvm === 'available') backends.push('soft');
  else missing.push(`software KVM: ${info.softKvm}`);
  if (info.hostKvm === 'usable') backends.push('host');
  else missing.push(`host KVM: /dev/kvm ${info.hostKvm}`);
  return { backends, missing };
}

export interface BenchOptions {
  /** A quick run (CI): fewer and shorter repetitions; targets are shown but not enforced. */
  short?: boolean;
}

/** One row of a results table: a figure of node-sev beside its limit or peer, or why it is missing. */
export type BenchRow =
  | {
      scenario: string;
      unit: string;
      value: number;
      reference: number;
      target: number;
      ratio?: number;
      /** The smallest and largest ratio over the runs the median came from. */
      ratioRange?: [number, number];
      /** node-sev's peak resident set size (MiB) and the most it may be: the row fails above it. */
      peakRssMiB?: number;
      peakRssLimitMiB?: number;
    }
  | { scenario: string; why: string };

/** A measured row's ratio: its own when it has one (e.g. a median of paired runs), else value / reference. */
export function rowRatio(row: BenchRow): number | undefined {
  return 'why' in row ? undefined : row.ratio ?? row.value / row.reference;
}

/** Whether a measured row meets its target (ratio ≥ target). */
export function rowPasses(row: BenchRow): boolean | undefined {
  if ('why' in row) return undefined;
  if (row.peakRssMiB !== undefined && row.peakRssLimitMiB !== undefined && !(row.peakRssMiB <= row.peakRssLimitMiB)) return false;
  return rowRatio(row)! >= row.target;
}

/** Prints rows as the table `scenario | node-sev | limit/peer | ratio | target | pass`, or as JSON. */
export function printRows(title: string, rows: BenchRow[], json = false): void {
  if (json) {
    const out = rows.map((r) => ('why' in r ? r : { ...r, ratio: rowRatio(r), pass: rowPasses(r) }));
    console.log(JSON.stringify({ title, rows: out }));
    return;
  }
  const num = (x: number, unit: string) => `${x >= 100 ? x.toFixed(0) : x.toPrecision(3)}${unit}`;
  // Optional columns, shown when some row has them: the ratio's min–max, node-sev's peak RSS.
  const ranges = rows.some((r) => !('why' in r) && r.ratioRange);
  const rss = rows.some((r) => !('why' in r) && r.peakRssMiB !== undefined);
  const cells = rows.map((r) => {
    if ('why' in r) return [r.scenario, '—', '—', '—', ...(ranges ? ['—'] : []), '—', ...(rss ? ['—'] : []), `not measured: ${r.why}`];
    const range = r.ratioRange ? `${r.ratioRange[0].toFixed(2)}–${r.ratioRange[1].toFixed(2)}` : '';
    const peak = r.peakRssMiB === undefined ? '' : `${r.peakRssMiB.toFixed(1)} MiB${r.peakRssLimitMiB === undefined ? '' : ` (≤ ${r.peakRssLimitMiB})`}`;
    return [r.scenario, num(r.value, r.unit), num(r.reference, r.unit), rowRatio(r)!.toFixed(3), ...(ranges ? [range] : []), `≥ ${r.target}`, ...(rss ? [peak] : []), rowPasses(r) ? 'yes' : 'NO'];
  });
  const header = ['scenario', 'node-sev', 'limit/peer', 'ratio', ...(ranges ? ['min–max'] : []), 'target', ...(rss ? ['peak RSS'] : []), 'pass'];
  // The last column is not padded, so a long "not measured" reason does not widen the table.
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join(' | ');
  console.log(`\n${title}`);
  console.log(line(header));
  for (const c of cells) console.log(line(c));
}
