// Verifying an SNP attestation report: the certificate chain (lib/snp/certs), the report's
// signature with the VCEK/VLEK key, and that the report belongs to that key (chip id, TCB).
// Every check is listed with its verdict and reason; assertAttestation throws instead.
// SnpReportVerifier checks the chain once and then any number of reports against it.
import type { KeyObject } from 'node:crypto';

import { SevArgumentError, SevCertificateError } from '../errors';
import { leToBeFixed } from '../certs/keys';
import { ecdsaVerify } from '../certs/signing';
import {
  formatSnpLinks, verifySnpChain, vcekExtensions, vcekHwIdLength, vcekSplNames,
  type FieldMismatch, type SnpChainInput, type SnpChainOptions, type SnpChainReport, type SnpLink, type VcekExtensions,
} from './certs';
import { checkSnpCrl, parseSnpCrl, type SnpCrl } from './crl';
import { parseAttestationReport, REPORT_SIZE, type AttestationReport, type SnpGeneration, type TcbVersion } from './report';

export interface AttestationInput extends SnpChainInput, SnpChainOptions {
  /** The raw 1184-byte ATTESTATION_REPORT. */
  report: Uint8Array;
  /** The ARK's CRL (KDS `crl`): when given, one more link checks it and the ASK/ASVK and VCEK/VLEK serials. */
  crl?: SnpCrl | Uint8Array;
}

export interface AttestationVerification {
  ok: boolean;
  generation?: SnpGeneration;
  /** SHA-256 of the ARK's SPKI DER, when the ARK parsed. */
  arkFingerprint?: string;
  endorsement: 'VCEK' | 'VLEK';
  /** ARK ⟶ ARK, ARK ⟶ ASK/ASVK, ASK/ASVK ⟶ VCEK/VLEK, VCEK/VLEK ⟶ REPORT, VCEK/VLEK ≡ REPORT. */
  links: SnpLink[];
}

const SIGNING_KEYS: Record<AttestationReport['signingKey'], string> = { vcek: 'VCEK', vlek: 'VLEK', none: 'no key' };

/** Verifies chain, report signature and report-vs-certificate fields; never throws for bad certificates or signatures. */
export function verifyAttestation(input: AttestationInput): AttestationVerification {
  if (typeof input !== 'object' || input === null) {
    throw new SevArgumentError('verifyAttestation', 'expected { report, vcek, ask, ark } (or asvk and vlek)');
  }
  const { report, now, generation, trustedArks, crl, ...certs } = input;
  checkReportSize('verifyAttestation', report);
  const result = new SnpReportVerifier(certs, { now, generation, trustedArks }).verify(report);
  if (crl === undefined) return result;
  result.links.push(revocationLink(crl, certs, result.endorsement, now));
  result.ok = result.links.every((l) => l.ok);
  return result;
}

/**
 * A chain verified once, then any number of reports checked against its VCEK/VLEK: for a service
 * that sees many reports from the same machines. `verify(report)` answers as verifyAttestation
 * does with the same certificates — the chain's links included — without re-checking the chain.
 * The chain is checked when the verifier is made, at `now` (default: that moment): make a new
 * verifier to check it again (say, for certificate expiry).
 */
export class SnpReportVerifier {
  /** The chain's verdict (frozen). */
  readonly chain: Readonly<SnpChainReport>;
  // What every report check needs from the endorsement certificate, read once.
  readonly #key?: KeyObject;
  readonly #extensions?: VcekExtensions;
  readonly #extensionsProblem?: string;

  constructor(certs: SnpChainInput, opts: SnpChainOptions = {}) {
    const chain = verifySnpChain(certs, opts);
    chain.links = Object.freeze(chain.links.map((l) => Object.freeze({ ...l }))) as SnpLink[];
    this.chain = Object.freeze(chain);
    const leaf = chain.endorsementCert;
    if (!leaf) return;
    this.#key = leaf.x509.publicKey;
    try {
      this.#extensions = vcekExtensions(leaf);
    } catch (e) {
      if (!(e instanceof SevCertificateError)) throw e;
      this.#extensionsProblem = `the ${chain.endorsement}'s AMD extensions: ${e.message}`;
    }
  }

