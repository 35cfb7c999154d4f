// Where the real AMD certificates are (never copied into the repo) and how a suite that needs
// them behaves when they are absent: fail in CI, skip with the reason elsewhere.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Generation } from '../../lib/certs';

/** Repository root (this file runs from dist/test/certs). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');

export function fixturesDir(): string {
  return process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures');
}

export const BUILTIN_GENERATIONS: readonly Generation[] = ['naples', 'rome', 'milan', 'genoa', 'turin'];
export const PLATFORM_GENERATIONS = ['naples', 'rome'] as const;
export const PLATFORM_CERTS = ['cek', 'pek', 'oca', 'pdh'] as const;

export function fixturePath(...parts: string[]): string {
  return path.join(fixturesDir(), 'amd', ...parts);
}

export function readFixture(...parts: string[]): Buffer {
  return fs.readFileSync(fixturePath(...parts));
}

/** mocha `before` body: the AMD fixtures must be there (CI), or the suite skips saying why. */
export function requireFixtures(ctx: Mocha.Context): void {
  const probe = fixturePath('builtin', 'rome', 'ark.cert');
  if (fs.existsSync(probe)) return;
  const why = `AMD certificate fixtures not found at ${path.join(fixturesDir(), 'amd')} ` +
    '(set SEV_FIXTURES to the fixtures directory)';
  if (process.env.CI) throw new Error(why);
  console.warn(`      skipped: ${why}`);
  ctx.skip();
}

/** The real chain of a generation: platform certs plus that generation's builtin ASK/ARK. */
export function realChain(gen: (typeof PLATFORM_GENERATIONS)[number]): Record<'pdh' | 'pek' | 'oca' | 'cek' | 'ask' | 'ark', Buffer> {
  return {
    pdh: readFixture(gen, 'pdh.cert'),
    pek: readFixture(gen, 'pek.cert'),
    oca: readFixture(gen, 'oca.cert'),
    cek: readFixture(gen, 'cek.cert'),
    ask: readFixture('builtin', gen, 'ask.cert'),
    ark: readFixture('builtin', gen, 'ark.cert'),
  };
}
