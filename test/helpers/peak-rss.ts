// A child process's peak memory, measured from inside it: run as `node --require <this file>`
// with SEV_PEAK_RSS_FILE set, it writes its peak resident set size (getrusage's ru_maxrss, the
// kernel's VmHWM: every page it ever had resident, sampled by nothing, so no peak is missed) in
// KiB to that file when the process exits. `runWithPeakRss` does all of it for a Node script.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ENV = 'SEV_PEAK_RSS_FILE';

if (process.env[ENV] && require.main !== module) {
  const file = process.env[ENV]!;
  process.on('exit', () => fs.writeFileSync(file, String(process.resourceUsage().maxRSS)));
}

export interface PeakRssRun extends SpawnSyncReturns<string> {
  /** Peak RSS in MiB; NaN when the child did not reach its exit handler (killed, crashed). */
  peakMiB: number;
  seconds: number;
}

/**
 * Runs `node [nodeArgs] script args...` with the hook preloaded and returns its output, peak RSS
 * and wall time. The emulator library is not preloaded into it (LD_PRELOAD is dropped): what is
 * measured is the program alone.
 */
export function runWithPeakRss(script: string, args: string[], options: { nodeArgs?: string[]; cwd?: string } = {}): PeakRssRun {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sev-rss-')), 'peak');
  const env: NodeJS.ProcessEnv = { ...process.env, [ENV]: file };
  delete env.LD_PRELOAD;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [...(options.nodeArgs ?? []), '--require', __filename, script, ...args], {
    encoding: 'utf8',
    env,
    cwd: options.cwd,
    maxBuffer: 16 << 20,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let peakMiB = NaN;
  try {
    peakMiB = Number(fs.readFileSync(file, 'utf8')) / 1024;
  } catch {
    // no exit handler ran
  }
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return { ...r, peakMiB, seconds };
}
