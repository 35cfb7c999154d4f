// SEV-SNP ID blocks: the three id_block vectors of ../shared/fixtures/snp/vectors.json (virtee/sev
// and sev-snp-measure) byte for byte, the saved signatures (and that any flipped byte breaks
// them), freshly signed blocks, both PEM private-key forms, refusals of other keys, the report's
// id/author key digests, and `sev snp generate id-block|key-digest`.
import * as assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SevCertificateError } from '../../lib/errors';
import {
  buildIdAuth,
  buildIdBlock,
  checkReportKeys,
  createIdBlock,
  ID_AUTH_SIZE,
  loadSnpKey,
  parseAttestationReport,
  parseIdAuth,
  parseIdBlock,
  parseSnpPublicKey,
  serializeReport,
  snpKeyDigest,
  snpPublicKey,
  snpSign,
  snpVerify,
  verifyIdAuth,
} from '../../lib/snp';
import { fixturesDir, sev, skipBecause } from '../helpers/env';

interface IdBlockVector {
  name: string;
  inputs: Record<string, string | null | undefined>;
  expected: Record<string, string | number>;
}

const snpDir = path.join(fixturesDir(), 'snp');
const measurementDir = path.join(snpDir, 'measurement');
const vectorsFile = path.join(snpDir, 'vectors.json');
const fixture = (name: string) => fs.readFileSync(path.join(measurementDir, name));

let vectors: IdBlockVector[] = [];
/** The first vector's ID block: the one test_id_sig.bin signs. */
let signedBlock: Buffer;
let idKey: Buffer; // PKCS#8 PEM
let authKey: Buffer;

const argumentError = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SevArgumentError, `expected a SevArgumentError, got ${String(e)}`);
  assert.match((e as Error).message, pattern);
  return true;
};

const flipped = (bytes: Buffer, offset: number) => {
  const copy = Buffer.from(bytes);
  copy[offset] ^= 0x01;
  return copy;
};

/** A vector's inputs as buildIdBlock options (null: the default). */
function blockInput(v: IdBlockVector) {
  const hex = (name: string) => (v.inputs[name] ? Buffer.from(v.inputs[name]!, 'hex') : undefined);
  return {
    launchDigest: hex('launch_digest')!,
    familyId: hex('family_id'),
    imageId: hex('image_id'),
    guestSvn: v.inputs.guest_svn ? Number(v.inputs.guest_svn) : undefined,
    policy: v.inputs.policy ? BigInt(v.inputs.policy) : undefined,
  };
}

