// SEV-SNP certificates: AMD's X.509 chains ARK → ASK → VCEK and ARK → ASVK → VLEK.
//
// node-sev ships no AMD certificate: the bytes come from the caller, a cache or AMD's KDS, and a
// chain is trusted when its ARK's key is one of the pinned AMD roots below. Every link is checked
// and reported (like `sev verify` for the SEV chain), whatever fails first.
//
// node's X509Certificate verifies with whatever algorithm the certificate names and does not show
// extensions, so this module walks the DER itself: it checks that each link is RSASSA-PSS with
// SHA-384, MGF1-SHA-384 and a 48-byte salt, verifies the TBSCertificate with node:crypto, and
// reads the VCEK's AMD extensions (SPLs, hwID, product name).
import { X509Certificate, type KeyObject } from 'node:crypto';

import { spkiSha256 } from '../certs/keys';
import { rsaPssVerify } from '../certs/signing';
import { SevArgumentError, SevCertificateError } from '../errors';
import { SNP_GENERATIONS, type SnpGeneration } from './report';


/** What node-sev pins for one generation's SNP root. */
export interface SnpRootPin {
  generation: SnpGeneration;
  /** The generation as AMD spells it in CNs, KDS URLs and product names. */
  product: 'Milan' | 'Genoa' | 'Turin';
  /** SHA-256 (hex) of the ARK's SubjectPublicKeyInfo DER: the trust anchor. */
  arkSpkiSha256: string;
  /** SHA-256 (hex) of the ASK's SPKI DER: identification only (the ASK is trusted through its signature). */
  askSpkiSha256: string;
}

// Computed with `openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum` from
// AMD's ark.pem / ask.pem as served by KDS (shared/fixtures/snp/amd/<gen>/, copied from virtee/sev
// src/certs/snp/builtin). The ARK keys are the same RSA keys as the SEV-format ARKs pinned in
// lib/certs/anchors.ts.
export const SNP_ROOT_PINS: readonly SnpRootPin[] = Object.freeze([
  { generation: 'milan', product: 'Milan', arkSpkiSha256: '9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9', askSpkiSha256: '42491669ccb851d627ea9846cd24eccbeb7de7c2a62740120fff88001d38ebb6' },
  { generation: 'genoa', product: 'Genoa', arkSpkiSha256: '429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831', askSpkiSha256: '0324d55bcd48ba877a8fd87c0e1b4934dec8448e3807a24384a34dc6a6c9ebb8' },
  { generation: 'turin', product: 'Turin', arkSpkiSha256: '4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08', askSpkiSha256: '0000ead352025f208bf55297c4192c34cd1b878002107366d8f2065a9ae7d3a9' },
].map((p) => Object.freeze(p as SnpRootPin)));

/** The pin of a generation. */
export function snpRootPin(generation: SnpGeneration): SnpRootPin {
  const pin = SNP_ROOT_PINS.find((p) => p.generation === generation);
  if (!pin) throw new SevArgumentError('snpRootPin', `unknown SNP generation ${String(generation)} (expected ${SNP_GENERATIONS.join(', ')})`);
  return pin;
}

// ---- A small DER reader --------------------------------------------------------------------

/** One DER element: its tag, where its header starts and where its content starts and ends. */
export interface Tlv {
  tag: number;
  offset: number;
  start: number;
  end: number;
}

const CMD = 'SNP_CERT';

function bad(message: string, cause?: unknown): SevCertificateError {
  return new SevCertificateError(CMD, message, cause);
}

