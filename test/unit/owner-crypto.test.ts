// The owner-side SEV crypto (KDF, session wrap, measurement, secret MAC) against known values
// and against an independent re-derivation with node:crypto primitives.
import * as assert from 'node:assert/strict';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';

import { hmacSha256, macEqual, sevKdf } from '../../lib/owner/kdf';
import { computeMeasurement, parseLaunchMeasure, verifyMeasurement } from '../../lib/owner/measurement';
import { buildSecretPacket } from '../../lib/owner/secret';
import { buildSessionBlob, parseSessionBlob } from '../../lib/owner/session';

describe('owner crypto', () => {
  it('KDF of a zero key matches the published sev-master-secret value', () => {
    // Known answer used by virtee/sev's own unit test for the same KDF.
    assert.equal(sevKdf(Buffer.alloc(16), 'sev-master-secret', Buffer.alloc(16), 16).toString('hex'), 'ab4d269fcc62bedb4511d56c386ce706');
    assert.equal(
      hmacSha256(Buffer.alloc(16), Buffer.alloc(4)).toString('hex'),
      'aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af',
    );
  });

  it('KDF output longer than one block concatenates counter blocks', () => {
    const k = randomBytes(16);
    const long = sevKdf(k, 'x', Buffer.alloc(0), 48);
    assert.equal(long.length, 48);
    const block2 = createHmac('sha256', k).update(Buffer.from([2, 0, 0, 0])).update('x').update(Buffer.of(0)).update(Buffer.from([0x80, 1, 0, 0])).digest();
    assert.deepEqual(long.subarray(32), block2.subarray(0, 16));
  });

  it('session blob unwraps to the TEK/TIK with the derived KEK, and its MACs check', () => {
    const z = randomBytes(48);
    const { blob, keys } = buildSessionBlob(z, 0x5);
    assert.equal(blob.length, 128);
    const p = parseSessionBlob(blob);
    const master = sevKdf(z, 'sev-master-secret', p.nonce, 16);
    const kek = sevKdf(master, 'sev-kek', Buffer.alloc(0), 16);
    const kik = sevKdf(master, 'sev-kik', Buffer.alloc(0), 16);
    assert.ok(macEqual(hmacSha256(kik, p.wrapTk), p.wrapMac));
    const d = createDecipheriv('aes-128-ctr', kek, p.wrapIv);
    const tk = Buffer.concat([d.update(p.wrapTk), d.final()]);
    assert.deepEqual(tk, Buffer.concat([keys.tek, keys.tik]));
    assert.ok(macEqual(hmacSha256(keys.tik, Buffer.from([5, 0, 0, 0])), p.policyMac));
  });

  it('measurement is HMAC(TIK, 04 ‖ major ‖ minor ‖ build ‖ policy ‖ digest ‖ mnonce)', () => {
    const tik = randomBytes(16);
    const digest = randomBytes(32);
    const mnonce = randomBytes(16);
    const m = computeMeasurement({ apiMajor: 1, apiMinor: 55, build: 21, policy: 0x1, tik, digest, mnonce });
    const manual = createHmac('sha256', tik).update(Buffer.from([4, 1, 55, 21, 1, 0, 0, 0])).update(digest).update(mnonce).digest();
    assert.deepEqual(m, manual);
    assert.ok(verifyMeasurement(m, { apiMajor: 1, apiMinor: 55, build: 21, policy: 1, tik, digest, mnonce }));
    assert.ok(!verifyMeasurement(m, { apiMajor: 1, apiMinor: 55, build: 21, policy: 3, tik, digest, mnonce }));
    const blob = Buffer.concat([m, mnonce]);
    assert.deepEqual(parseLaunchMeasure(blob).mnonce, mnonce);
    assert.throws(() => parseLaunchMeasure(blob.subarray(1)), /48 bytes/);
  });

  it('secret packet decrypts with the TEK and its MAC covers the measurement', () => {
    const keys = { tek: randomBytes(16), tik: randomBytes(16) };
    const measure = randomBytes(32);
    const payload = Buffer.from('0123456789abcdef'.repeat(2));
    const { header, ciphertext } = buildSecretPacket(keys, measure, payload);
    assert.equal(header.length, 52);
    const iv = header.subarray(4, 20);
    const d = createDecipheriv('aes-128-ctr', keys.tek, iv);
    assert.deepEqual(Buffer.concat([d.update(ciphertext), d.final()]), payload);
    const len = Buffer.from([32, 0, 0, 0]);
    const mac = createHmac('sha256', keys.tik).update(Buffer.of(1)).update(header.subarray(0, 4)).update(iv).update(len).update(len).update(ciphertext).update(measure).digest();
    assert.deepEqual(header.subarray(20), mac);
    assert.throws(() => buildSecretPacket(keys, measure, Buffer.alloc(15)), /multiple of 16/);
  });
});