describe('SNP ID blocks', function () {
  before(function () {
    if (!fs.existsSync(vectorsFile)) {
      const why = `SNP fixtures not found at ${vectorsFile} (set SEV_FIXTURES to the shared fixtures directory)`;
      if (process.env.CI) throw new Error(why);
      skipBecause(this, why);
    }
    vectors = (JSON.parse(fs.readFileSync(vectorsFile, 'utf8')) as { id_block: IdBlockVector[] }).id_block;
    assert.equal(vectors.length, 3, 'vectors.json has three id_block cases');
    signedBlock = Buffer.from(vectors[0].expected.id_block_hex as string, 'hex');
    idKey = fixture('test_id_key.pem');
    authKey = fixture('test_auth_key.pem');
  });

  it('every id_block vector: the ID block and both key digests, hex and base64', () => {
    let blocks = 0;
    for (const v of vectors) {
      if (v.inputs.launch_digest) {
        if (v.inputs.launch_digest_b64) assert.equal(Buffer.from(v.inputs.launch_digest_b64, 'base64').toString('hex'), v.inputs.launch_digest);
        const block = buildIdBlock(blockInput(v));
        assert.equal(block.toString('hex'), v.expected.id_block_hex, `${v.name}: ID block`);
        assert.equal(block.toString('base64'), v.expected.id_block_b64, `${v.name}: ID block (base64)`);
        blocks++;
      }
      const id = snpKeyDigest(fixture(v.inputs.id_key!));
      const author = snpKeyDigest(fixture(v.inputs.auth_key!));
      if (v.expected.id_key_digest_hex) {
        assert.equal(id.toString('hex'), v.expected.id_key_digest_hex, `${v.name}: id key digest`);
        assert.equal(id.toString('base64'), v.expected.id_key_digest_b64, `${v.name}: id key digest (base64)`);
        assert.equal(author.toString('hex'), v.expected.auth_key_digest_hex, `${v.name}: author key digest`);
        assert.equal(author.toString('base64'), v.expected.auth_key_digest_b64, `${v.name}: author key digest (base64)`);
      }
      if (v.expected.auth_block_file) {
        // Signing is randomized: with the saved signatures the block is the expected file exactly.
        const auth = buildIdAuth(signedBlock, {
          idKey: fixture(v.inputs.id_key!),
          authorKey: fixture(v.inputs.auth_key!),
          idBlockSignature: fixture(v.inputs.id_block_sig!),
          idKeySignature: fixture(v.inputs.id_key_sig!),
        });
        assert.equal(auth.length, v.expected.auth_block_len);
        assert.ok(auth.equals(fixture(v.expected.auth_block_file as string)), `${v.name}: ID_AUTH differs from ${v.expected.auth_block_file}`);
        assert.equal(createHash('sha256').update(auth).digest('hex'), v.expected.auth_block_sha256);
      }
    }
    assert.equal(blocks, 2);
  });

  it('parses an ID block back into its fields and refuses wrong sizes and versions', () => {
    const familyId = randomBytes(16);
    const imageId = randomBytes(16);
    const block = buildIdBlock({ launchDigest: signedBlock.subarray(0, 48), familyId, imageId, guestSvn: 7, policy: 0xb0000n });
    const fields = parseIdBlock(block);
    assert.ok(fields.launchDigest.equals(signedBlock.subarray(0, 48)));
    assert.ok(fields.familyId.equals(familyId));
    assert.ok(fields.imageId.equals(imageId));
    assert.deepEqual([fields.version, fields.guestSvn, fields.policy], [1, 7, 0xb0000n]);
    assert.equal(parseIdBlock(signedBlock).policy, 0x30000n, 'default policy');
    const v2 = Buffer.from(block);
    v2.writeUInt32LE(2, 0x50);
    assert.throws(() => parseIdBlock(v2), argumentError(/version 2/));
    assert.throws(() => parseIdBlock(block.subarray(1)), argumentError(/96 bytes, got 95/));
    assert.throws(() => buildIdBlock({ launchDigest: randomBytes(32) }), argumentError(/launchDigest must be 48 bytes/));
    assert.throws(() => buildIdBlock({ launchDigest: randomBytes(48), familyId: randomBytes(15) }), argumentError(/familyId must be 16 bytes/));
    assert.throws(() => buildIdBlock({ launchDigest: randomBytes(48), guestSvn: 2 ** 32 }), argumentError(/guestSvn must be a u32/));
    assert.throws(() => buildIdBlock({ launchDigest: randomBytes(48), policy: 1n << 64n }), argumentError(/policy must be a u64/));
  });

  it('the saved signatures verify, and a flipped byte in signature or data fails', () => {
    const idSig = fixture('test_id_sig.bin');
    const authSig = fixture('test_auth_sig.bin');
    const idPublic = snpPublicKey(idKey);
    assert.ok(snpVerify(idKey, signedBlock, idSig), 'test_id_sig.bin over the ID block');
    assert.ok(snpVerify(authKey, idPublic, authSig), 'test_auth_sig.bin over the ID public key');
    assert.ok(!snpVerify(authKey, signedBlock, idSig), 'the other key');
    // R's lowest and highest used bytes, S, and the reserved tail that must stay zero.
    for (const offset of [0, 47, 72, 72 + 47, 200, 511]) {
      assert.ok(!snpVerify(idKey, signedBlock, flipped(idSig, offset)), `id sig, byte ${offset} flipped`);
      assert.ok(!snpVerify(authKey, idPublic, flipped(authSig, offset)), `auth sig, byte ${offset} flipped`);
    }
    for (const offset of [0, 47, 0x50, 95]) assert.ok(!snpVerify(idKey, flipped(signedBlock, offset), idSig), `ID block byte ${offset} flipped`);
    assert.ok(!snpVerify(idKey, signedBlock, idSig.subarray(0, 144)), 'a signature of the wrong size');
    // A saved signature that does not verify is not put into an ID_AUTH.
    assert.throws(
      () => buildIdAuth(signedBlock, { idKey, authorKey: authKey, idBlockSignature: flipped(idSig, 3), idKeySignature: authSig }),
      argumentError(/idBlockSignature does not verify/),
    );
  });

  it('verifyIdAuth accepts test_auth_block.bin and names the signature a flipped byte breaks', () => {
    const auth = fixture('test_auth_block.bin');
    const good = verifyIdAuth(signedBlock, auth);
    assert.equal(good.ok, true);
    assert.deepEqual(good.checks.map((c) => c.check), ['id_block_sig', 'id_key_sig']);
    assert.equal(good.idKeyDigest.toString('hex'), vectors[0].expected.id_key_digest_hex);
    assert.equal(good.authorKeyDigest?.toString('hex'), vectors[0].expected.auth_key_digest_hex);
    const failing = (block: Buffer, bytes: Buffer) => verifyIdAuth(block, bytes).checks.filter((c) => !c.ok).map((c) => c.check);
    assert.deepEqual(failing(flipped(signedBlock, 0), auth), ['id_block_sig']);
    assert.deepEqual(failing(signedBlock, flipped(auth, 0x40)), ['id_block_sig']); // R of id_block_sig
    assert.deepEqual(failing(signedBlock, flipped(auth, 0x680 + 72)), ['id_key_sig']); // S of id_key_sig
    // The ID key is what both signatures involve: a changed key breaks both.
    assert.deepEqual(failing(signedBlock, flipped(auth, 0x240 + 4)), ['id_block_sig', 'id_key_sig']);
    assert.deepEqual(failing(signedBlock, flipped(auth, 0x880 + 4)), ['id_key_sig']);
    const badAlgo = Buffer.from(auth);
    badAlgo.writeUInt32LE(2, 0);
    assert.throws(() => verifyIdAuth(signedBlock, badAlgo), argumentError(/id_key_algo 2/));
    assert.throws(() => parseIdAuth(auth.subarray(0, 4095)), argumentError(/4096 bytes, got 4095/));
    // Without an author key only the ID block signature is checked.
    const noAuthor = Buffer.from(auth);
    noAuthor.fill(0, 0x680);
    const alone = verifyIdAuth(signedBlock, noAuthor);
    assert.equal(alone.ok, true);
    assert.equal(alone.authorKeyDigest, null);
    assert.deepEqual(alone.checks.map((c) => c.check), ['id_block_sig']);
  });

  it('a block signed here verifies, its digests are the keys\' digests, and each signing differs', () => {
    const launchDigest = randomBytes(48);
    const made = createIdBlock({ launchDigest, familyId: randomBytes(16), guestSvn: 3, policy: 0x30000n, idKey, authorKey: authKey });
    assert.equal(made.idAuth.length, ID_AUTH_SIZE);
    const result = verifyIdAuth(made.idBlock, made.idAuth);
    assert.equal(result.ok, true, JSON.stringify(result.checks));
    assert.ok(result.idKeyDigest.equals(snpKeyDigest(idKey)));
    assert.ok(result.authorKeyDigest!.equals(snpKeyDigest(authKey)));
    assert.ok(made.idKeyDigest.equals(result.idKeyDigest));
    assert.ok(made.authorKeyDigest.equals(result.authorKeyDigest!));
    assert.equal(made.idKeyDigest.toString('hex'), vectors[0].expected.id_key_digest_hex);
    assert.ok(parseIdBlock(made.idBlock).launchDigest.equals(launchDigest));
    const parsed = parseIdAuth(made.idAuth);
    assert.deepEqual([parsed.idKeyAlgo, parsed.authKeyAlgo], [1, 1]);
    assert.ok(parsed.idKey.equals(snpPublicKey(idKey)));
    // ECDSA is randomized: a second signing gives other bytes that verify just as well.
    const again = snpSign(idKey, made.idBlock);
    assert.ok(!again.equals(parsed.idBlockSignature));
    assert.ok(snpVerify(idKey, made.idBlock, again));
    // And a fresh key pair, given as KeyObjects.
    const fresh = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const other = createIdBlock({ launchDigest, idKey: fresh.privateKey, authorKey: fresh.privateKey });
    assert.equal(verifyIdAuth(other.idBlock, other.idAuth).ok, true);
    assert.ok(other.idKeyDigest.equals(snpKeyDigest(fresh.publicKey)));
  });

  it('reads keys as PKCS#8 and SEC1 PEM, public PEM and KeyObjects, with the same digest', () => {
    const key = createPrivateKey(idKey);
    const sec1 = key.export({ type: 'sec1', format: 'pem' }) as string;
    assert.match(sec1, /BEGIN EC PRIVATE KEY/);
    assert.match(idKey.toString(), /BEGIN PRIVATE KEY/);
    const expected = vectors[0].expected.id_key_digest_hex;
    for (const form of [idKey, idKey.toString(), sec1, key, createPublicKey(key), createPublicKey(key).export({ type: 'spki', format: 'pem' })]) {
      assert.equal(snpKeyDigest(form).toString('hex'), expected);
    }
    // sev-snp-measure's keys are SEC1, and sign as well as the PKCS#8 ones.
    const snpMeasureKey = fixture('sev-snp-measure_id_key_test.pem');
    assert.match(snpMeasureKey.toString(), /BEGIN EC PRIVATE KEY/);
    assert.ok(snpVerify(snpMeasureKey, signedBlock, snpSign(snpMeasureKey, signedBlock)));
    assert.ok(snpVerify(sec1, signedBlock, snpSign(sec1, signedBlock)));
    // The SNP public key round-trips to the same key.
    const roundTrip = parseSnpPublicKey(snpPublicKey(key));
    assert.ok(roundTrip.equals(createPublicKey(key)));
  });

  it('refuses keys that are not P-384, garbage PEM and public keys where one must sign', () => {
    const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.throws(() => snpKeyDigest(pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)), argumentError(/must be an ECDSA P-384 \(secp384r1\) key, got an EC key on prime256v1/));
    assert.throws(() => snpKeyDigest(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)), argumentError(/P-384.*got a rsa key/));
    assert.throws(() => loadSnpKey(generateKeyPairSync('ed25519').privateKey, 'idKey'), argumentError(/idKey must be an ECDSA P-384.*ed25519/));
    assert.throws(() => snpKeyDigest('-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n'), argumentError(/PEM PRIVATE KEY block is not a valid key/));
    assert.throws(() => snpKeyDigest(Buffer.from('hello, not a key')), argumentError(/not PEM text/));
    assert.throws(() => snpKeyDigest(randomBytes(64)), argumentError(/not PEM text/));
    const encrypted = createPrivateKey(idKey).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
    assert.throws(() => snpKeyDigest(encrypted), argumentError(/encrypted private key/));
    const publicOnly = createPublicKey(createPrivateKey(idKey));
    assert.throws(() => createIdBlock({ launchDigest: randomBytes(48), idKey: publicOnly, authorKey: authKey }), argumentError(/idKey must be a private key/));
    const curve1 = snpPublicKey(idKey);
    curve1.writeUInt32LE(1, 0);
    assert.throws(() => parseSnpPublicKey(curve1), (e: unknown) => e instanceof SevCertificateError && /curve 1 is not P-384/.test((e as Error).message));
    const offCurve = snpPublicKey(idKey);
    offCurve[4] ^= 1;
    assert.throws(() => parseSnpPublicKey(offCurve), (e: unknown) => e instanceof SevCertificateError && /not a point on the curve/.test((e as Error).message));
  });

  it('checks a report\'s id_key_digest and author_key_digest (with author_key_en) against keys', () => {
    const raw = fs.readFileSync(path.join(snpDir, 'milan', 'report.bin'));
    const real = parseAttestationReport(raw);
    // The real report's guest was launched without an ID block: both digests are zero.
    const none = checkReportKeys(raw, { idKey, authorKey: authKey });
    assert.equal(none.ok, false);
    assert.deepEqual(none.mismatches.map((m) => m.field), ['id_key_digest', 'author_key_en']);
    assert.equal(none.mismatches[0].expected, vectors[0].expected.id_key_digest_hex);
    assert.equal(none.mismatches[0].actual, '0'.repeat(96));
    const launched = { ...real, idKeyDigest: snpKeyDigest(idKey), authorKeyDigest: snpKeyDigest(authKey), authorKeyEn: true };
    assert.deepEqual(checkReportKeys(launched, { idKey, authorKey: authKey }), { ok: true, mismatches: [] });
    assert.equal(checkReportKeys(serializeReport(launched), { idKey, authorKey: authKey }).ok, true, 'as raw report bytes');
    assert.equal(checkReportKeys(launched, { idKey }).ok, true);
    const swapped = checkReportKeys(launched, { idKey: authKey, authorKey: idKey });
    assert.deepEqual(swapped.mismatches.map((m) => m.field), ['id_key_digest', 'author_key_digest']);
    // author_key_en clear: the author key was not checked at launch, whatever the digest field says.
    const notEnabled = checkReportKeys({ ...launched, authorKeyEn: false }, { idKey, authorKey: authKey });
    assert.deepEqual(notEnabled.mismatches, [{ field: 'author_key_en', expected: '1', actual: '0' }]);
    assert.throws(() => checkReportKeys(launched, {}), argumentError(/give idKey, authorKey or both/));
  });

  describe('sev snp generate (CLI)', function () {
    this.timeout(60_000);
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-id-block-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const keys = () => ['--id-key', path.join(measurementDir, 'test_id_key.pem'), '--auth-key', path.join(measurementDir, 'test_auth_key.pem')];

    it('id-block prints snpguest\'s ID-BLOCK / AUTH-BLOCK base64; --json adds the key digests', () => {
      const v = vectors[0];
      const r = sev(['snp', 'generate', 'id-block', ...keys(), '--measurement', v.inputs.launch_digest!]);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 4, r.stdout);
      assert.deepEqual([lines[0], lines[2]], ['ID-BLOCK:', 'AUTH-BLOCK:']);
      assert.equal(lines[1], v.expected.id_block_b64);
      const auth = Buffer.from(lines[3], 'base64');
      assert.equal(verifyIdAuth(signedBlock, auth).ok, true);
      assert.ok(auth.subarray(0x240, 0x644).equals(fixture('test_auth_block.bin').subarray(0x240, 0x644)), 'the ID public key');
      // sev-snp-measure's SEC1 keys and base64 measurement, as JSON.
      const w = vectors[2];
      const json = sev(['--json', 'snp', 'generate', 'id-block', '--measurement', w.inputs.launch_digest_b64!,
        '--id-key', path.join(measurementDir, w.inputs.id_key!), '--auth-key', path.join(measurementDir, w.inputs.auth_key!)]);
      assert.equal(json.status, 0, json.stderr);
      const out = JSON.parse(json.stdout) as Record<string, string>;
      assert.equal(out.id_block, w.expected.id_block_b64);
      assert.equal(out.id_key_digest, w.expected.id_key_digest_hex);
      assert.equal(out.author_key_digest, w.expected.auth_key_digest_hex);
      assert.equal(verifyIdAuth(Buffer.from(out.id_block, 'base64'), Buffer.from(out.id_auth, 'base64')).ok, true);
    });

    it('id-block writes both files (base64) with the given fields, and leaves no file when it fails', () => {
      const blockFile = path.join(dir, 'id-block.base64');
      const authFile = path.join(dir, 'id-auth.base64');
      const r = sev(['snp', 'generate', 'id-block', ...keys(), '--measurement', `0x${'ab'.repeat(48)}`, '--family-id', '01'.repeat(16),
        '--image-id', `0x${'02'.repeat(16)}`, '--svn', '5', '--guest-policy', '0xb0000', '--id-block-out', blockFile, '--id-auth-out', authFile]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      const block = Buffer.from(fs.readFileSync(blockFile, 'utf8'), 'base64');
      const fields = parseIdBlock(block);
      assert.equal(fields.launchDigest.toString('hex'), 'ab'.repeat(48));
      assert.equal(fields.familyId.toString('hex'), '01'.repeat(16));
      assert.equal(fields.imageId.toString('hex'), '02'.repeat(16));
      assert.deepEqual([fields.guestSvn, fields.policy], [5, 0xb0000n]);
      assert.equal(verifyIdAuth(block, Buffer.from(fs.readFileSync(authFile, 'utf8'), 'base64')).ok, true);
      // The second file cannot be written: the first must not appear either, nor any temp file.
      const first = path.join(dir, 'first.base64');
      const bad = sev(['snp', 'generate', 'id-block', ...keys(), '--measurement', 'ab'.repeat(48),
        '--id-block-out', first, '--id-auth-out', path.join(dir, 'missing', 'auth.base64')]);
      assert.equal(bad.status, 1, bad.stdout + bad.stderr);
      assert.match(bad.stderr, /cannot write .*missing.*ENOENT/);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['id-auth.base64', 'id-block.base64']);
    });

    it('id-block: bad usage exits 2, bad values and keys exit 1 naming the flag', () => {
      const usage = (args: string[], pattern: RegExp) => {
        const r = sev(['snp', 'generate', 'id-block', ...args]);
        assert.equal(r.status, 2, r.stdout + r.stderr);
        assert.match(r.stderr, pattern);
      };
      usage(['--id-key', path.join(measurementDir, 'test_id_key.pem'), '--measurement', 'ab'.repeat(48)], /--auth-key FILE is required/);
      usage([...keys()], /--measurement HEX is required/);
      usage([...keys(), '--measurement', 'ab'.repeat(48), '--id-block-out', path.join(dir, 'x')], /--id-block-out and --id-auth-out go together/);
      const bad = (args: string[], pattern: RegExp) => {
        const r = sev(['snp', 'generate', 'id-block', ...args]);
        assert.equal(r.status, 1, r.stdout + r.stderr);
        assert.match(r.stderr, pattern);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      };
      bad([...keys(), '--measurement', 'ab'.repeat(47)], /--measurement must be 48 bytes/);
      bad([...keys(), '--measurement', 'ab'.repeat(48), '--family-id', 'abc'], /--family-id must be 16 bytes/);
      bad([...keys(), '--measurement', 'ab'.repeat(48), '--guest-policy', '0x10000000000000000'], /--guest-policy must be a 64-bit number/);
      bad([...keys(), '--measurement', 'ab'.repeat(48), '--svn', '4294967296'], /--svn=4294967296: value must be at most/);
      const p256 = path.join(dir, 'p256.pem');
      fs.writeFileSync(p256, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }));
      try {
        bad(['--id-key', p256, '--auth-key', path.join(measurementDir, 'test_auth_key.pem'), '--measurement', 'ab'.repeat(48)], /--id-key .*p256\.pem must be an ECDSA P-384/);
      } finally {
        fs.rmSync(p256);
      }
    });

    it('key-digest prints the key digest in hex for both PEM forms, and refuses what is not a P-384 key', () => {
      for (const v of [vectors[0], vectors[2]]) {
        for (const [key, expected] of [[v.inputs.id_key!, v.expected.id_key_digest_hex], [v.inputs.auth_key!, v.expected.auth_key_digest_hex]]) {
          const r = sev(['snp', 'generate', 'key-digest', path.join(measurementDir, key as string)]);
          assert.equal(r.status, 0, r.stderr);
          assert.equal(r.stdout, `${expected as string}\n`);
        }
      }
      const garbage = sev(['snp', 'generate', 'key-digest', path.join(measurementDir, 'test_id_sig.bin')]);
      assert.equal(garbage.status, 1);
      assert.match(garbage.stderr, /test_id_sig\.bin is not PEM text/);
      const usage = sev(['snp', 'generate', 'key-digest']);
      assert.equal(usage.status, 2);
      assert.match(usage.stderr, /one PEM key file expected/);
    });
  });
});