export function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw bad(`truncated DER at byte ${offset}`);
  const tag = der[offset];
  // Certificates only use one-byte tags; a multi-byte tag here means garbage.
  if ((tag & 0x1f) === 0x1f) throw bad(`unsupported DER tag 0x${tag.toString(16)} at byte ${offset}`);
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw bad(`bad DER length at byte ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i];
    start += n;
  }
  if (start + length > limit) throw bad(`DER element at byte ${offset} runs past its container`);
  return { tag, offset, start, end: start + length };
}

export function childrenOf(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = readTlv(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv || tlv.tag !== tag) throw bad(`${what}: expected DER tag 0x${tag.toString(16)}, got ${tlv ? `0x${tlv.tag.toString(16)}` : 'nothing'}`);
  return tlv;
}

export function oidString(bytes: Buffer): string {
  if (bytes.length === 0) throw bad('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  const first = arcs.shift()!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** A small non-negative DER INTEGER (SPLs, versions, salt lengths). */
function smallInteger(der: Buffer, tlv: Tlv, what: string): number {
  expectTag(tlv, 0x02, what);
  const bytes = der.subarray(tlv.start, tlv.end);
  if (bytes.length === 0 || bytes.length > 6 || bytes[0] & 0x80) throw bad(`${what}: not a small non-negative INTEGER`);
  return bytes.reduce((v, b) => v * 256 + b, 0);
}

// ---- Certificates --------------------------------------------------------------------------

/** Names of the certificates in an SNP chain. */
export type SnpCertName = 'ARK' | 'ASK' | 'ASVK' | 'VCEK' | 'VLEK';

/** A parsed SNP X.509 certificate: node's view plus the parts node does not expose. */
export interface SnpCertificate {
  x509: X509Certificate;
  der: Buffer;
  /** The signed bytes (TBSCertificate DER). */
  tbs: Buffer;
  /** The signatureAlgorithm AlgorithmIdentifier DER, outside and inside the TBS (must be equal). */
  signatureAlgorithm: Buffer;
  tbsSignatureAlgorithm: Buffer;
  /** The signature value (the BIT STRING without its unused-bits byte). */
  signature: Buffer;
  /** The subject's common name ('ARK-Milan', 'SEV-Milan', 'SEV-VCEK', ...). */
  commonName: string;
  /** extnValue contents by OID. */
  extensions: ReadonlyMap<string, Buffer>;
}

/** A certificate as callers hold it: DER or PEM bytes, PEM text, node's X509Certificate, or parsed. */
export type SnpCertInput = Uint8Array | string | X509Certificate | SnpCertificate;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

function looksLikePem(input: Uint8Array | string): boolean {
  const head = typeof input === 'string' ? input : Buffer.from(input.subarray(0, 64)).toString('latin1');
  return head.trimStart().startsWith('-----BEGIN');
}

/** Every certificate in PEM text (LF or CRLF line endings), as DER, in order. */
export function pemCertificates(pem: Uint8Array | string): Buffer[] {
  const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('latin1');
  return [...text.matchAll(PEM_BLOCK)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/** Parses one certificate from DER, a one-certificate PEM, or an X509Certificate. */
export function parseSnpCertificate(input: SnpCertInput): SnpCertificate {
  if (isParsed(input)) return input;
  let der: Buffer;
  if (input instanceof X509Certificate) der = input.raw;
  else if (typeof input === 'string' || looksLikePem(input)) {
    const all = pemCertificates(input);
    if (all.length !== 1) throw bad(`expected one PEM certificate, found ${all.length}`);
    der = all[0];
  } else if (input instanceof Uint8Array) der = Buffer.from(input);
  else throw new SevArgumentError(CMD, `expected a certificate as DER/PEM bytes, PEM text or X509Certificate; got ${typeof input}`);
  return parseDer(der);
}

function isParsed(input: unknown): input is SnpCertificate {
  return typeof input === 'object' && input !== null && (input as SnpCertificate).x509 instanceof X509Certificate &&
    Buffer.isBuffer((input as SnpCertificate).tbs);
}

/**
 * The three parts of a signed X.509 object (certificate or CRL): SEQUENCE { tbs SEQUENCE,
 * signatureAlgorithm SEQUENCE, signatureValue BIT STRING } spanning the whole input.
 */
export function signedParts(der: Buffer, kind: 'certificate' | 'CRL'): { tbsTlv: Tlv; algTlv: Tlv; sigTlv: Tlv } {
  const top = readTlv(der, 0, der.length);
  if (top.tag !== 0x30 || top.end !== der.length) throw bad(`not a DER ${kind} (one SEQUENCE spanning the input)`);
  const [tbsTlv, algTlv, sigTlv] = childrenOf(der, top);
  expectTag(tbsTlv, 0x30, kind === 'CRL' ? 'TBSCertList' : 'TBSCertificate');
  expectTag(algTlv, 0x30, 'signatureAlgorithm');
  expectTag(sigTlv, 0x03, 'signatureValue');
  if (sigTlv.end - sigTlv.start < 2 || der[sigTlv.start] !== 0) throw bad('signatureValue is not a whole number of bytes');
  return { tbsTlv, algTlv, sigTlv };
}

function parseDer(der: Buffer): SnpCertificate {
  const { tbsTlv, algTlv, sigTlv } = signedParts(der, 'certificate');

  const tbsParts = childrenOf(der, tbsTlv);
  // version [0] is optional: the signature AlgorithmIdentifier follows the serial number.
  const afterVersion = tbsParts[0]?.tag === 0xa0 ? 1 : 0;
  const tbsAlg = expectTag(tbsParts[afterVersion + 1], 0x30, 'TBSCertificate.signature');
  const extsWrapper = tbsParts.find((t) => t.tag === 0xa3);

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (e) {
    throw bad('node:crypto cannot parse the certificate', e);
  }
  return {
    x509,
    der,
    tbs: der.subarray(tbsTlv.offset, tbsTlv.end),
    signatureAlgorithm: der.subarray(algTlv.offset, algTlv.end),
    tbsSignatureAlgorithm: der.subarray(tbsAlg.offset, tbsAlg.end),
    signature: der.subarray(sigTlv.start + 1, sigTlv.end),
    commonName: commonName(x509.subject),
    extensions: extsWrapper ? readExtensions(der, extsWrapper) : new Map(),
  };
}

function commonName(dn: string): string {
  const line = dn.split('\n').find((l) => l.startsWith('CN='));
  return line ? line.slice(3) : '';
}

function readExtensions(der: Buffer, wrapper: Tlv): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const list = expectTag(childrenOf(der, wrapper)[0], 0x30, 'extensions');
  for (const ext of childrenOf(der, list)) {
    const parts = childrenOf(der, expectTag(ext, 0x30, 'extension'));
    const oid = oidString(der.subarray(expectTag(parts[0], 0x06, 'extnID').start, parts[0].end));
    // extnValue is the last element; `critical` may sit between.
    const value = expectTag(parts[parts.length - 1], 0x04, 'extnValue');
    if (out.has(oid)) throw bad(`extension ${oid} appears twice`);
    out.set(oid, der.subarray(value.start, value.end));
  }
  return out;
}

/**
 * Parses a KDS `cert_chain` bundle (PEM: the ASK or ASVK first, then the ARK; LF or CRLF).
 * The order is checked by the certificates' names, so a swapped bundle is refused, not misread.
 */
export function parseCertChainPem(bundle: Uint8Array | string): { ask: SnpCertificate; ark: SnpCertificate } {
  const ders = pemCertificates(bundle);
  if (ders.length !== 2) throw bad(`a cert_chain bundle holds the ASK (or ASVK) then the ARK; found ${ders.length} certificates`);
  const [ask, ark] = ders.map(parseDer);
  if (!ark.commonName.startsWith('ARK-')) throw bad(`the second certificate of the bundle is ${ark.commonName || 'unnamed'}, expected the ARK`);
  if (!ask.commonName.startsWith('SEV-')) throw bad(`the first certificate of the bundle is ${ask.commonName || 'unnamed'}, expected the ASK or ASVK`);
  return { ask, ark };
}

// ---- The VCEK's AMD extensions -------------------------------------------------------------

/** AMD's arc for VCEK/VLEK extensions. */
export const AMD_VCEK_OID = '1.3.6.1.4.1.3704.1';
export const VCEK_OIDS = Object.freeze({
  structVersion: `${AMD_VCEK_OID}.1`,
  productName: `${AMD_VCEK_OID}.2`,
  bootloader: `${AMD_VCEK_OID}.3.1`,
  tee: `${AMD_VCEK_OID}.3.2`,
  snp: `${AMD_VCEK_OID}.3.3`,
  microcode: `${AMD_VCEK_OID}.3.8`,
  fmc: `${AMD_VCEK_OID}.3.9`,
  hwId: `${AMD_VCEK_OID}.4`,
});

/** Security patch levels, as the VCEK and the report's TCB carry them (fmc on Turin and later). */
export interface SnpTcbLevels {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

/** The SPLs a generation's VCEK carries (and KDS keys it by): Turin adds the FMC's. */
export function vcekSplNames(generation: SnpGeneration): (keyof SnpTcbLevels)[] {
  return generation === 'turin' ? ['fmc', 'bootloader', 'tee', 'snp', 'microcode'] : ['bootloader', 'tee', 'snp', 'microcode'];
}

/** How many bytes of the chip id a VCEK's hwID holds (and KDS keys it by): the first 8 on Turin, all 64 before. */
export function vcekHwIdLength(generation: SnpGeneration): number {
  return generation === 'turin' ? 8 : 64;
}

export interface VcekExtensions {
  structVersion?: number;
  /** 'Milan-B0', 'Genoa', 'Turin', ... */
  productName?: string;
  /** The TCB the key was derived for. */
  tcb: SnpTcbLevels;
  /** The chip id (64 bytes on Milan/Genoa, 8 on Turin); absent on a VLEK. */
  hwId?: Buffer;
}

/** Reads the AMD extensions of a VCEK or VLEK; throws when an SPL is missing or malformed. */
export function vcekExtensions(input: SnpCertInput): VcekExtensions {
  const cert = parseSnpCertificate(input);
  const ext = cert.extensions;
  const integer = (oid: string, name: string): number | undefined => {
    const value = ext.get(oid);
    if (!value) return undefined;
    // The value is itself DER: an INTEGER inside the extnValue OCTET STRING.
    const tlv = readTlv(value, 0, value.length);
    if (tlv.end !== value.length) throw bad(`${name} (${oid}) has trailing bytes`);
    return smallInteger(value, tlv, `${name} (${oid})`);
  };
  const required = (name: keyof typeof VCEK_OIDS): number => {
    const v = integer(VCEK_OIDS[name], name);
    if (v === undefined) throw bad(`the certificate has no ${name} SPL extension (${VCEK_OIDS[name]})`);
    return v;
  };
  const tcb: SnpTcbLevels = { bootloader: required('bootloader'), tee: required('tee'), snp: required('snp'), microcode: required('microcode') };
  const fmc = integer(VCEK_OIDS.fmc, 'fmc');
  if (fmc !== undefined) tcb.fmc = fmc;
  const out: VcekExtensions = { tcb };
  const structVersion = integer(VCEK_OIDS.structVersion, 'structVersion');
  if (structVersion !== undefined) out.structVersion = structVersion;
  const name = ext.get(VCEK_OIDS.productName);
  if (name) out.productName = productName(name);
  // hwID is the raw chip id, not wrapped in a further DER element.
  const hwId = ext.get(VCEK_OIDS.hwId);
  if (hwId) out.hwId = Buffer.from(hwId);
  return out;
}

function productName(value: Buffer): string {
  const tlv = readTlv(value, 0, value.length);
  // IA5String in AMD's certificates; UTF8String and PrintableString read the same.
  if (![0x16, 0x0c, 0x13].includes(tlv.tag) || tlv.end !== value.length) throw bad('productName is not a string');
  return value.subarray(tlv.start, tlv.end).toString('latin1');
}

// ---- Chain verification --------------------------------------------------------------------

/** One check of the chain (or of a report against its key). */
export interface SnpLink {
  signer: SnpCertName;
  subject: SnpCertName | 'REPORT' | 'CRL';
  /**
   * 'signature': signer signed subject; 'fields': the report's chip id and TCB match the key's
   * certificate; 'revocation': the ARK's CRL is valid and lists none of the chain's certificates.
   */
  check: 'signature' | 'fields' | 'revocation';
  ok: boolean;
  reason?: string;
  /** For 'fields': each field that differs, with the certificate's (expected) and the report's (actual) value. */
  mismatches?: FieldMismatch[];
}

export interface FieldMismatch {
  field: string;
  expected: string;
  actual: string;
}

/** The result: ok only when every link verifies and the ARK is a trusted root. */
export interface SnpChainReport {
  ok: boolean;
  /** The generation of a pinned ARK (or the one the caller named for an explicitly trusted ARK). */
  generation?: SnpGeneration;
  /** SHA-256 of the ARK's SPKI DER, when the ARK parsed. */
  arkFingerprint?: string;
  /** 'VCEK' or 'VLEK': which endorsement key the chain ends in. */
  endorsement: 'VCEK' | 'VLEK';
  links: SnpLink[];
  /** The parsed endorsement key certificate, when it parsed (for the report checks). */
  endorsementCert?: SnpCertificate;
}

export interface SnpChainInput {
  ark?: SnpCertInput;
  /** The ASK (VCEK chain) ... */
  ask?: SnpCertInput;
  /** ... or the ASVK (VLEK chain). */
  asvk?: SnpCertInput;
  vcek?: SnpCertInput;
  vlek?: SnpCertInput;
}

export interface SnpChainOptions {
  /** Time at which the certificates must be valid (default: now). */
  now?: Date;
  /** Require this generation's root. */
  generation?: SnpGeneration;
  /**
   * Roots to trust besides AMD's pins (SPKI SHA-256 hex or a public key), e.g. the emulator's ARK.
   * Such a root's generation is the one its name gives (CN=ARK-Milan, as AMD names its roots)
   * unless `generation` says otherwise.
   */
  trustedArks?: readonly (string | KeyObject)[];
}

const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
/** node's name for P-384. */
const P384 = 'secp384r1';
const SALT_LENGTH = 48;

type Parsed = { cert: SnpCertificate } | { error: string };

/** Verifies ARK → ARK, ARK → ASK → VCEK (or ARK → ASVK → VLEK); never throws for bad certificates. */
export function verifySnpChain(input: SnpChainInput, opts: SnpChainOptions = {}): SnpChainReport {
  if (typeof input !== 'object' || input === null) {
    throw new SevArgumentError('verifySnpChain', 'expected { ark, ask, vcek } or { ark, asvk, vlek }');
  }
  if (input.vcek !== undefined && input.vlek !== undefined) throw new SevArgumentError('verifySnpChain', 'give a VCEK or a VLEK, not both');
  if (input.ask !== undefined && input.asvk !== undefined) throw new SevArgumentError('verifySnpChain', 'give an ASK or an ASVK, not both');
  if (opts.generation !== undefined && !SNP_GENERATIONS.includes(opts.generation)) {
    throw new SevArgumentError('verifySnpChain', `unknown SNP generation ${String(opts.generation)} (expected ${SNP_GENERATIONS.join(', ')})`);
  }
  const vlek = input.vlek !== undefined || input.asvk !== undefined;
  const endorsement = vlek ? 'VLEK' : 'VCEK';
  const caName = vlek ? 'ASVK' : 'ASK';
  const now = opts.now ?? new Date();

  const ark = parseAs('ARK', input.ark);
  const ca = parseAs(caName, vlek ? input.asvk : input.ask);
  const leaf = parseAs(endorsement, vlek ? input.vlek : input.vcek);

  const root = checkRoot(ark, opts);
  const generation = root.generation;
  const product = generation ? snpRootPin(generation).product : undefined;

  const links: SnpLink[] = [
    link('ARK', 'ARK', [ark], () => root.problem ?? signedBy(ark, ark, now)),
    link('ARK', caName, [ark, ca], () => {
      const expected = product ? `SEV-${vlek ? 'VLEK-' : ''}${product}` : undefined;
      const cn = (ca as { cert: SnpCertificate }).cert.commonName;
      if (expected && cn !== expected) return `the ${caName}'s CN is ${cn || 'missing'}, expected ${expected}`;
      return signedBy(ca, ark, now);
    }),
    link(caName, endorsement, [ca, leaf], () => signedBy(leaf, ca, now) ?? checkLeaf((leaf as { cert: SnpCertificate }).cert, endorsement, product)),
  ];
  return {
    ok: links.every((l) => l.ok),
    ...(generation ? { generation } : {}),
    ...(root.fingerprint ? { arkFingerprint: root.fingerprint } : {}),
    endorsement,
    links,
    ...('cert' in leaf ? { endorsementCert: leaf.cert } : {}),
  };
}

