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
