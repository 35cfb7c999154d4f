// Chain verification against the real Naples and Rome chains: every link reported, a flipped
// byte anywhere fails and names its link, pinned AMD ARKs, explicitly trusted extra ARKs, and
// the blob splitters.
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';

import {
  AMD_ARK_PINS,
  arkFingerprint,
  CaCertificate,
  CHAIN_LINKS,
  checkArkAnchor,
  detectGeneration,
  formatChainReport,
  generateOca,
  parseAskArk,
  SevCertificate,
  splitAskArk,
  splitChainFile,
  splitPdhExportChain,
  Usage,
  verifyChain,
  type CertName,
  type ChainInput,
} from '../../lib/certs/index';
import { SevCertificateError } from '../../lib/errors';
import { BUILTIN_GENERATIONS, PLATFORM_GENERATIONS, readFixture, realChain, requireFixtures } from './fixtures';

type Key = 'pdh' | 'pek' | 'oca' | 'cek' | 'ask' | 'ark';
const NAMES: Record<Key, CertName> = { pdh: 'PDH', pek: 'PEK', oca: 'OCA', cek: 'CEK', ask: 'ASK', ark: 'ARK' };
const KEYS = Object.keys(NAMES) as Key[];

/** Who signs each certificate in the chain. */
const SIGNERS: Record<CertName, CertName[]> = {
  ARK: ['ARK'], ASK: ['ARK'], CEK: ['ASK'], PEK: ['OCA', 'CEK'], OCA: ['OCA'], PDH: ['PEK'],
};

function flip(bytes: Buffer, pos: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[pos] ^= 1 << (pos % 8);
  return copy;
}

interface ParsedChain {
  pdh: SevCertificate; pek: SevCertificate; oca: SevCertificate; cek: SevCertificate; ask: CaCertificate; ark: CaCertificate;
}

function parsedChain(raw: Record<Key, Buffer>): ParsedChain {
  return {
    pdh: SevCertificate.parse(raw.pdh), pek: SevCertificate.parse(raw.pek), oca: SevCertificate.parse(raw.oca),
    cek: SevCertificate.parse(raw.cek), ask: CaCertificate.parse(raw.ask), ark: CaCertificate.parse(raw.ark),
  };
}