/** One line per link, like `sev verify`: "✅ ARK ⟶ ASK" / "❌ ASK ⟶ VCEK: reason". */
export function formatSnpLinks(links: readonly SnpLink[]): string {
  return links.map((l) => {
    const mark = l.ok ? '✅' : '❌';
    const name = l.check === 'fields' ? `${l.signer} ≡ ${l.subject} (chip id, TCB)` :
      l.check === 'revocation' ? `${l.signer} ⟶ ${l.subject} (nothing in the chain revoked)` : `${l.signer} ⟶ ${l.subject}`;
    const details = (l.mismatches ?? []).map((m) => `\n     ${m.field}: expected ${m.expected}, got ${m.actual}`).join('');
    return `${mark} ${name}${l.reason ? `: ${l.reason}` : ''}${details}`;
  }).join('\n');
}

function parseAs(name: SnpCertName, value: SnpCertInput | undefined): Parsed {
  if (value === undefined) return { error: `${name} not provided` };
  try {
    return { cert: parseSnpCertificate(value) };
  } catch (e) {
    if (e instanceof SevCertificateError) return { error: `${name} is malformed: ${e.message}` };
    throw e;
  }
}

function link(signer: SnpCertName, subject: SnpCertName, parts: Parsed[], check: () => string | undefined): SnpLink {
  const problems = [...new Set(parts.flatMap((p) => ('error' in p ? [p.error] : [])))];
  const reason = problems.length > 0 ? problems.join('; ') : check();
  return reason === undefined ? { signer, subject, check: 'signature', ok: true } : { signer, subject, check: 'signature', ok: false, reason };
}

