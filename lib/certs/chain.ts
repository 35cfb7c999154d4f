// The SEV certificate chain and its verification, link by link:
//
//   ARK ─▶ ARK (self)   ARK ─▶ ASK ─▶ CEK ─▶ PEK ◀─ OCA ◀─ OCA (self)
//                                          PEK ─▶ PDH
//
// Every link is checked and reported (like `sevctl verify`), whatever fails first; a certificate
// that does not even parse fails each link it takes part in, with the parse error as the reason.
import { SevCertificateError, SevArgumentError } from '../errors';
import { checkArkAnchor, type Generation, type TrustedArk } from './anchors';
import { CaCertificate } from './ca-cert';
import { Usage, usageName, type CertName } from './constants';
import { SEV_CERT_SIZE, SevCertificate, type SignatureCheck } from './sev-cert';

/** One signer → subject check. */
export interface ChainLink {
  signer: CertName;
  subject: CertName;
  ok: boolean;
  reason?: string;
}

/** Whether the chain's root is a trusted ARK. */
export interface ChainAnchor {
  ok: boolean;
  /** The AMD generation of a pinned ARK. */
  generation?: Generation;
  /** True when trusted only because the caller passed it as an extra trusted ARK. */
  extra?: boolean;
  /** SHA-256 of the ARK's SPKI DER (hex), when the ARK parsed. */
  fingerprint?: string;
  reason?: string;
}

/** The full verification result: ok only when every link verifies and the ARK is trusted. */
export interface ChainReport {
  ok: boolean;
  links: ChainLink[];
  anchor: ChainAnchor;
}

type SevInput = SevCertificate | Uint8Array;
type CaInput = CaCertificate | Uint8Array;

/** The certificates of a platform chain; missing ones fail the links they belong to. */
export interface ChainInput {
  pdh?: SevInput;
  pek?: SevInput;
  oca?: SevInput;
  cek?: SevInput;
  ask?: CaInput;
  ark?: CaInput;
}

export interface VerifyChainOptions {
  /** Roots to trust besides AMD's pinned ARKs (e.g. the emulator's ARK). Only these, only when passed. */
  trustedArks?: readonly TrustedArk[];
}

/** Link order of the report (the order `sevctl verify` prints). */
export const CHAIN_LINKS: ReadonlyArray<readonly [CertName, CertName]> = Object.freeze([
  ['ARK', 'ARK'],
  ['ARK', 'ASK'],
  ['ASK', 'CEK'],
  ['CEK', 'PEK'],
  ['OCA', 'OCA'],
  ['OCA', 'PEK'],
  ['PEK', 'PDH'],
] as const);

const SEV_NAMES = ['PDH', 'PEK', 'OCA', 'CEK'] as const;
const CA_NAMES = ['ASK', 'ARK'] as const;

type Parsed = { cert: SevCertificate | CaCertificate } | { error: string };

/** Verifies every link of the chain and the trust anchor; never throws for bad certificates. */
export function verifyChain(input: ChainInput, opts: VerifyChainOptions | null = {}): ChainReport {
  if (typeof input !== 'object' || input === null) {
    throw new SevArgumentError('verifyChain', 'expected { pdh?, pek?, oca?, cek?, ask?, ark? }');
  }
  opts ??= {};
  const parsed = new Map<CertName, Parsed>();
  for (const name of SEV_NAMES) parsed.set(name, parseAs(name, input[lower(name)] as SevInput | undefined));
  for (const name of CA_NAMES) parsed.set(name, parseAs(name, input[lower(name)] as CaInput | undefined));

  const links = CHAIN_LINKS.map(([signer, subject]) => checkLink(parsed, signer, subject));
  const anchor = checkAnchor(parsed.get('ARK')!, opts.trustedArks ?? []);
  return { ok: anchor.ok && links.every((l) => l.ok), links, anchor };
}

/** One line per link, like `sevctl verify`: "✅ ASK ⟶ CEK" / "❌ OCA ⟶ PEK: reason". */
export function formatChainReport(report: ChainReport): string {
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  const lines = report.links.map((l) => `${mark(l.ok)} ${l.signer} ⟶ ${l.subject}${l.reason ? `: ${l.reason}` : ''}`);
  const a = report.anchor;
  const root = a.ok ? `trusted ARK${a.generation ? ` (AMD ${a.generation})` : ' (explicitly trusted)'}` : `untrusted ARK: ${a.reason}`;
  return [`${mark(a.ok)} ${root}`, ...lines].join('\n');
}

function lower(name: CertName): keyof ChainInput {
  return name.toLowerCase() as keyof ChainInput;
}

function parseAs(name: CertName, value: SevInput | CaInput | undefined): Parsed {
  if (value === undefined) return { error: `${name} not provided` };
  const isCa = name === 'ARK' || name === 'ASK';
  try {
    const cert = isCa
      ? value instanceof CaCertificate ? value : CaCertificate.parse(value as Uint8Array)
      : value instanceof SevCertificate ? value : SevCertificate.parse(value as Uint8Array);
    if (cert.usage !== Usage[name]) {
      return { error: `the certificate given as ${name} is a ${usageName(cert.usage)} certificate` };
    }
    return { cert };
  } catch (e) {
    if (e instanceof SevCertificateError) return { error: `${name} is malformed: ${e.message}` };
    throw e;
  }
}