describe('certs: chain verification', function () {
  before(function () {
    requireFixtures(this);
  });

  for (const gen of PLATFORM_GENERATIONS) {
    it(`the real ${gen} chain verifies link by link against the ${gen} ASK/ARK`, () => {
      const report = verifyChain(realChain(gen));
      assert.deepEqual(report.links.map((l) => [l.signer, l.subject]), CHAIN_LINKS);
      for (const link of report.links) assert.ok(link.ok, `${link.signer} → ${link.subject}: ${link.reason}`);
      assert.deepEqual(report.anchor, { ok: true, generation: gen, extra: false, fingerprint: report.anchor.fingerprint });
      assert.equal(report.ok, true);
      assert.match(formatChainReport(report), new RegExp(`✅ trusted ARK \\(AMD ${gen}\\)`));
    });
  }

  it('a chain checked against the wrong generation fails exactly the ASK → CEK link', () => {
    const chain = { ...realChain('rome'), ask: readFixture('builtin', 'milan', 'ask.cert'), ark: readFixture('builtin', 'milan', 'ark.cert') };
    const report = verifyChain(chain);
    assert.equal(report.ok, false);
    const failed = report.links.filter((l) => !l.ok);
    assert.deepEqual(failed.map((l) => `${l.signer}→${l.subject}`), ['ASK→CEK']);
    assert.equal(report.anchor.generation, 'milan');
  });

  it('missing and misplaced certificates fail their links with a reason, the rest is still checked', () => {
    const { ask: _ask, ark: _ark, ...platform } = realChain('naples');
    const report = verifyChain(platform);
    assert.equal(report.ok, false);
    assert.match(report.anchor.reason!, /ARK not provided/);
    const byLink = Object.fromEntries(report.links.map((l) => [`${l.signer}→${l.subject}`, l]));
    assert.match(byLink['ASK→CEK'].reason!, /ASK not provided/);
    for (const ok of ['CEK→PEK', 'OCA→OCA', 'OCA→PEK', 'PEK→PDH']) assert.ok(byLink[ok].ok, ok);

    const swapped = verifyChain({ ...realChain('naples'), pek: realChain('naples').pdh });
    const bad = swapped.links.filter((l) => !l.ok).map((l) => `${l.signer}→${l.subject}`);
    assert.deepEqual(bad, ['CEK→PEK', 'OCA→PEK', 'PEK→PDH']);
    assert.match(swapped.links[3].reason!, /the certificate given as PEK is a PDH certificate/);
  });

  it('flipping any byte of any certificate makes a link with it as subject fail (all bytes, both chains)', function () {
    this.timeout(120_000);
    for (const gen of PLATFORM_GENERATIONS) {
      const raw = realChain(gen);
      const good = parsedChain(raw);
      const byName = (n: CertName) => good[n.toLowerCase() as Key];
      for (const key of KEYS) {
        const name = NAMES[key];
        for (let pos = 0; pos < raw[key].length; pos++) {
          const bytes = flip(raw[key], pos);
          let cert: SevCertificate | CaCertificate;
          try {
            cert = key === 'ask' || key === 'ark' ? CaCertificate.parse(bytes) : SevCertificate.parse(bytes);
          } catch (e) {
            assert.ok(e instanceof SevCertificateError, `${gen} ${name}@${pos}: ${String(e)}`);
            continue;
          }
          const signers = SIGNERS[name].map((s) => (s === name ? cert : byName(s)));
          const failed = signers.some((signer) =>
            cert instanceof CaCertificate
              ? !cert.verifySignature(signer as CaCertificate).ok
              : !cert.verifySignature(signer).ok);
          assert.ok(failed, `${gen}: flipping ${name} byte 0x${pos.toString(16)} went unnoticed`);
        }
      }
    }
  });

  it('a flipped byte fails only the links of that certificate, names them, and reports all seven', () => {
    // A spread of positions per certificate: header fields, key, each signature slot, and a stride.
    const raw = realChain('rome');
    const good = parsedChain(raw);
    for (const key of KEYS) {
      const name = NAMES[key];
      const len = raw[key].length;
      const positions = new Set([0, 4, 5, 8, 0xc, 0x10, 0x14, 0x24, 0x40, 0x41, 0x414, 0x418, 0x41c, 0x61c, 0x624, len - 1]);
      for (let p = 3; p < len; p += 97) positions.add(p);
      for (const pos of [...positions].filter((p) => p < len)) {
        const input: ChainInput = { ...good, [key]: flip(raw[key], pos) };
        const report = verifyChain(input);
        assert.equal(report.links.length, 7);
        assert.equal(report.ok, false, `${name}@${pos}`);
        const failed = report.links.filter((l) => !l.ok);
        assert.ok(failed.length > 0, `${name}@0x${pos.toString(16)}: no link failed`);
        for (const l of failed) {
          assert.ok(l.signer === name || l.subject === name, `${name}@0x${pos.toString(16)} broke ${l.signer}→${l.subject}`);
          assert.ok(l.reason && l.reason.length > 0);
        }
        if (key === 'ark' && failed.every((l) => l.subject !== 'ARK')) {
          assert.fail(`ARK@0x${pos.toString(16)}: the ARK link should fail`);
        }
      }
    }
  });

  it('flipping the OCA signature of a PEK fails only OCA → PEK', () => {
    const raw = realChain('naples');
    const report = verifyChain({ ...raw, pek: flip(raw.pek, 0x41c + 10) });
    assert.deepEqual(report.links.filter((l) => !l.ok).map((l) => `${l.signer}→${l.subject}`), ['OCA→PEK']);
    assert.match(report.links[5].reason!, /ECDSA signature by OCA does not match/);
    assert.match(formatChainReport(report), /❌ OCA ⟶ PEK: ECDSA signature by OCA does not match/);
  });
});