/** Whether the ARK is a pinned AMD root (or an explicitly trusted one) of the wanted generation. */
function checkRoot(ark: Parsed, opts: SnpChainOptions): { generation?: SnpGeneration; fingerprint?: string; problem?: string } {
  if ('error' in ark) return { generation: opts.generation };
  const fingerprint = spkiSha256(ark.cert.x509.publicKey);
  const pin = SNP_ROOT_PINS.find((p) => p.arkSpkiSha256 === fingerprint);
  if (pin) {
    if (opts.generation && opts.generation !== pin.generation) {
      return { generation: opts.generation, fingerprint, problem: `the ARK is AMD's ${pin.generation} root, expected ${opts.generation}` };
    }
    return { generation: pin.generation, fingerprint };
  }
  const extra = (opts.trustedArks ?? []).some((t) => (typeof t === 'string' ? t.toLowerCase() : spkiSha256(t)) === fingerprint);
  // An explicitly trusted root names its generation the way AMD's do: CN=ARK-<product>.
  const named = SNP_ROOT_PINS.find((p) => ark.cert.commonName === `ARK-${p.product}`)?.generation;
  if (extra) return { generation: opts.generation ?? named, fingerprint };
  return {
    generation: opts.generation,
    fingerprint,
    problem: `ARK key ${fingerprint} is not a pinned AMD SNP root (pass it as a trusted ARK to accept it explicitly)`,
  };
}

