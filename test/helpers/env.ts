// Shared test environment facts: where fixtures are, whether /dev/sev is emulated, and how to
// require a device so that suites skip (with a reason) only where that is allowed.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../../lib/native';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const SEV_BIN = path.join(ROOT, 'bin', 'sev.js');
export const SEV_EMU_BIN = path.join(ROOT, 'bin', 'sev-emu.js');

export function fixturesDir(): string {
  return process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures');
}

/** The emulated generation when this process runs under `sev-emu run`, else null. */
export const emulated: string | null = native.emulator();

/**
 * Whether guest memory is really encrypted on this machine: on hardware, and on the emulator's
 * software KVM; not on the emulator with the host's (non-SEV) KVM, which keeps it plaintext so the
 * real KVM can run the guest. Known once /dev/kvm was opened.
 */
export function memoryEncrypted(): boolean {
  return emulated === null || native.kvmBackend() === 'soft';
}

/** True when tests must not skip for a missing device: CI, or an explicit hardware run. */
export const deviceRequired = Boolean(process.env.CI || process.env.SEV_TEST_HW || process.env.SEV_REQUIRE_DEVICE);

/** Destructive commands (reset, key rotation, ownership) run on the emulator, or on hardware when opted in. */
export const destructiveAllowed = emulated !== null || process.env.SEV_TEST_DESTRUCTIVE === '1';

export function devicePath(): string {
  return process.env.SEV_DEVICE || '/dev/sev';
}

/** mocha `before` hook body: skip the suite (naming the device) unless a device is required. */
export function requireSevDevice(ctx: Mocha.Context): void {
  try {
    fs.closeSync(fs.openSync(devicePath(), 'r'));
  } catch (e) {
    const why = `${devicePath()} is not available (${(e as NodeJS.ErrnoException).code}); ` +
      'run `npm test`, which runs this suite under the sev-emu firmware emulator';
    if (deviceRequired) throw new Error(why);
    ctx.skip();
  }
}

/** Runs a command in a child process that inherits this process's emulator (LD_PRELOAD, state). */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

/** Runs the `sev` CLI under the current environment. */
export function sev(args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return run(process.execPath, [SEV_BIN, ...args], env);
}

/** Runs a command under a fresh, separate emulator state (`sev-emu run --temp-state`). */
export function underFreshEmulator(options: string[], cmd: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const clean = { ...process.env, ...env };
  delete clean.LD_PRELOAD;
  delete clean.SEV_EMU_STATE;
  // Nor the guest this suite may run in (sev-emu run --guest): options say what the fresh one is.
  for (const k of Object.keys(clean)) if (k.startsWith('SEV_EMU_GUEST')) delete clean[k];
  return spawnSync(process.execPath, [SEV_EMU_BIN, 'run', '--temp-state', ...options, '--', ...cmd], {
    encoding: 'utf8',
    env: clean,
    timeout: 120_000,
  });
}

/** What `sev-emu info --json` reports about this machine. */
export interface HostFacts {
  /** 'usable', or 'not usable (CODE)'. */
  hostKvm: string;
  /** The KVM vendor module(s) loaded on the host: kvm_amd, kvm_intel, kvm_pvm ('+'-joined if several), or null. */
  hostKvmModule: string | null;
  /** The host CPU's vendor string (GenuineIntel, AuthenticAMD, ...), or null. */
  hostCpuVendor: string | null;
  softKvm: string;
  kvmAuto: string;
}

let hostFactsCache: HostFacts | undefined;

/**
 * The host's KVM and CPU, asked outside the emulator (`sev-emu info`): inside `sev-emu run`,
 * /dev/kvm is answered by the emulator whatever the host has, and /proc/cpuinfo and CPUID
 * describe the emulated EPYC. Asked once per process.
 */
export function hostFacts(): HostFacts {
  if (hostFactsCache) return hostFactsCache;
  const clean = { ...process.env };
  delete clean.LD_PRELOAD;
  delete clean.SEV_EMU_STATE;
  const r = spawnSync(process.execPath, [SEV_EMU_BIN, 'info', '--json'], { encoding: 'utf8', env: clean, timeout: 60_000 });
  hostFactsCache = JSON.parse(r.stdout) as HostFacts;
  return hostFactsCache;
}

/**
 * Whether the host's own /dev/kvm is usable, asked outside the emulator (`sev-emu info`): inside
 * `sev-emu run` the path is answered by the emulator whatever the host has. Null when usable, else why not.
 */
export function hostKvmUnusable(): string | null {
  const report = hostFacts();
  return report.hostKvm === 'usable' ? null : `/dev/kvm ${report.hostKvm}`;
}

/** Which KVM programs started under this emulator get for /dev/kvm (`sev-emu run --kvm`). */
export function emulatorKvm(): 'soft' | 'host' {
  const mode = process.env.SEV_EMU_KVM ?? 'auto';
  if (mode === 'soft' || mode === 'host') return mode;
  return hostKvmUnusable() === null ? 'host' : 'soft';
}

/**
 * The KVM that answers /dev/kvm in this process, where the suites' expectations differ:
 * - 'soft': the emulator's software KVM, modelled on kvm_amd;
 * - 'kvm_amd' (SVM), 'kvm_intel' (VMX): the host's, hardware-assisted;
 * - 'kvm_pvm': the host's PVM (paging-based, no hardware virtualization; it emulates non-64-bit
 *   code with KVM's instruction emulator, in batches).
 * Behaviour common to every x86 KVM (x86.c, emulate.c) is the same for the last three. A host
 * module not listed here has no recorded expectations: the suites that need one fail, naming it.
 */
export type KvmImpl = 'soft' | 'kvm_amd' | 'kvm_intel' | 'kvm_pvm';

export function kvmImpl(): KvmImpl {
  // Outside the emulator (npm run test:hw) /dev/kvm is the host's; inside, `--kvm` decides.
  if (emulated !== null && emulatorKvm() === 'soft') return 'soft';
  const module = hostFacts().hostKvmModule;
  if (module === 'kvm_amd' || module === 'kvm_intel' || module === 'kvm_pvm') return module;
  throw new Error(`the host's /dev/kvm is implemented by ${module ?? 'no known KVM module'} ` +
    `(sev-emu info: host CPU ${hostFacts().hostCpuVendor ?? 'unknown'}): no expectations are recorded for it`);
}

/** Node one-liner runner: executes `code` (CommonJS) with `lib` bound to the compiled library. */
export function nodeScript(code: string): string[] {
  const lib = path.join(ROOT, 'dist', 'lib', 'index.js');
  return [process.execPath, '-e', `const lib = require(${JSON.stringify(lib)});\n${code}`];
}

export function haveCompiler(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Skips the current test or suite, saying why in the output (mocha's skip() prints no reason). */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  console.log(`      skipping: ${reason}`);
  ctx.skip();
}