function checkLink(parsed: Map<CertName, Parsed>, signerName: CertName, subjectName: CertName): ChainLink {
  const signer = parsed.get(signerName)!;
  const subject = parsed.get(subjectName)!;
  const link = { signer: signerName, subject: subjectName };
  const problems = [...new Set([signer, subject].flatMap((p) => ('error' in p ? [p.error] : [])))];
  if (problems.length > 0) return { ...link, ok: false, reason: problems.join('; ') };
  const result = verifyPair((signer as { cert: SevCertificate | CaCertificate }).cert, (subject as { cert: SevCertificate | CaCertificate }).cert);
  return result.ok ? { ...link, ok: true } : { ...link, ok: false, reason: result.reason };
}

function verifyPair(signer: SevCertificate | CaCertificate, subject: SevCertificate | CaCertificate): SignatureCheck {
  if (subject instanceof CaCertificate) {
    return signer instanceof CaCertificate ? subject.verifySignature(signer) : { ok: false, reason: 'a CA certificate is signed by a CA key' };
  }
  return subject.verifySignature(signer);
}

function checkAnchor(ark: Parsed, trustedArks: readonly TrustedArk[]): ChainAnchor {
  if ('error' in ark) return { ok: false, reason: ark.error };
  const check = checkArkAnchor(ark.cert as CaCertificate, trustedArks);
  return {
    ok: check.trusted,
    ...(check.generation ? { generation: check.generation } : {}),
    extra: check.extra,
    fingerprint: check.fingerprint,
    ...(check.reason ? { reason: check.reason } : {}),
  };
}

// ---- Blobs ---------------------------------------------------------------------------------

function blobError(command: string, message: string): SevCertificateError {
  return new SevCertificateError(command, message);
}

/** Splits PDH_CERT_EXPORT's cert chain blob (PEK ‖ OCA ‖ CEK, 3 × 2084 bytes) into its parts. */
export function splitPdhExportChain(blob: Uint8Array): { pek: Buffer; oca: Buffer; cek: Buffer } {
  if (!(blob instanceof Uint8Array) || blob.length !== 3 * SEV_CERT_SIZE) {
    throw blobError('PDH_CERT_EXPORT', `the chain blob is PEK‖OCA‖CEK, ${3 * SEV_CERT_SIZE} bytes; got ${blob?.length ?? typeof blob}`);
  }
  const part = (i: number) => Buffer.from(blob.subarray(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE));
  return { pek: part(0), oca: part(1), cek: part(2) };
}

/**
 * Splits an ask_ark blob (ASK then ARK, as AMD serves `ask_ark_<generation>.cert`). The ASK's
 * length comes from its header; a blob of two equal halves is split evenly when that header is bad.
 */
export function splitAskArk(blob: Uint8Array): { ask: Buffer; ark: Buffer } {
  if (!(blob instanceof Uint8Array)) throw blobError('ASK_ARK', 'expected the ask_ark blob as a Buffer');
  let askLength: number;
  try {
    askLength = CaCertificate.parseFirst(blob).length;
  } catch (e) {
    if (!(e instanceof SevCertificateError) || blob.length % 2 !== 0) throw e;
    askLength = blob.length / 2;
  }
  if (askLength >= blob.length) throw blobError('ASK_ARK', `the ask_ark blob (${blob.length} bytes) holds no ARK after the ASK`);
  return { ask: Buffer.from(blob.subarray(0, askLength)), ark: Buffer.from(blob.subarray(askLength)) };
}

/** Parses an ask_ark blob strictly: an ASK then an ARK, nothing else. */
export function parseAskArk(blob: Uint8Array): { ask: CaCertificate; ark: CaCertificate } {
  const parts = splitAskArk(blob);
  const ask = CaCertificate.parse(parts.ask);
  const ark = CaCertificate.parse(parts.ark);
  if (ask.usage !== Usage.ASK) throw blobError('ASK_ARK', `the first certificate is a ${usageName(ask.usage)}, expected the ASK`);
  if (ark.usage !== Usage.ARK) throw blobError('ASK_ARK', `the second certificate is a ${usageName(ark.usage)}, expected the ARK`);
  return { ask, ark };
}

/**
 * Splits sevctl's `export` file: PDH ‖ PEK ‖ OCA ‖ CEK (4 × 2084 bytes), and with `--full`
 * the ask_ark blob after it.
 */
export function splitChainFile(blob: Uint8Array): { pdh: Buffer; pek: Buffer; oca: Buffer; cek: Buffer; ask?: Buffer; ark?: Buffer } {
  const sevSize = 4 * SEV_CERT_SIZE;
  if (!(blob instanceof Uint8Array) || blob.length < sevSize) {
    throw blobError('CHAIN_FILE', `a chain file starts with PDH‖PEK‖OCA‖CEK (${sevSize} bytes); got ${blob?.length ?? typeof blob}`);
  }
  const part = (i: number) => Buffer.from(blob.subarray(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE));
  const sev = { pdh: part(0), pek: part(1), oca: part(2), cek: part(3) };
  if (blob.length === sevSize) return sev;
  return { ...sev, ...splitAskArk(blob.subarray(sevSize)) };
}
