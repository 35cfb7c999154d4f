// The SEV (pre-SNP) attestation report of KVM_SEV_GET_ATTESTATION_REPORT (SEV API spec 55766,
// ATTESTATION, firmware API ≥ 0.23): the verifier's nonce, the launch digest and the policy,
// signed by the platform's PEK (ECDSA P-384, SHA-256, r/s little-endian) over bytes 0x00..0x33.
//   0x00 mnonce[16]  0x10 launch_digest[32]  0x30 policy  0x34 sig_usage  0x38 sig_algo
//   0x3C reserved    0x40 sig r[72]  0x88 sig s[72]  (0xD0 bytes)
import { createVerify } from 'node:crypto';

import { Algorithm, Usage } from '../certs/constants';
import { leToBeFixed } from '../certs/keys';
import { SevCertificate } from '../certs/sev-cert';
import { SevArgumentError } from '../errors';

export const ATTESTATION_REPORT_SIZE = 0xd0;
const SIGNED_BYTES = 0x34;

export interface AttestationReport {
  mnonce: Buffer;
  launchDigest: Buffer;
  policy: number;
  signatureUsage: number;
  signatureAlgorithm: number;
  /** r and s, big-endian, 48 bytes each (P-384). */
  r: Buffer;
  s: Buffer;
  raw: Buffer;
}

/** Little-endian 72-byte field → big-endian 48-byte P-384 scalar. */
function scalar(le: Buffer): Buffer {
  const be = leToBeFixed(le, 48);
  if (!be) throw new SevArgumentError('attestation', 'signature scalar exceeds P-384');
  return be;
}

export function parseAttestationReport(bytes: Uint8Array): AttestationReport {
  if (!(bytes instanceof Uint8Array) || bytes.length !== ATTESTATION_REPORT_SIZE) {
    throw new SevArgumentError('attestation', `an SEV attestation report is ${ATTESTATION_REPORT_SIZE} bytes, got ${bytes?.length}`);
  }
  const b = Buffer.from(bytes);
  return {
    mnonce: b.subarray(0, 0x10),
    launchDigest: b.subarray(0x10, 0x30),
    policy: b.readUInt32LE(0x30),
    signatureUsage: b.readUInt32LE(0x34),
    signatureAlgorithm: b.readUInt32LE(0x38),
    r: scalar(b.subarray(0x40, 0x88)),
    s: scalar(b.subarray(0x88, 0xd0)),
    raw: b,
  };
}

/**
 * True when the PEK (from a verified chain) signed this report: the certificate must be a PEK
 * with an ECDSA SHA-256 key, and the report must say the same (SIG_USAGE = PEK, SIG_ALGO =
 * ECDSA SHA-256, as the spec defines the ATTESTATION command). A valid signature by another key
 * (a PDH, an OCA) or under another declared algorithm does not pass.
 */
export function verifyAttestationReport(report: AttestationReport, pek: SevCertificate | Uint8Array): boolean {
  const cert = pek instanceof SevCertificate ? pek : SevCertificate.parse(pek);
  if (cert.usage !== Usage.PEK || cert.algorithm !== Algorithm.ECDSA_SHA256) return false;
  if (report.signatureUsage !== Usage.PEK || report.signatureAlgorithm !== Algorithm.ECDSA_SHA256) return false;
  const v = createVerify('sha256');
  v.update(report.raw.subarray(0, SIGNED_BYTES));
  return v.verify({ key: cert.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([report.r, report.s]));
}
