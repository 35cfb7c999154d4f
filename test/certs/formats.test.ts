// The two certificate formats against AMD's real certificates: byte-exact round trips, the
// layout facts (offsets, usages, algorithms, signed region), the RSA-PSS parameters, strict
// rejection of malformed input, and sign/verify with fresh keys.
import * as assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';

import {
  Algorithm,
  CaCertificate,
  EcCurve,
  generateOca,
  publicKeyToPem,
  publicJwk,
  SEV_CERT_BODY_SIZE,
  SEV_CERT_SIZE,
  SevCertificate,
  toPublicKey,
  Usage,
} from '../../lib/certs/index';
import { SevCertificateError } from '../../lib/errors';
import { BUILTIN_GENERATIONS, PLATFORM_CERTS, PLATFORM_GENERATIONS, readFixture, requireFixtures } from './fixtures';

function rejects(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SevCertificateError, `expected SevCertificateError, got ${String(e)}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return true;
  });
}

function patched(bytes: Buffer, offset: number, write: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  write(copy.subarray(offset));
  return copy;
}

describe('certs: formats against AMD fixtures', function () {
  before(function () {
    requireFixtures(this);
  });

  it('every fixture certificate parses and re-encodes byte-exactly', () => {
    for (const gen of BUILTIN_GENERATIONS) {
      for (const name of ['ark', 'ask']) {
        const bytes = readFixture('builtin', gen, `${name}.cert`);
        assert.deepEqual(CaCertificate.parse(bytes).toBuffer(), bytes, `${gen}/${name}`);
      }
    }
    for (const gen of PLATFORM_GENERATIONS) {
      for (const name of PLATFORM_CERTS) {
        const bytes = readFixture(gen, `${name}.cert`);
        assert.equal(bytes.length, SEV_CERT_SIZE);
        assert.deepEqual(SevCertificate.parse(bytes).toBuffer(), bytes, `${gen}/${name}`);
      }
    }
  });

  it('SEV certificates carry the usages and algorithms the firmware uses, and who signed which slot', () => {
    const expected = {
      cek: { usage: Usage.CEK, algorithm: Algorithm.ECDSA_SHA256, slots: [Usage.ASK, Usage.NONE] },
      pek: { usage: Usage.PEK, algorithm: Algorithm.ECDSA_SHA256, slots: [Usage.OCA, Usage.CEK] },
      oca: { usage: Usage.OCA, algorithm: Algorithm.ECDSA_SHA256, slots: [Usage.OCA, Usage.NONE] },
      pdh: { usage: Usage.PDH, algorithm: Algorithm.ECDH_SHA256, slots: [Usage.PEK, Usage.NONE] },
    };
    for (const gen of PLATFORM_GENERATIONS) {
      for (const name of PLATFORM_CERTS) {
        const cert = SevCertificate.parse(readFixture(gen, `${name}.cert`));
        const want = expected[name];
        assert.equal(cert.usage, want.usage);
        assert.equal(cert.algorithm, want.algorithm);
        assert.deepEqual(cert.signatures.map((s) => s.usage), want.slots, `${gen}/${name} slots`);
        assert.equal(cert.key.type, 'ec');
        assert.equal(cert.key.type === 'ec' && cert.key.curve, EcCurve.P384);
        assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
      }
      // The ASK signs the CEK with RSA: SHA-256 on Naples (RSA-2048), SHA-384 on Rome (RSA-4096).
      const cek = SevCertificate.parse(readFixture(gen, 'cek.cert'));
      assert.equal(cek.signatures[0].algorithm, gen === 'naples' ? Algorithm.RSA_SHA256 : Algorithm.RSA_SHA384);
      // Filled ECDSA slots use ECDSA_SHA256 even with P-384 keys.
      const pek = SevCertificate.parse(readFixture(gen, 'pek.cert'));
      assert.deepEqual(pek.signatures.map((s) => s.algorithm), [Algorithm.ECDSA_SHA256, Algorithm.ECDSA_SHA256]);
    }
  });

  it('the signed region of an SEV certificate is exactly the first 0x414 bytes', () => {
    assert.equal(SEV_CERT_BODY_SIZE, 0x414);
    for (const gen of PLATFORM_GENERATIONS) {
      const bytes = readFixture(gen, 'pdh.cert');
      const pek = SevCertificate.parse(readFixture(gen, 'pek.cert'));
      const slot = bytes.subarray(0x41c, 0x41c + 144);
      const rs = Buffer.concat([
        Buffer.from(slot.subarray(0, 48)).reverse(),
        Buffer.from(slot.subarray(72, 120)).reverse(),
      ]);
      const check = (len: number) =>
        verify('sha256', bytes.subarray(0, len), { key: pek.publicKey, dsaEncoding: 'ieee-p1363' }, rs);
      assert.equal(check(0x414), true);
      assert.equal(check(0x413), false);
      assert.equal(check(0x415), false);
      assert.deepEqual(SevCertificate.parse(bytes).body(), bytes.subarray(0, 0x414));
    }
  });

  it('AMD CA certificates: RSA-PSS with SHA-256/salt 32 (Naples) and SHA-384/salt 48 (Rome and later)', () => {
    for (const gen of BUILTIN_GENERATIONS) {
      const ark = CaCertificate.parse(readFixture('builtin', gen, 'ark.cert'));
      const ask = CaCertificate.parse(readFixture('builtin', gen, 'ask.cert'));
      const [hash, salt, bits, size] = gen === 'naples' ? ['sha256', 32, 2048, 832] : ['sha384', 48, 4096, 1600];
      assert.equal(ark.modulusBits, bits);
      assert.equal(ark.toBuffer().length, size);
      assert.equal(ark.hash, hash);
      assert.equal(ark.usage, Usage.ARK);
      assert.equal(ask.usage, Usage.ASK);
      assert.ok(ark.isSelfSigned, `${gen} ARK names itself as certifier`);
      assert.deepEqual(ask.certifyingId, ark.keyId);
      assert.equal(ark.exponent.toString('hex'), '010001');
      for (const cert of [ark, ask]) {
        const sig = Buffer.from(cert.signature).reverse();
        const pss = (h: string, s: number) =>
          verify(h, cert.body(), { key: ark.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: s }, sig);
        assert.equal(pss(hash as string, salt as number), true, `${gen}: ${hash}/${salt}`);
        assert.equal(pss(hash as string, (salt as number) + 1), false);
        assert.equal(pss(hash === 'sha256' ? 'sha384' : 'sha256', salt as number), false);
        assert.ok(cert.verifySignature(ark).ok);
      }
    }
  });

  it('rejects the corrupted Naples ARK', () => {
    rejects(() => CaCertificate.parse(readFixture('naples', 'ark.cert.bad')), /truncated/);
  });
});

describe('certs: strict parsing', function () {
  let pek: Buffer;
  let ark: Buffer;
  let naplesCek: Buffer;
  before(function () {
    requireFixtures(this);
    pek = readFixture('rome', 'pek.cert');
    ark = readFixture('builtin', 'rome', 'ark.cert');
    naplesCek = readFixture('naples', 'cek.cert');
  });

  it('SEV format: sizes, version, reserved bytes, usages, algorithms, curve, point, padding', () => {
    rejects(() => SevCertificate.parse(pek.subarray(0, 2083)), /2084 bytes/);
    rejects(() => SevCertificate.parse(Buffer.concat([pek, Buffer.alloc(1)])), /2084 bytes/);
    rejects(() => SevCertificate.parse(patched(pek, 0, (b) => b.writeUInt32LE(2))), /version 2/);
    rejects(() => SevCertificate.parse(patched(pek, 6, (b) => (b[0] = 1))), /reserved/);
    rejects(() => SevCertificate.parse(patched(pek, 8, (b) => b.writeUInt32LE(Usage.ASK))), /usage ASK/);
    rejects(() => SevCertificate.parse(patched(pek, 8, (b) => b.writeUInt32LE(0x1005))), /usage 0x1005/);
    rejects(() => SevCertificate.parse(patched(pek, 0xc, (b) => b.writeUInt32LE(0x7))), /algorithm 0x7/);
    rejects(() => SevCertificate.parse(patched(pek, 0xc, (b) => b.writeUInt32LE(Algorithm.ECDH_SHA256))), /cannot use/);
    rejects(() => SevCertificate.parse(patched(pek, 0x10, (b) => b.writeUInt32LE(3))), /curve id 3/);
    rejects(() => SevCertificate.parse(patched(pek, 0x14, (b) => (b[0] ^= 1))), /not a point on the curve/);
    rejects(() => SevCertificate.parse(patched(pek, 0x14 + 48, (b) => (b[0] = 1))), /beyond 48 bytes/);
    rejects(() => SevCertificate.parse(patched(pek, 0x200, (b) => (b[0] = 1))), /reserved bytes after the EC/);
    rejects(() => SevCertificate.parse(patched(pek, 0x414, (b) => b.writeUInt32LE(Usage.PDH))), /not a signing key usage/);
    rejects(() => SevCertificate.parse(patched(pek, 0x418, (b) => b.writeUInt32LE(Algorithm.ECDH_SHA256))), /not a signature algorithm/);
    rejects(() => SevCertificate.parse(patched(pek, 0x41c + 200, (b) => (b[0] = 1))), /reserved bytes after ECDSA/);
    rejects(() => SevCertificate.parse(patched(pek, 0x61c, (b) => b.writeUInt32LE(Usage.OCA))), /same signer/);
    const pdh = readFixture('rome', 'pdh.cert');
    rejects(() => SevCertificate.parse(patched(pdh, 0x61c + 4, (b) => b.writeUInt32LE(Algorithm.ECDSA_SHA256))), /half empty/);
    rejects(() => SevCertificate.parse(patched(pdh, 0x624 + 7, (b) => (b[0] = 1))), /empty but/);
    rejects(() => SevCertificate.parse(patched(naplesCek, 0x414 + 4, (b) => b.writeUInt32LE(Algorithm.ECDSA_SHA256))), /ASK signs with RSA/);
    rejects(() => SevCertificate.parse('not bytes' as unknown as Buffer), /Buffer/);
  });

  it('CA format: version, usage, reserved bytes, key sizes, truncation, trailing bytes', () => {
    rejects(() => CaCertificate.parse(ark.subarray(0, 63)), /header/);
    rejects(() => CaCertificate.parse(ark.subarray(0, 1599)), /truncated/);
    rejects(() => CaCertificate.parse(Buffer.concat([ark, Buffer.alloc(1)])), /extra bytes/);
    rejects(() => CaCertificate.parse(patched(ark, 0, (b) => b.writeUInt32LE(0))), /version 0/);
    rejects(() => CaCertificate.parse(patched(ark, 0x24, (b) => b.writeUInt32LE(Usage.CEK))), /neither ARK nor ASK/);
    rejects(() => CaCertificate.parse(patched(ark, 0x30, (b) => (b[0] = 1))), /reserved/);
    rejects(() => CaCertificate.parse(patched(ark, 0x3c, (b) => b.writeUInt32LE(3072))), /3072/);
    rejects(() => CaCertificate.parse(patched(ark, 0x38, (b) => b.writeUInt32LE(2048))), /exponent field size/);
    rejects(() => CaCertificate.parse(patched(ark, 0x40 + 1023, (b) => (b[0] = 0))), /shorter/);
    rejects(() => CaCertificate.parse(patched(ark, 0x40, (b) => (b[0] = 0x10))), /exponent must be odd/);
  });
});

describe('certs: sign and verify with fresh keys', () => {
  it('a self-signed OCA and a PEK signed by it verify; a different key does not', () => {
    const { cert: oca, privateKey: ocaKey } = generateOca({ apiMajor: 1, apiMinor: 55 });
    assert.ok(oca.verifySignature(oca).ok);
    assert.equal(oca.apiMajor, 1);
    assert.equal(oca.apiMinor, 55);
    assert.deepEqual(SevCertificate.parse(oca.toBuffer()).toBuffer(), oca.toBuffer());

    const pekKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const csr = SevCertificate.create({ usage: Usage.PEK, publicKey: pekKey.publicKey });
    assert.ok(csr.isUnsigned);
    const pek = csr.signedBy({ privateKey: ocaKey, usage: Usage.OCA });
    assert.equal(pek.slotOf(Usage.OCA), 0);
    assert.ok(pek.verifySignature(oca).ok);
    assert.deepEqual(pek.body(), csr.body(), 'signing does not touch the signed region');

    const other = generateOca();
    const bad = pek.verifySignature(other.cert);
    assert.equal(bad.ok, false);
    assert.match(bad.reason!, /ECDSA signature by OCA does not match/);
    assert.match(pek.verifySignature({ publicKey: pekKey.publicKey, usage: Usage.CEK }).reason!, /no signature by CEK/);

    // A second signer goes to the other slot (the firmware adds the CEK's on PEK_CERT_IMPORT).
    const cekKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const both = pek.signedBy({ privateKey: cekKey.privateKey, usage: Usage.CEK });
    assert.equal(both.slotOf(Usage.CEK), 1);
    assert.ok(both.verifySignature(oca).ok);
    assert.ok(both.verifySignature({ publicKey: cekKey.publicKey, usage: Usage.CEK }).ok);
    rejects(() => both.signedBy({ privateKey: generateOca().privateKey, usage: Usage.PEK }), /both signature slots/);
  });

  it('PDH signed by a PEK, RSA-signed SEV certs, and SHA-384 ECDSA slots', () => {
    const pek = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pdhKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pdh = SevCertificate.create({ usage: Usage.PDH, publicKey: pdhKey.publicKey });
    assert.equal(pdh.algorithm, Algorithm.ECDH_SHA256);
    const signed = pdh.signedBy({ privateKey: pek.privateKey, usage: Usage.PEK, algorithm: Algorithm.ECDSA_SHA384 });
    assert.ok(signed.verifySignature({ publicKey: pek.publicKey, usage: Usage.PEK }).ok);
    assert.match(signed.verifySignature({ publicKey: pek.publicKey, usage: Usage.PEK, algorithm: Algorithm.ECDSA_SHA256 }).reason!, /uses ECDSA_SHA384/);

    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const oca = SevCertificate.create({ usage: Usage.OCA, publicKey: rsa.publicKey });
    assert.equal(oca.algorithm, Algorithm.RSA_SHA256);
    assert.equal(oca.key.type, 'rsa');
    const self = oca.signedBy({ privateKey: rsa.privateKey, usage: Usage.OCA });
    assert.ok(self.verifySignature(self).ok);
    assert.deepEqual(SevCertificate.parse(self.toBuffer()).toBuffer(), self.toBuffer());
    rejects(() => SevCertificate.create({ usage: Usage.PDH, publicKey: rsa.publicKey }), /does not fit/);
    rejects(() => SevCertificate.create({ usage: Usage.ASK, publicKey: pek.publicKey }), /usage ASK/);
    rejects(() => pdh.signedBy({ privateKey: pek.publicKey, usage: Usage.PEK }), /private KeyObject/);
  });

  it('CA certificates: an ARK that signs itself and an ASK, ids checked', () => {
    const arkKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const askKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ark = CaCertificate.create({ usage: Usage.ARK, publicKey: arkKey.publicKey }).signedBy(arkKey.privateKey);
    const ask = CaCertificate.create({ usage: Usage.ASK, publicKey: askKey.publicKey, certifyingId: ark.keyId }).signedBy(arkKey.privateKey);
    assert.ok(ark.verifySignature(ark).ok);
    assert.ok(ask.verifySignature(ark).ok);
    assert.match(ask.verifySignature(ask).reason!, /certifying id/);
    assert.match(ark.verifySignature(askKey.publicKey).reason!, /does not match/);
    assert.deepEqual(CaCertificate.parse(ask.toBuffer()).toBuffer(), ask.toBuffer());
    // An ASK-signed CEK, as AMD makes them.
    const cek = SevCertificate.create({ usage: Usage.CEK, publicKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey })
      .signedBy({ privateKey: askKey.privateKey, usage: Usage.ASK });
    assert.ok(cek.verifySignature(ask).ok);
    assert.equal(cek.signatures[0].algorithm, Algorithm.RSA_SHA256);
  });
});

describe('certs: key conversions', function () {
  before(function () {
    requireFixtures(this);
  });

  it('SEV and CA public keys convert to PEM and JWK and back', () => {
    const pek = SevCertificate.parse(readFixture('rome', 'pek.cert'));
    const pem = publicKeyToPem(pek.publicKey);
    assert.match(pem, /BEGIN PUBLIC KEY/);
    const jwk = publicJwk(pek.publicKey);
    assert.equal(jwk.crv, 'P-384');
    const again = SevCertificate.create({ usage: Usage.PEK, publicKey: toPublicKey(jwk), apiMajor: pek.apiMajor, apiMinor: pek.apiMinor });
    assert.deepEqual(again.body(), pek.body());
    assert.ok(toPublicKey(pem).equals(pek.publicKey));
    assert.ok(toPublicKey(pek.publicKey.export({ type: 'spki', format: 'der' })).equals(pek.publicKey));

    const ark = CaCertificate.parse(readFixture('builtin', 'milan', 'ark.cert'));
    const rsaJwk = publicJwk(ark.publicKey);
    assert.equal(Buffer.from(rsaJwk.n!, 'base64url').toString('hex'), ark.modulus.toString('hex'));
    assert.ok(createPublicKey(publicKeyToPem(ark.publicKey)).equals(ark.publicKey));
    assert.throws(() => toPublicKey('not a key'), SevCertificateError);
  });
});
