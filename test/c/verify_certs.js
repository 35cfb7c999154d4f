// Verifies an emulator state directory's certificates with node:crypto, independently of
// the emulator's code: ARK (self) -> ASK -> CEK (RSA-PSS), CEK -> PEK <- OCA, PEK -> PDH
// (ECDSA over the first 0x414 bytes), plus the layout rules real certificates follow.
// With a sev_client JSON on stdin (`sev_client pdh | node verify_certs.js DIR -`), also
// checks that the exported PDH and chain match and verify.
//   node verify_certs.js STATE_DIR [-]      prints "ok ..." or throws
// VERIFY_AMD=1 drops the emulator-ARK check, to run it on real AMD certificates.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const rev = (b) => Buffer.from(b).reverse();
const assert = (c, m) => { if (!c) throw new Error(m); };

function caCert(buf) {
  const es = buf.readUInt32LE(0x38) / 8, ms = buf.readUInt32LE(0x3c) / 8;
  assert(buf.readUInt32LE(0) === 1, 'CA version');
  assert(buf.length === 0x40 + es + 2 * ms, `CA size ${buf.length}`);
  const e = rev(buf.subarray(0x40, 0x40 + es)), n = rev(buf.subarray(0x40 + es, 0x40 + es + ms));
  const key = crypto.createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  return { key, ms, keyId: buf.subarray(4, 20), certifying: buf.subarray(20, 36), usage: buf.readUInt32LE(0x24),
    signed: buf.subarray(0, 0x40 + es + ms), sig: rev(buf.subarray(0x40 + es + ms)) };
}
function pss(key, hash, data, sig) {
  return crypto.verify(hash, data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
    saltLength: hash === 'sha384' ? 48 : 32 }, sig);
}
function sevKey(c) {
  assert(c.readUInt32LE(16) === 2, 'curve P-384');
  const x = rev(c.subarray(20, 92)), y = rev(c.subarray(92, 164));
  assert(x.subarray(0, 24).every((b) => !b) && y.subarray(0, 24).every((b) => !b), 'coordinate padding');
  assert(c.subarray(164, 0x414).every((b) => !b), 'pubkey padding');
  return crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: x.subarray(24).toString('base64url'),
    y: y.subarray(24).toString('base64url') }, format: 'jwk' });
}
const slot = (c, i) => { const o = i ? 0x61c : 0x414; return { usage: c.readUInt32LE(o), algo: c.readUInt32LE(o + 4), sig: c.subarray(o + 8, o + 520) }; };
function ecdsa(c, i, key) {
  const s = slot(c, i);
  assert(s.algo === 2, `slot ${i} algo ${s.algo}`);
  assert(s.sig.subarray(144).every((b) => !b), 'sig padding');
  const sig = Buffer.concat([rev(s.sig.subarray(0, 72)).subarray(24), rev(s.sig.subarray(72, 144)).subarray(24)]);
  return crypto.verify('sha256', c.subarray(0, 0x414), { key, dsaEncoding: 'ieee-p1363' }, sig);
}
function sevCert(c, usage, algo) {
  assert(c.length === 2084, 'cert size');
  assert(c.readUInt32LE(0) === 1, 'cert version');
  assert(c.readUInt32LE(8) === usage, `usage ${c.readUInt32LE(8).toString(16)} != ${usage.toString(16)}`);
  assert(c.readUInt32LE(12) === algo, 'algo');
  return sevKey(c);
}

const dir = process.argv[2];
const rd = (n) => fs.readFileSync(path.join(dir, n));
const ark = caCert(rd('ark.cert')), ask = caCert(rd('ask.cert'));
const hash = ark.ms === 512 ? 'sha384' : 'sha256';
assert(ark.usage === 0 && ask.usage === 0x13, 'CA usages');
assert(ark.keyId.equals(ark.certifying) && ask.certifying.equals(ark.keyId), 'CA key ids');
if (!process.env.VERIFY_AMD) assert(ark.keyId.subarray(0, 10).toString() === 'SEVEMU-ARK', 'emulator ARK id');
assert(pss(ark.key, hash, ark.signed, ark.sig), 'ARK self-signature');
assert(pss(ark.key, hash, ask.signed, ask.sig), 'ASK signed by ARK');
assert(Buffer.concat([rd('ask.cert'), rd('ark.cert')]).equals(rd('ask_ark.cert')), 'ask_ark.cert = ASK || ARK');

function verifyPlatform(cek, pek, oca, pdh) {
  const cekKey = sevCert(cek, 0x1004, 2), pekKey = sevCert(pek, 0x1002, 2);
  const ocaKey = sevCert(oca, 0x1001, 2); sevCert(pdh, 0x1003, 3);
  const cs = slot(cek, 0);
  assert(cs.usage === 0x13 && cs.algo === (hash === 'sha384' ? 0x101 : 1), 'CEK sig slot');
  assert(pss(ask.key, hash, cek.subarray(0, 0x414), rev(cs.sig.subarray(0, ask.ms))), 'CEK signed by ASK');
  assert(slot(cek, 1).usage === 0x1000, 'CEK sig2 empty');
  assert(slot(oca, 0).usage === 0x1001 && ecdsa(oca, 0, ocaKey), 'OCA self-signed');
  assert(slot(pek, 0).usage === 0x1001 && ecdsa(pek, 0, ocaKey), 'PEK signed by OCA (sig1)');
  assert(slot(pek, 1).usage === 0x1004 && ecdsa(pek, 1, cekKey), 'PEK signed by CEK (sig2)');
  assert(slot(pdh, 0).usage === 0x1002 && ecdsa(pdh, 0, pekKey), 'PDH signed by PEK');
  assert(slot(pdh, 1).usage === 0x1000, 'PDH sig2 empty');
}
verifyPlatform(rd('cek.cert'), rd('pek.cert'), rd('oca.cert'), rd('pdh.cert'));
let extra = '';
if (process.argv[3] === '-') {
  const j = JSON.parse(fs.readFileSync(0, 'utf8'));
  const pdh = Buffer.from(j.pdh.pdh_hex, 'hex'), chain = Buffer.from(j.pdh.chain_hex, 'hex');
  assert(chain.length === 6252, 'chain length');
  const [pek, oca, cek] = [0, 1, 2].map((i) => chain.subarray(i * 2084, (i + 1) * 2084));
  verifyPlatform(cek, pek, oca, pdh);
  assert(pdh.equals(rd('pdh.cert')) && pek.equals(rd('pek.cert')) && cek.equals(rd('cek.cert')), 'export = state');
  extra = ' + exported PDH/chain';
}
console.log(`ok ${dir}: ARK(${ark.ms * 8}, ${hash}) -> ASK -> CEK -> PEK <- OCA, PEK -> PDH${extra}`);
