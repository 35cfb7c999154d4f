// Property tests: every parser and the chain verifier, fed random bytes and mutated real
// certificates, either accept the input or reject it with a SevCertificateError — never any other
// exception. Whatever is accepted re-encodes to the same bytes.
import * as assert from 'node:assert/strict';

import fc from 'fast-check';

import {
  CaCertificate,
  parseAskArk,
  SevCertificate,
  splitAskArk,
  splitChainFile,
  splitPdhExportChain,
  toPublicKey,
  verifyAskArk,
  verifyChain,
} from '../../lib/certs/index';
import { SevCertificateError } from '../../lib/errors';
import { BUILTIN_GENERATIONS, readFixture, realChain, requireFixtures } from './fixtures';

const RUNS = Number(process.env.SEV_FUZZ_RUNS ?? 200);
const INTERESTING_U32 = [0, 1, 2, 3, 0x13, 0x100, 0x101, 0x102, 0x103, 0x800, 0x1000, 0x1001, 0x1002, 0x1003, 0x1004, 0x7fffffff, 0xffffffff];

/** Runs `fn`; returns what it returned, or undefined when it threw a SevCertificateError. Anything else fails. */
function acceptOrReject<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SevCertificateError) return undefined;
    throw new assert.AssertionError({ message: `expected a SevCertificateError, got ${(e as Error)?.stack ?? String(e)}` });
  }
}

/** Arbitrary mutations of a real certificate: truncation, extension, bit flips, field rewrites, random windows. */
function mutationsOf(base: Buffer): fc.Arbitrary<Buffer> {
  const n = base.length;
  return fc.oneof(
    fc.nat({ max: n }).map((len) => Buffer.from(base.subarray(0, len))),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => Buffer.concat([base, extra])),
    fc.array(fc.nat({ max: n * 8 - 1 }), { minLength: 1, maxLength: 8 }).map((bits) => {
      const copy = Buffer.from(base);
      for (const bit of bits) copy[bit >> 3] ^= 1 << (bit & 7);
      return copy;
    }),
    fc.tuple(fc.nat({ max: (n >> 2) - 1 }), fc.constantFrom(...INTERESTING_U32)).map(([word, value]) => {
      const copy = Buffer.from(base);
      copy.writeUInt32LE(value, word * 4);
      return copy;
    }),
    fc.tuple(fc.nat({ max: n - 1 }), fc.uint8Array({ minLength: 1, maxLength: 96 })).map(([at, bytes]) => {
      const copy = Buffer.from(base);
      Buffer.from(bytes).copy(copy, at);
      return copy;
    }),
  );
}

function sizedRandom(sizes: number[]): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 4096 }),
    fc.constantFrom(...sizes).chain((size) => fc.uint8Array({ minLength: size, maxLength: size })),
  ).map((a) => Buffer.from(a));
}

describe('certs: property tests (fast-check)', function () {
  this.timeout(120_000);
  let sevCerts: Buffer[];
  let caCerts: Buffer[];
  before(function () {
    requireFixtures(this);
    sevCerts = (['naples', 'rome'] as const).flatMap((g) => ['cek', 'pek', 'oca', 'pdh'].map((n) => readFixture(g, `${n}.cert`)));
    caCerts = BUILTIN_GENERATIONS.flatMap((g) => ['ark', 'ask'].map((n) => readFixture('builtin', g, `${n}.cert`)));
  });

  it('SevCertificate.parse: random bytes and mutated real certificates', () => {
    const check = (bytes: Buffer) => {
      const cert = acceptOrReject(() => SevCertificate.parse(bytes));
      if (cert) assert.deepEqual(cert.toBuffer(), bytes);
    };
    fc.assert(fc.property(sizedRandom([2084]), check), { numRuns: RUNS });
    fc.assert(fc.property(fc.constantFrom(...sevCerts).chain(mutationsOf), check), { numRuns: RUNS * 4 });
  });

  it('CaCertificate.parse / parseFirst: random bytes and mutated real certificates', () => {
    const check = (bytes: Buffer) => {
      const cert = acceptOrReject(() => CaCertificate.parse(bytes));
      if (cert) assert.deepEqual(cert.toBuffer(), bytes);
      const first = acceptOrReject(() => CaCertificate.parseFirst(bytes));
      if (first) assert.deepEqual(first.cert.toBuffer(), bytes.subarray(0, first.length));
    };
    fc.assert(fc.property(sizedRandom([832, 1600]), check), { numRuns: RUNS });
    fc.assert(fc.property(fc.constantFrom(...caCerts).chain(mutationsOf), check), { numRuns: RUNS * 4 });
  });

  it('blob splitters and ask_ark verification: random bytes and mutated real blobs', () => {
    const blobs = BUILTIN_GENERATIONS.map((g) => Buffer.concat([readFixture('builtin', g, 'ask.cert'), readFixture('builtin', g, 'ark.cert')]));
    const check = (bytes: Buffer) => {
      acceptOrReject(() => splitAskArk(bytes));
      acceptOrReject(() => parseAskArk(bytes));
      acceptOrReject(() => verifyAskArk(bytes));
      acceptOrReject(() => splitPdhExportChain(bytes));
      acceptOrReject(() => splitChainFile(bytes));
    };
    fc.assert(fc.property(sizedRandom([1664, 3200, 6252, 8336]), check), { numRuns: RUNS });
    fc.assert(fc.property(fc.constantFrom(...blobs).chain(mutationsOf), check), { numRuns: RUNS * 2 });
  });

  it('verifyChain never throws and always reports seven links, whatever a certificate holds', () => {
    const raw = realChain('rome');
    const keys = ['pdh', 'pek', 'oca', 'cek', 'ask', 'ark'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...keys).chain((k) => mutationsOf(raw[k]).map((bytes) => [k, bytes] as const)), ([k, bytes]) => {
        const report = verifyChain({ ...raw, [k]: bytes });
        assert.equal(report.links.length, 7);
        if (!bytes.equals(raw[k])) assert.equal(report.ok, false, `mutated ${k} accepted`);
      }),
      { numRuns: RUNS },
    );
  });

  it('toPublicKey: random strings and bytes are rejected with SevCertificateError', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.uint8Array().map((a) => Buffer.from(a))), (input) => {
      acceptOrReject(() => toPublicKey(input));
    }), { numRuns: RUNS });
  });
});
