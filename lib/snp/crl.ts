// AMD's certificate revocation lists (KDS `vcek/v1/<product>/crl`, `vlek/v1/<product>/crl`): DER
// X.509 CRLs (RFC 5280 section 5) signed by the ARK with RSASSA-PSS SHA-384. Read just enough of
// one: the issuer, thisUpdate/nextUpdate, the revoked serial numbers, the signed part; then check
// the signature with the ARK and look the ASK/ASVK and VCEK/VLEK serials up.
import { rsaPssVerify } from '../certs/signing';
import { SevCertificateError } from '../errors';
import {
  childrenOf, expectTag, parseSnpCertificate, pssAlgorithmProblem, readTlv, signedParts,
  type SnpCertInput, type Tlv,
} from './certs';

export interface SnpCrl {
  der: Buffer;
  /** The signed bytes (TBSCertList DER). */
  tbs: Buffer;
  signatureAlgorithm: Buffer;
  tbsSignatureAlgorithm: Buffer;
  signature: Buffer;
  /** The issuer Name, DER (compared byte for byte with the ARK's subject). */
  issuer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Revoked certificates: serial number in upper-case hex without leading zeros, and when. */
  revoked: { serial: string; date: Date }[];
}

const CMD = 'SNP_CRL';
const bad = (message: string, cause?: unknown) => new SevCertificateError(CMD, message, cause);

/** Parses a DER CRL (a PEM `X509 CRL` block is accepted too); throws a SevCertificateError naming what is wrong. */
export function parseSnpCrl(input: Uint8Array | string): SnpCrl {
  const der = crlDer(input);
  const { tbsTlv, algTlv, sigTlv } = signedParts(der, 'CRL');

  const parts = childrenOf(der, tbsTlv);
  let i = parts[0]?.tag === 0x02 ? 1 : 0; // version v2 is optional
  const tbsAlg = expectTag(parts[i++], 0x30, 'TBSCertList.signature');
  const issuer = expectTag(parts[i++], 0x30, 'issuer');
  const thisUpdate = readTime(der, parts[i++], 'thisUpdate');
  let nextUpdate: Date | undefined;
  if (parts[i] && (parts[i].tag === 0x17 || parts[i].tag === 0x18)) nextUpdate = readTime(der, parts[i++], 'nextUpdate');
  const revoked: SnpCrl['revoked'] = [];
  if (parts[i]?.tag === 0x30) {
    for (const entry of childrenOf(der, parts[i++])) {
      const [serial, date] = childrenOf(der, expectTag(entry, 0x30, 'revokedCertificate'));
      expectTag(serial, 0x02, 'userCertificate');
      revoked.push({ serial: serialHex(der.subarray(serial.start, serial.end)), date: readTime(der, date, 'revocationDate') });
    }
  }
  if (parts[i] && parts[i].tag !== 0xa0) throw bad(`unexpected DER tag 0x${parts[i].tag.toString(16)} in TBSCertList`);
  return {
    der,
    tbs: der.subarray(tbsTlv.offset, tbsTlv.end),
    signatureAlgorithm: der.subarray(algTlv.offset, algTlv.end),
    tbsSignatureAlgorithm: der.subarray(tbsAlg.offset, tbsAlg.end),
    signature: der.subarray(sigTlv.start + 1, sigTlv.end),
    issuer: der.subarray(issuer.offset, issuer.end),
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    revoked,
  };
}

function crlDer(input: Uint8Array | string): Buffer {
  const text = typeof input === 'string' ? input : Buffer.from(input.subarray(0, 64)).toString('latin1');
  if (!text.trimStart().startsWith('-----BEGIN')) {
    if (typeof input === 'string') throw bad('expected a DER or PEM CRL');
    return Buffer.from(input);
  }
  const pem = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const m = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----/.exec(pem);
  if (!m) throw bad('the PEM text holds no X509 CRL block');
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
}

/** A serial number as X509Certificate.serialNumber shows it, normalized: upper-case hex, no leading zeros. */
export function normalizeSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

function serialHex(bytes: Buffer): string {
  return normalizeSerial(bytes.toString('hex'));
}

/** UTCTime (YYMMDDHHMMSSZ, years 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ). */
function readTime(der: Buffer, tlv: Tlv | undefined, what: string): Date {
  if (!tlv || (tlv.tag !== 0x17 && tlv.tag !== 0x18)) throw bad(`${what}: expected a UTCTime or GeneralizedTime`);
  const text = der.subarray(tlv.start, tlv.end).toString('latin1');
  const m = (tlv.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text);
  if (!m) throw bad(`${what}: unreadable time '${text}'`);
  let year = Number(m[1]);
  if (tlv.tag === 0x17) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** The subject Name DER of a certificate's TBS. */
function subjectDer(tbs: Buffer): Buffer {
  const parts = childrenOf(tbs, readTlv(tbs, 0, tbs.length));
  const subject = parts[(parts[0]?.tag === 0xa0 ? 1 : 0) + 4];
  expectTag(subject, 0x30, 'subject');
  return tbs.subarray(subject.offset, subject.end);
}

/** What a CRL says about some certificates. */
export interface CrlCheck {
  /** Signed by the ARK (issuer = ARK subject, RSASSA-PSS SHA-384 verifies) and current at `now`. */
  ok: boolean;
  /** Why the CRL itself is not acceptable. */
  problem?: string;
  /** The names of the given certificates whose serials the CRL lists. */
  revoked: string[];
}

/**
 * Checks `crl` against the ARK that should have signed it, at `now`, and looks up the serial
 * numbers of `certs` (e.g. { ASK: ask, VCEK: vcek }). The lookup is done even when the CRL is not
 * acceptable, so callers can say both.
 */
export function checkSnpCrl(crl: SnpCrl | Uint8Array, ark: SnpCertInput, certs: Record<string, SnpCertInput>, now = new Date()): CrlCheck {
  const list = crl instanceof Uint8Array ? parseSnpCrl(crl) : crl;
  const arkCert = parseSnpCertificate(ark);
  const revokedSerials = new Set(list.revoked.map((r) => r.serial));
  const serialOf = (cert: SnpCertInput): string | undefined => {
    try {
      return normalizeSerial(parseSnpCertificate(cert).x509.serialNumber);
    } catch (e) {
      if (e instanceof SevCertificateError) return undefined; // a malformed certificate fails its own chain link
      throw e;
    }
  };
  const revoked = Object.entries(certs).filter(([, cert]) => revokedSerials.has(serialOf(cert) ?? '')).map(([name]) => name);
  let problem: string | undefined;
  if (!list.issuer.equals(subjectDer(arkCert.tbs))) problem = `the CRL is issued by someone else than ${arkCert.commonName || 'the ARK'}`;
  else problem = pssAlgorithmProblem(list.signatureAlgorithm, list.tbsSignatureAlgorithm);
  if (!problem && !rsaPssVerify(arkCert.x509.publicKey, 'sha384', list.tbs, list.signature)) problem = 'bad CRL signature (RSASSA-PSS SHA-384)';
  if (!problem && now < list.thisUpdate) problem = `the CRL is not valid before ${list.thisUpdate.toISOString()}`;
  if (!problem && list.nextUpdate && now > list.nextUpdate) problem = `the CRL expired on ${list.nextUpdate.toISOString()} (fetch a new one)`;
  return { ok: !problem, ...(problem ? { problem } : {}), revoked };
}