/** Why `subject` is not validly signed by `signer` at `now`, or undefined when it is. */
function signedBy(subject: Parsed, signer: Parsed, now: Date): string | undefined {
  const s = (subject as { cert: SnpCertificate }).cert;
  const k = (signer as { cert: SnpCertificate }).cert;
  if (s.x509.issuer !== k.x509.subject) return `issued by ${commonName(s.x509.issuer) || 'unnamed'}, not by ${k.commonName || 'the signer'}`;
  const alg = pssProblem(s);
  if (alg) return alg;
  if (k.x509.publicKey.asymmetricKeyType !== 'rsa') return `the signer's key is ${k.x509.publicKey.asymmetricKeyType}, expected RSA`;
  if (!rsaPssVerify(k.x509.publicKey, 'sha384', s.tbs, s.signature)) return 'bad signature (RSASSA-PSS SHA-384)';
  return validityProblem(s, now);
}

/** AMD signs every chain certificate with RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt. */
function pssProblem(cert: SnpCertificate): string | undefined {
  return pssAlgorithmProblem(cert.signatureAlgorithm, cert.tbsSignatureAlgorithm);
}

/** Why an outer/inner signature AlgorithmIdentifier pair (certificate or CRL) is not AMD's RSASSA-PSS, or undefined. */
export function pssAlgorithmProblem(signatureAlgorithm: Buffer, tbsSignatureAlgorithm: Buffer): string | undefined {
  // RFC 5280 4.1.1.2 / 5.1.1.2: the outer algorithm must equal the one inside the signed part.
  if (!signatureAlgorithm.equals(tbsSignatureAlgorithm)) return 'the signature algorithm differs from the one in the signed part';
  try {
    const der = signatureAlgorithm;
    const [oid, params] = childrenOf(der, readTlv(der, 0, der.length));
    const name = oidString(der.subarray(expectTag(oid, 0x06, 'algorithm').start, oid.end));
    if (name !== OID_RSASSA_PSS) return `signed with algorithm ${name}, expected RSASSA-PSS`;
    let hash = '', mgf = '', mgfHash = '', salt = 20;
    for (const p of childrenOf(der, expectTag(params, 0x30, 'RSASSA-PSS-params'))) {
      const inner = childrenOf(der, p)[0];
      if (p.tag === 0xa0) hash = firstOid(der, inner);
      else if (p.tag === 0xa1) {
        mgf = firstOid(der, inner);
        mgfHash = firstOid(der, childrenOf(der, inner)[1]);
      } else if (p.tag === 0xa2) salt = smallInteger(der, inner, 'saltLength');
    }
    if (hash !== OID_SHA384 || mgf !== OID_MGF1 || mgfHash !== OID_SHA384 || salt !== SALT_LENGTH) {
      return `RSASSA-PSS parameters are not SHA-384 / MGF1-SHA-384 / salt ${SALT_LENGTH}`;
    }
    return undefined;
  } catch (e) {
    if (e instanceof SevCertificateError) return `unreadable signature algorithm: ${e.message}`;
    throw e;
  }
}