describe('certs: trust anchors', function () {
  before(function () {
    requireFixtures(this);
  });

  it('the pinned fingerprints match AMD\'s ARKs for all five generations', () => {
    assert.deepEqual(AMD_ARK_PINS.map((p) => p.generation), BUILTIN_GENERATIONS);
    for (const gen of BUILTIN_GENERATIONS) {
      const ark = CaCertificate.parse(readFixture('builtin', gen, 'ark.cert'));
      const ask = CaCertificate.parse(readFixture('builtin', gen, 'ask.cert'));
      const pin = AMD_ARK_PINS.find((p) => p.generation === gen)!;
      assert.equal(arkFingerprint(ark), pin.spkiSha256, gen);
      assert.equal(ark.keyId.toString('hex'), pin.keyId);
      assert.equal(ark.modulusBits, pin.bits);
      assert.equal(detectGeneration(ark), gen);
      assert.equal(detectGeneration(ask), gen);
      assert.deepEqual(checkArkAnchor(ark), { trusted: true, generation: gen, extra: false, fingerprint: pin.spkiSha256 });
      // An ASK is never a root.
      assert.equal(checkArkAnchor(ask).trusted, false);
    }
  });

  it('a chain under a non-AMD ARK is untrusted unless that ARK is passed explicitly', () => {
    // A complete chain under a home-made ARK, like the firmware emulator's.
    const arkKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const askKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ark = CaCertificate.create({ usage: Usage.ARK, publicKey: arkKey.publicKey }).signedBy(arkKey.privateKey);
    const ask = CaCertificate.create({ usage: Usage.ASK, publicKey: askKey.publicKey, certifyingId: ark.keyId }).signedBy(arkKey.privateKey);
    const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const cekKey = ec();
    const pekKey = ec();
    const pdhKey = ec();
    const cek = SevCertificate.create({ usage: Usage.CEK, publicKey: cekKey.publicKey }).signedBy({ privateKey: askKey.privateKey, usage: Usage.ASK });
    const { cert: oca, privateKey: ocaKey } = generateOca();
    const pek = SevCertificate.create({ usage: Usage.PEK, publicKey: pekKey.publicKey })
      .signedBy({ privateKey: ocaKey, usage: Usage.OCA })
      .signedBy({ privateKey: cekKey.privateKey, usage: Usage.CEK });
    const pdh = SevCertificate.create({ usage: Usage.PDH, publicKey: pdhKey.publicKey }).signedBy({ privateKey: pekKey.privateKey, usage: Usage.PEK });
    const chain = { ark, ask, cek, pek, oca, pdh };

    const untrusted = verifyChain(chain);
    assert.ok(untrusted.links.every((l) => l.ok));
    assert.equal(untrusted.ok, false);
    assert.match(untrusted.anchor.reason!, /not a pinned AMD ARK/);
    assert.equal(detectGeneration(ark), undefined);

    for (const trusted of [ark, ark.publicKey, arkFingerprint(ark)]) {
      const report = verifyChain(chain, { trustedArks: [trusted] });
      assert.equal(report.ok, true);
      assert.equal(report.anchor.extra, true);
      assert.equal(report.anchor.generation, undefined);
    }
    // Trusting some other key does not help.
    assert.equal(verifyChain(chain, { trustedArks: [askKey.publicKey] }).ok, false);
  });
});

describe('certs: blobs', function () {
  before(function () {
    requireFixtures(this);
  });

  it('splits PDH_CERT_EXPORT chains, ask_ark blobs and sevctl export files', () => {
    const raw = realChain('rome');
    assert.deepEqual(splitPdhExportChain(Buffer.concat([raw.pek, raw.oca, raw.cek])), { pek: raw.pek, oca: raw.oca, cek: raw.cek });
    assert.throws(() => splitPdhExportChain(raw.pek), SevCertificateError);

    for (const gen of BUILTIN_GENERATIONS) {
      const ask = readFixture('builtin', gen, 'ask.cert');
      const ark = readFixture('builtin', gen, 'ark.cert');
      const blob = Buffer.concat([ask, ark]);
      assert.deepEqual(splitAskArk(blob), { ask, ark });
      const parsed = parseAskArk(blob);
      assert.equal(parsed.ask.usage, Usage.ASK);
      assert.equal(parsed.ark.usage, Usage.ARK);
      assert.throws(() => parseAskArk(Buffer.concat([ark, ask])), /expected the ASK/);
      assert.throws(() => parseAskArk(ask), SevCertificateError);
    }

    const file = Buffer.concat([raw.pdh, raw.pek, raw.oca, raw.cek, raw.ask, raw.ark]);
    const split = splitChainFile(file);
    assert.deepEqual(split, raw);
    assert.equal(verifyChain(split).ok, true);
    assert.deepEqual(Object.keys(splitChainFile(file.subarray(0, 4 * 2084))).sort(), ['cek', 'oca', 'pdh', 'pek']);
    assert.throws(() => splitChainFile(file.subarray(0, 100)), SevCertificateError);
  });
});
