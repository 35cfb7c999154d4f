// The guests' freestanding crypto library (guests/lib): it must build with the guest's flags
// (no libc, no SSE, no runtime library calls, no mutable globals) and agree with node:crypto
// on many random inputs, plus the specifications' own test vectors. The library's objects,
// compiled with exactly the guest flags, are linked into a hosted driver (test/c/guest_crypto_test.c)
// that answers one command per line; one process runs each batch.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { haveCompiler, ROOT, skipBecause } from '../helpers/env';

const LIB_DIR = path.join(ROOT, 'guests', 'lib');
const LIB_SOURCES = ['mem', 'aes_gcm', 'sha256', 'x25519'];
/** The flags the guests are built with. */
const GUEST_CFLAGS = ['-std=c11', '-O2', '-ffreestanding', '-fno-builtin', '-nostdlib', '-fno-pic', '-fno-stack-protector',
  '-mno-red-zone', '-mgeneral-regs-only', '-fno-asynchronous-unwind-tables', '-Wall', '-Wextra', '-Werror'];
/** What the objects may leave undefined: only functions the library itself defines. */
const LIB_SYMBOLS = new Set(['memcpy', 'memmove', 'memset', 'memcmp', 'ct_equal', 'secure_wipe']);
const MAX_FRAME = 2048;

// DER wrappers (RFC 8410) that carry a raw 32-byte X25519 key.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const hex = (b: Uint8Array): string => (b.length === 0 ? '-' : Buffer.from(b).toString('hex'));
const rand = (n: number): Buffer => crypto.randomBytes(n);
const randInt = (max: number): number => crypto.randomInt(max + 1); // 0..max