function firstOid(der: Buffer, seq: Tlv | undefined): string {
  const oid = expectTag(childrenOf(der, expectTag(seq, 0x30, 'AlgorithmIdentifier'))[0], 0x06, 'algorithm');
  return oidString(der.subarray(oid.start, oid.end));
}

function validityProblem(cert: SnpCertificate, now: Date): string | undefined {
  const from = new Date(cert.x509.validFrom);
  const to = new Date(cert.x509.validTo);
  if (now < from) return `not valid before ${from.toISOString()}`;
  if (now > to) return `expired on ${to.toISOString()}`;
  return undefined;
}

/** The endorsement key is ECDSA P-384, and a VCEK names a product of the chain's generation. */
function checkLeaf(cert: SnpCertificate, kind: 'VCEK' | 'VLEK', product: string | undefined): string | undefined {
  const key = cert.x509.publicKey;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== P384) {
    return `the ${kind}'s key is ${key.asymmetricKeyType}${curve ? ` on ${curve}` : ''}, expected ECDSA P-384`;
  }
  let ext: VcekExtensions;
  try {
    ext = vcekExtensions(cert);
  } catch (e) {
    if (e instanceof SevCertificateError) return `the ${kind}'s AMD extensions: ${e.message}`;
    throw e;
  }
  // Product names look like 'Milan-B0' or 'Turin'.
  if (product && ext.productName !== undefined && ext.productName.split('-')[0] !== product) {
    return `the ${kind} is for ${ext.productName}, not a ${product} part`;
  }
  return undefined;
}
