// Where the sevctl conformance data lives (../shared/fixtures or SEV_FIXTURES) and how owner
// suites run the CLI. A missing fixture directory fails in CI and skips elsewhere, saying why.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const SEV_BIN = path.join(ROOT, 'bin', 'sev.js');

export function sevctlFixtures(): string {
  return path.join(process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures'), 'sevctl');
}

/** `before` hook body: fail (CI) or skip (elsewhere) when the sevctl fixtures are absent. */
export function requireSevctlFixtures(ctx: Mocha.Context): void {
  const dir = sevctlFixtures();
  if (fs.existsSync(path.join(dir, 'vectors.json'))) return;
  const why = `sevctl fixtures not found at ${dir} (set SEV_FIXTURES to the shared fixtures directory)`;
  if (process.env.CI) throw new Error(why);
  console.log(`      skipped: ${why}`);
  ctx.skip();
}

/** A fixture file's path (relative to the sevctl folder) or its contents. */
export const fixture = (rel: string) => path.join(sevctlFixtures(), rel);
export const readFixture = (rel: string) => fs.readFileSync(fixture(rel));

/** The OVMF image sevctl's tests use. */
export const OVMF = 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9';

/** Runs `node bin/sev.js args...` from the fixtures folder (so relative paths work). */
export function sev(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [SEV_BIN, ...args], { encoding: 'utf8', cwd: sevctlFixtures(), timeout: 60_000 });
}

/** Turns a vectors.json `args` object into sevctl-style flags (arrays repeat the flag). */
export function flags(args: Record<string, string | number | string[]>): string[] {
  return Object.entries(args).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [`--${k}`, x]) : [`--${k}`, String(v)]));
}

export interface Vectors {
  measurement_build: Array<{ name: string; args: Record<string, string>; expected: string }>;
  secret_build: Array<{ name: string; args: Record<string, string | string[]>; expected_header_b64?: string; expected_payload_b64?: string; expected_payload_length?: number }>;
  vmsa_build: Array<{ args: Record<string, string | number>; expected_file: string }>;
}

/** vectors.json, or null when the fixtures are absent. */
export function tryLoadVectors(): Vectors | null {
  const file = fixture('vectors.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Vectors) : null;
}
