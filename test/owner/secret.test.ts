// LAUNCH_SECRET packets for OVMF's secret table: table format, padding, encryption and MAC.
import * as assert from 'node:assert/strict';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';

import { SevArgumentError } from '../../lib/errors';
import { guidToBytes, KNOWN_GUIDS } from '../../lib/owner/guid';
import { buildLaunchSecret, buildSecretTable } from '../../lib/owner/secret';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

describe('owner: launch secret', () => {
  const g1 = '736869e5-84f0-4973-92ec-06879ce3da0b';
  const g2 = '23058844-597b-42fb-8259-a0f5d9d495af';

  it('the secret table is GUID ‖ u32 len ‖ (GUID ‖ u32 len ‖ data)... zero-padded to 16', () => {
    const t = buildSecretTable([{ guid: g1, data: Buffer.from('abc') }, { guid: g2, data: Buffer.from('hello') }]);
    const expected = Buffer.concat([
      guidToBytes(KNOWN_GUIDS.sevSecretTable), u32(20 + 23 + 25),
      guidToBytes(g1), u32(23), Buffer.from('abc'),
      guidToBytes(g2), u32(25), Buffer.from('hello'),
    ]);
    assert.equal(t.length, 80);
    assert.deepEqual(t.subarray(0, expected.length), expected);
    assert.deepEqual(t.subarray(expected.length), Buffer.alloc(80 - expected.length));
  });

  it('a table already a multiple of 16 gets no padding', () => {
    assert.equal(buildSecretTable([{ guid: g1, data: Buffer.alloc(16344) }]).length, 16384);
    assert.equal(buildSecretTable([{ guid: g1, data: Buffer.alloc(16343) }]).length, 16384);
  });

  it('header = flags ‖ IV ‖ HMAC(TIK, 01 ‖ flags ‖ IV ‖ len ‖ len ‖ ciphertext ‖ measurement); payload decrypts to the table', () => {
    const tek = randomBytes(16);
    const tik = randomBytes(16);
    const blob = randomBytes(48);
    const iv = randomBytes(16);
    const secrets = [{ guid: g1, data: Buffer.from('disk passphrase') }];
    const p = buildLaunchSecret({ tek, tik, measurement: blob, secrets, iv });
    const table = buildSecretTable(secrets);
    const d = createDecipheriv('aes-128-ctr', tek, iv);
    assert.deepEqual(Buffer.concat([d.update(p.ciphertext), d.final()]), table);
    const mac = createHmac('sha256', tik)
      .update(Buffer.concat([Buffer.of(1), u32(0), iv, u32(table.length), u32(table.length), p.ciphertext, blob.subarray(0, 32)]))
      .digest();
    assert.deepEqual(p.header, Buffer.concat([u32(0), iv, mac]));
    // The 32-byte measurement alone gives the same packet.
    assert.deepEqual(buildLaunchSecret({ tek, tik, measurement: blob.subarray(0, 32), secrets, iv }), p);
  });

  it('rejects wrong key, IV and measurement sizes, and an empty secret list', () => {
    const ok = { tek: randomBytes(16), tik: randomBytes(16), measurement: randomBytes(48), secrets: [{ guid: g1, data: Buffer.from('x') }] };
    assert.throws(() => buildLaunchSecret({ ...ok, tek: randomBytes(32) }), /TEK must be 16 bytes/);
    assert.throws(() => buildLaunchSecret({ ...ok, tik: randomBytes(8) }), /TIK must be 16 bytes/);
    assert.throws(() => buildLaunchSecret({ ...ok, iv: randomBytes(12) }), /IV must be 16 bytes/);
    assert.throws(() => buildLaunchSecret({ ...ok, measurement: randomBytes(40) }), /32 bytes/);
    assert.throws(() => buildLaunchSecret({ ...ok, secrets: [] }), SevArgumentError);
    assert.throws(() => buildLaunchSecret({ ...ok, secrets: [{ guid: 'not-a-guid', data: Buffer.from('x') }] }), /not a GUID/);
  });
});