function nodeGcm(key: Buffer, iv: Buffer, aad: Buffer, pt: Buffer): { ct: Buffer; tag: Buffer } {
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

const sha256 = (data: Buffer): string => crypto.createHash('sha256').update(data).digest('hex');

function rawPrivate(key: crypto.KeyObject): Buffer {
  return key.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
}

function rawPublic(key: crypto.KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(-32);
}

describe('guest crypto library (guests/lib)', function () {
  let dir: string;
  let driver: string;
  let objects: string[];

  before(function () {
    if (!haveCompiler()) skipBecause(this, 'no C compiler (cc)');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guest-crypto-'));
    objects = LIB_SOURCES.map((name) => {
      const obj = path.join(dir, `${name}.o`);
      // -fstack-usage writes NAME.su next to the object; it does not change the code.
      execFileSync('cc', [...GUEST_CFLAGS, '-fstack-usage', '-c', '-o', obj, path.join(LIB_DIR, `${name}.c`)], { stdio: 'pipe' });
      return obj;
    });
    driver = path.join(dir, 'guest_crypto_test');
    // -no-pie: the objects are position-dependent (-fno-pic), as in the guest.
    execFileSync('cc', ['-std=c11', '-O1', '-Wall', '-Wextra', '-Werror', '-no-pie', '-o', driver,
      path.join(ROOT, 'test', 'c', 'guest_crypto_test.c'), ...objects], { stdio: 'pipe' });
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs commands through the driver, one answer line per command. */
  function ask(commands: string[]): string[] {
    const r = spawnSync(driver, [], { input: commands.join('\n') + '\n', encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, commands.length);
    return lines;
  }

  it('builds freestanding: no outside symbols, links alone at 0x1000, no mutable globals, small frames', () => {
    for (const obj of objects) {
      const undefinedSymbols = execFileSync('nm', ['-u', obj], { encoding: 'utf8' }).split('\n')
        .map((l) => l.trim().split(/\s+/).pop()).filter((s): s is string => Boolean(s));
      for (const sym of undefinedSymbols) assert.ok(LIB_SYMBOLS.has(sym), `${path.basename(obj)} needs ${sym}`);
    }
    // Linked alone, without any library: an unresolved symbol (say a libgcc helper) fails here.
    execFileSync('cc', ['-nostdlib', '-static', '-no-pie', '-Wl,-Ttext=0x1000', '-Wl,-e,x25519_base', '-o',
      path.join(dir, 'lib.elf'), ...objects], { stdio: 'pipe' });
    // Stateless: nothing writable at file scope (constants only, in .rodata).
    const sections = execFileSync('objdump', ['-h', path.join(dir, 'lib.elf')], { encoding: 'utf8' });
    for (const m of sections.matchAll(/^\s*\d+\s+(\S+)\s+([0-9a-f]+)/gm)) {
      if (/^\.(data|bss)/.test(m[1])) assert.equal(parseInt(m[2], 16), 0, `${m[1]} is not empty`);
    }
    for (const name of LIB_SOURCES) {
      for (const line of fs.readFileSync(path.join(dir, `${name}.su`), 'utf8').trim().split('\n')) {
        const [where, bytes, kind] = line.split('\t');
        assert.equal(kind, 'static', `${where} has a dynamic frame`);
        assert.ok(Number(bytes) <= MAX_FRAME, `${where} uses ${bytes} bytes of stack`);
      }
    }
  });

  it('memory helpers: memmove both ways, memset, memcmp order, ct_equal, secure_wipe', () => {
    assert.deepEqual(ask(['mem-check']), ['ok']);
    const a = rand(40);
    const b = Buffer.from(a);
    b[39] ^= 1;
    assert.deepEqual(ask([`ct-equal ${hex(a)} ${hex(a)}`, `ct-equal ${hex(a)} ${hex(b)}`, 'ct-equal - -']), ['1', '0', '1']);
  });

  it('AES-256 block: FIPS 197 C.3 and 200 random blocks against aes-256-ecb', () => {
    const cases: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < 200; i++) cases.push([rand(32), rand(16)]);
    const answers = ask([
      'aes-block 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 00112233445566778899aabbccddeeff',
      ...cases.map(([k, b]) => `aes-block ${hex(k)} ${hex(b)}`),
    ]);
    assert.equal(answers[0], '8ea2b7ca516745bfeafc49904b496089');
    cases.forEach(([k, b], i) => {
      const c = crypto.createCipheriv('aes-256-ecb', k, null).setAutoPadding(false);
      assert.equal(answers[i + 1], hex(c.update(b)), `block ${i}`);
    });
  });

  it('AES-256-GCM: spec vectors, and every length 0..300 against node (encrypt, decrypt, forgeries, in place)', () => {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14 (zero key and IV).
    const zeroKey = '00'.repeat(32);
    const zeroIv = '00'.repeat(12);
    assert.deepEqual(ask([`gcm-enc ${zeroKey} ${zeroIv} - -`, `gcm-enc ${zeroKey} ${zeroIv} - ${'00'.repeat(16)}`]), [
      '- 530f8afbc74536b9a963b4f1c4cb738b',
      'cea7403d4d606b6e074ec5d3baf39d18 d0d1c8a799996bf0265b98b5d48ab919',
    ]);

    type Case = { key: Buffer; iv: Buffer; aad: Buffer; pt: Buffer; ct: Buffer; tag: Buffer };
    const cases: Case[] = [];
    for (let len = 0; len <= 300; len++) {
      const key = rand(32), iv = rand(12), pt = rand(len);
      // AAD: empty for a quarter of the cases, else up to 80 bytes (partial and whole blocks).
      const aad = rand(randInt(3) === 0 ? 0 : randInt(80));
      cases.push({ key, iv, aad, pt, ...nodeGcm(key, iv, aad, pt) });
    }
    const commands: string[] = [];
    for (const c of cases) {
      const common = `${hex(c.key)} ${hex(c.iv)} ${hex(c.aad)}`;
      const badTag = Buffer.from(c.tag);
      badTag[randInt(15)] ^= 1 << randInt(7);
      const badCt = Buffer.from(c.ct);
      if (badCt.length > 0) badCt[randInt(badCt.length - 1)] ^= 0x80;
      const badAad = Buffer.concat([c.aad, Buffer.of(0)]); // one more AAD byte, even a zero, changes the tag
      commands.push(
        `gcm-enc ${common} ${hex(c.pt)}`,
        `gcm-dec ${common} ${hex(c.ct)} ${hex(c.tag)}`,
        `gcm-dec ${common} ${hex(c.ct)} ${hex(badTag)}`,
        `gcm-dec ${common} ${hex(badCt)} ${hex(badCt.length > 0 ? c.tag : badTag)}`,
        `gcm-dec ${hex(c.key)} ${hex(c.iv)} ${hex(badAad)} ${hex(c.ct)} ${hex(c.tag)}`,
        `gcm-inplace ${common} ${hex(c.pt)}`,
      );
    }
    const answers = ask(commands);
    cases.forEach((c, i) => {
      const [enc, dec, forgedTag, forgedCt, forgedAad, inPlace] = answers.slice(6 * i, 6 * i + 6);
      const what = `plaintext length ${c.pt.length}, aad length ${c.aad.length}`;
      assert.equal(enc, `${hex(c.ct)} ${hex(c.tag)}`, what);
      assert.equal(dec, `ok ${hex(c.pt)}`, what);
      assert.equal(forgedTag, 'bad zeroed', what);
      assert.equal(forgedCt, 'bad zeroed', what);
      assert.equal(forgedAad, 'bad zeroed', what);
      assert.equal(inPlace, `${hex(c.ct)} ${hex(c.tag)} roundtrip-ok`, what);
    });
  });

  it('SHA-256: "abc", every length 0..1000 (one-shot and incremental), 1 MiB inputs', () => {
    const inputs = Array.from({ length: 1001 }, (_, len) => rand(len));
    const big = rand(1 << 20);
    const answers = ask([
      'sha256 616263',
      ...inputs.map((d) => `sha256 ${hex(d)}`),
      ...inputs.map((d) => `sha256-split ${hex(d)} ${1 + randInt(130)}`),
      `sha256 ${hex(big)}`,
      `sha256-split ${hex(big)} 5000`,
      `sha256-pattern ${1 << 20}`,
    ]);
    assert.equal(answers[0], 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    inputs.forEach((d, len) => {
      assert.equal(answers[1 + len], sha256(d), `length ${len}`);
      assert.equal(answers[1 + 1001 + len], sha256(d), `length ${len}, incremental`);
    });
    const pattern = Buffer.alloc(1 << 20);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 131 + 7) & 0xff;
    assert.deepEqual(answers.slice(-3), [sha256(big), sha256(big), sha256(pattern)]);
  });

  it('HMAC-SHA256: RFC 4231 cases 1 and 6, and 300 random keys of 0..199 bytes', () => {
    const cases = Array.from({ length: 300 }, (_, i) => ({ key: rand(i % 200), data: rand(randInt(300)) }));
    const answers = ask([
      `hmac ${'0b'.repeat(20)} ${Buffer.from('Hi There').toString('hex')}`,
      `hmac ${'aa'.repeat(131)} ${Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First').toString('hex')}`,
      ...cases.map((c) => `hmac ${hex(c.key)} ${hex(c.data)}`),
    ]);
    assert.equal(answers[0], 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    assert.equal(answers[1], '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54');
    cases.forEach((c, i) => {
      assert.equal(answers[2 + i], crypto.createHmac('sha256', c.key).update(c.data).digest('hex'), `key length ${c.key.length}`);
    });
  });

  it('HKDF-SHA256: RFC 5869 cases 1 and 3, and 200 random derivations against hkdfSync', () => {
    const cases = Array.from({ length: 200 }, (_, i) => ({
      salt: rand(i % 4 === 0 ? 0 : randInt(100)),
      ikm: rand(randInt(80)),
      info: rand(i % 5 === 0 ? 0 : randInt(100)),
      length: i === 0 ? 255 * 32 : i === 1 ? 32 : 1 + randInt(600),
    }));
    const answers = ask([
      `hkdf 000102030405060708090a0b0c ${'0b'.repeat(22)} f0f1f2f3f4f5f6f7f8f9 42`,
      `hkdf - ${'0b'.repeat(22)} - 42`,
      ...cases.map((c) => `hkdf ${hex(c.salt)} ${hex(c.ikm)} ${hex(c.info)} ${c.length}`),
    ]);
    assert.equal(answers[0], '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
    assert.equal(answers[1], '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
    cases.forEach((c, i) => {
      const expected = Buffer.from(crypto.hkdfSync('sha256', c.ikm, c.salt, c.info, c.length));
      assert.equal(answers[2 + i], hex(expected), `case ${i}: salt ${c.salt.length}, info ${c.info.length}, length ${c.length}`);
    });
  });

  it('X25519: RFC 7748 vectors, 64 node key pairs, 64 random points, low-order and non-canonical points', () => {
    // RFC 7748 section 5.2 (two single multiplications, then the iteration after 1 and 1000 rounds)
    // and section 6.1 (Alice and Bob).
    const alice = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
    const bob = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
    const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
    const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.deepEqual(ask([
      'x25519 a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4 e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'x25519 4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      'x25519-iter 1',
      'x25519-iter 1000',
      `x25519-base ${alice}`, `x25519-base ${bob}`, `x25519 ${alice} ${bobPub}`, `x25519 ${bob} ${alicePub}`,
    ]), [
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
      '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079',
      '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51',
      alicePub, bobPub, shared, shared,
    ]);

    // Key pairs from node: the public key is scalar * 9, the shared secret is node's.
    const pairs = Array.from({ length: 64 }, () => {
      const a = crypto.generateKeyPairSync('x25519');
      const b = crypto.generateKeyPairSync('x25519');
      return {
        a: rawPrivate(a.privateKey), aPub: rawPublic(a.publicKey), bPub: rawPublic(b.publicKey),
        shared: crypto.diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }),
      };
    });
    // Arbitrary scalars and 32-byte strings as points: top bit set or not, values >= p or not.
    const arbitrary = Array.from({ length: 64 }, () => ({ scalar: rand(32), point: rand(32) }));
    const answers = ask([
      ...pairs.flatMap((p) => [`x25519-base ${hex(p.a)}`, `x25519 ${hex(p.a)} ${hex(p.bPub)}`]),
      ...arbitrary.map((c) => `x25519 ${hex(c.scalar)} ${hex(c.point)}`),
    ]);
    pairs.forEach((p, i) => {
      assert.equal(answers[2 * i], hex(p.aPub), `pair ${i}: public key`);
      assert.equal(answers[2 * i + 1], hex(p.shared), `pair ${i}: shared secret`);
    });
    arbitrary.forEach((c, i) => {
      const privateKey = crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, c.scalar]), format: 'der', type: 'pkcs8' });
      const publicKey = crypto.createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, c.point]), format: 'der', type: 'spki' });
      assert.equal(answers[128 + i], hex(crypto.diffieHellman({ privateKey, publicKey })), `point ${hex(c.point)}`);
    });

    // Low-order points give all zeros (u = 0, u = 1, and p, which is 0 written non-canonically);
    // p + 9 is the base point written non-canonically.
    const p = Buffer.alloc(32, 0xff);
    p[0] = 0xed;
    p[31] = 0x7f;
    const pPlus9 = Buffer.from(p);
    pPlus9[0] = 0xf6;
    const zeroPoint = '00'.repeat(32);
    const onePoint = '01' + '00'.repeat(31);
    const scalar = hex(rand(32));
    const [z0, z1, zp, base, basePlusP] = ask([`x25519 ${scalar} ${zeroPoint}`, `x25519 ${scalar} ${onePoint}`,
      `x25519 ${scalar} ${hex(p)}`, `x25519-base ${scalar}`, `x25519 ${scalar} ${hex(pPlus9)}`]);
    assert.deepEqual([z0, z1, zp], [zeroPoint, zeroPoint, zeroPoint]);
    assert.equal(basePlusP, base);
  });
});
