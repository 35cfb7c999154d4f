// The SEV (pre-SNP) attestation report's signature check: only the PEK, with the usage and
// algorithm the ATTESTATION command defines, makes a report verify. SIG_USAGE and SIG_ALGO sit
// after the signed bytes (0x00..0x33), so the checker must not trust them to be what they say.
import * as assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

import { Algorithm, beToLe, SevCertificate, Usage } from '../../lib/certs/index';
import { ATTESTATION_REPORT_SIZE, parseAttestationReport, verifyAttestationReport } from '../../lib/owner/index';

function report(privateKey: KeyObject, usage = Usage.PEK, algorithm = Algorithm.ECDSA_SHA256): Buffer {
  const r = Buffer.alloc(ATTESTATION_REPORT_SIZE);
  r.fill(0x11, 0, 0x10); // mnonce
  r.fill(0x22, 0x10, 0x30); // launch digest
  r.writeUInt32LE(0x1, 0x30); // policy
  r.writeUInt32LE(usage, 0x34);
  r.writeUInt32LE(algorithm, 0x38);
  const rs = sign('sha256', r.subarray(0, 0x34), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  beToLe(rs.subarray(0, 48), 72).copy(r, 0x40);
  beToLe(rs.subarray(48), 72).copy(r, 0x88);
  return r;
}

describe('SEV attestation report signature', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const pek = SevCertificate.create({ usage: Usage.PEK, publicKey });

  it('a report signed by the PEK verifies', () => {
    assert.equal(verifyAttestationReport(parseAttestationReport(report(privateKey)), pek), true);
  });

  it('the same key as any other certificate (PDH, OCA) does not', () => {
    const pdh = SevCertificate.create({ usage: Usage.PDH, publicKey });
    const oca = SevCertificate.create({ usage: Usage.OCA, publicKey });
    for (const cert of [pdh, oca]) assert.equal(verifyAttestationReport(parseAttestationReport(report(privateKey)), cert), false, `usage ${cert.usage}`);
  });

  it('a report that declares another usage or algorithm does not, though the signature is good', () => {
    assert.equal(verifyAttestationReport(parseAttestationReport(report(privateKey, Usage.PDH)), pek), false);
    assert.equal(verifyAttestationReport(parseAttestationReport(report(privateKey, Usage.PEK, Algorithm.ECDSA_SHA384)), pek), false);
  });

  it('another key\'s signature does not', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    assert.equal(verifyAttestationReport(parseAttestationReport(report(other)), pek), false);
  });
});