  /** Checks one report (its signature and its chip id and TCB against the certificate); never throws for a bad report. */
  verify(report: Uint8Array): AttestationVerification {
    checkReportSize('SnpReportVerifier.verify', report);
    const chain = this.chain;
    const key = chain.endorsement;
    // The report is read with the chain's generation (its TCB layout); a malformed one (reserved
    // bits set, unknown version) fails both report checks with the parser's reason.
    let fields: AttestationReport | undefined;
    let malformed: string | undefined;
    try {
      fields = parseAttestationReport(report, chain.generation ? { generation: chain.generation } : {});
    } catch (e) {
      if (!(e instanceof SevArgumentError)) throw e;
      malformed = `malformed report: ${e.message}`;
    }
    const missing = malformed ?? (this.#key ? undefined : `${key} not usable (see the chain)`);

    const signature: SnpLink = { signer: key, subject: 'REPORT', check: 'signature', ok: false };
    const reason = missing ?? signatureProblem(fields!, key, this.#key!);
    if (reason) signature.reason = reason;
    else signature.ok = true;

    const consistency: SnpLink = { signer: key, subject: 'REPORT', check: 'fields', ok: false };
    if (missing) consistency.reason = missing;
    else if (!chain.generation) consistency.reason = 'unknown generation (the ARK is not a pinned root; pass `generation`): cannot decode the report TCB';
    else if (this.#extensionsProblem) consistency.reason = this.#extensionsProblem;
    else {
      const mismatches = compareFields(this.#extensions!, fields!.chipId, fields!.reportedTcb, key, chain.generation);
      if (mismatches.length === 0) consistency.ok = true;
      else {
        consistency.reason = `the report does not match the ${key} (${mismatches.map((m) => m.field).join(', ')})`;
        consistency.mismatches = mismatches;
      }
    }

    const links = [...chain.links.map((l) => ({ ...l })), signature, consistency];
    return {
      ok: links.every((l) => l.ok),
      ...(chain.generation ? { generation: chain.generation } : {}),
      ...(chain.arkFingerprint ? { arkFingerprint: chain.arkFingerprint } : {}),
      endorsement: key,
      links,
    };
  }
}

function checkReportSize(command: string, report: unknown): asserts report is Uint8Array {
  if (!(report instanceof Uint8Array) || report.length !== REPORT_SIZE) {
    throw new SevArgumentError(command, `an attestation report is ${REPORT_SIZE} bytes; got ${report instanceof Uint8Array ? report.length : typeof report}`);
  }
}

/** Like verifyAttestation, but throws a SevCertificateError listing every check when one fails. */
export function assertAttestation(input: AttestationInput): AttestationVerification {
  const result = verifyAttestation(input);
  if (!result.ok) throw new SevCertificateError('SNP_VERIFY', `the attestation report does not verify:\n${formatAttestation(result)}`);
  return result;
}

/** One ✅/❌ line per check, the root first (like `sev verify`). */
export function formatAttestation(result: AttestationVerification): string {
  const generation = result.generation ?? 'unknown generation';
  return `${result.ok ? '✅' : '❌'} SEV-SNP attestation (${generation}, signed by the ${result.endorsement})\n${formatSnpLinks(result.links)}`;
}

/** ECDSA P-384 / SHA-384 over the first 0x2A0 bytes; R and S are 72-byte little-endian fields. */
function signatureProblem(fields: AttestationReport, key: 'VCEK' | 'VLEK', publicKey: KeyObject): string | undefined {
  const named = SIGNING_KEYS[fields.signingKey];
  if (named !== key) return `the report says it is signed by ${named}, not the ${key}`;
  // node wants r‖s big-endian, 48 bytes each; the fields' upper 24 bytes must be zero.
  const r = leToBeFixed(fields.signature.r, 48);
  const s = leToBeFixed(fields.signature.s, 48);
  if (!r || !s) return 'the signature does not fit P-384 (R or S has bytes above the 48th)';
  return ecdsaVerify(publicKey, 'sha384', fields.signedBytes, r, s) ? undefined : 'bad signature (ECDSA P-384 SHA-384)';
}

/** ARK ⟶ CRL: the CRL verifies with the ARK and lists neither the ASK/ASVK nor the VCEK/VLEK. */
function revocationLink(crl: SnpCrl | Uint8Array, certs: SnpChainInput, key: 'VCEK' | 'VLEK', now?: Date): SnpLink {
  const link: SnpLink = { signer: 'ARK', subject: 'CRL', check: 'revocation', ok: false };
  const named: Record<string, SnpChainInput['ark']> = { ASK: certs.ask, ASVK: certs.asvk, [key]: certs[key === 'VCEK' ? 'vcek' : 'vlek'] };
  try {
    const list = crl instanceof Uint8Array ? parseSnpCrl(crl) : crl;
    if (certs.ark === undefined) throw new SevCertificateError('SNP_CRL', 'ARK not provided');
    const present = Object.fromEntries(Object.entries(named).filter(([, c]) => c !== undefined)) as Record<string, NonNullable<SnpChainInput['ark']>>;
    const result = checkSnpCrl(list, certs.ark, present, now);
    const problems = [...(result.problem ? [result.problem] : []), ...result.revoked.map((n) => `the ${n} is revoked`)];
    if (problems.length === 0) link.ok = true;
    else link.reason = problems.join('; ');
  } catch (e) {
    if (!(e instanceof SevCertificateError)) throw e;
    link.reason = `CRL not usable: ${e.message}`;
  }
  return link;
}

/** The certificate's values are expected, the report's are actual. */
function compareFields(ext: VcekExtensions, chipId: Buffer, tcb: TcbVersion, key: 'VCEK' | 'VLEK', generation: SnpGeneration): FieldMismatch[] {
  const out: FieldMismatch[] = [];
  if (key === 'VCEK') {
    const width = vcekHwIdLength(generation);
    const actual = chipId.subarray(0, width).toString('hex');
    if (!ext.hwId) out.push({ field: 'chip_id', expected: '(the VCEK has no hwID)', actual });
    else if (ext.hwId.length !== width || ext.hwId.toString('hex') !== actual) {
      out.push({ field: 'chip_id', expected: ext.hwId.toString('hex'), actual });
    }
  } else if (ext.hwId) {
    out.push({ field: 'chip_id', expected: '(a VLEK has no hwID)', actual: `hwID ${ext.hwId.toString('hex')}` });
  }
  for (const name of vcekSplNames(generation)) {
    const expected = ext.tcb[name];
    if (expected !== tcb[name]) out.push({ field: `reported_tcb.${name}`, expected: String(expected ?? '(missing in the certificate)'), actual: String(tcb[name]) });
  }
  return out;
}
