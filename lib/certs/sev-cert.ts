// The SEV certificate format (SEV API spec, pub. 55766, appendix C.1): the fixed 2084-byte
// certificate the firmware uses for PDH, PEK, OCA and CEK. All integers are little-endian.
//
//   0x000 version (1)        0x004 api_major  0x005 api_minor  0x006 reserved (2 bytes, zero)
//   0x008 pubkey usage       0x00C pubkey algorithm
//   0x010 public key, 0x404 bytes:
//           EC:  curve id, qx[72], qy[72], reserved[880]
//           RSA: modulus size in bits, exponent[512], modulus[512]
//   0x414 signature 1: usage, algorithm, 512 bytes      (ECDSA: r[72], s[72], reserved[368];
//   0x61C signature 2: usage, algorithm, 512 bytes       RSA: the signature, little-endian)
//
// The signed region is everything before the signatures (0x414 bytes). Parsing is strict:
// every reserved and padding byte must be zero, so the parsed fields re-encode byte-exactly.
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

import { SevCertificateError } from '../errors';
import { CaCertificate, caHashForBits } from './ca-cert';
import {
  Algorithm,
  algorithmFor,
  algorithmInfo,
  algorithmName,
  Usage,
  usageName,
  type HashName,
} from './constants';
import {
  beToLe,
  EC_CURVES,
  ecComponentsFromKey,
  ecPublicKeyFromComponents,
  EcCurve,
  leToBeFixed,
  reversed,
  rsaComponentsFromKey,
  rsaPublicKeyFromComponents,
  stripLeadingZeros,
  type EcPublicKeyComponents,
} from './keys';
import { ecdsaSign, ecdsaVerify, rsaPssSign, rsaPssVerify } from './signing';
import { SEV_CERT_SIZE } from './constants';

export { SEV_CERT_SIZE };
/** Size of the signed region (header and public key). */
export const SEV_CERT_BODY_SIZE = 0x414;
/** Offsets of the two signature slots. */
export const SEV_CERT_SIGNATURE_OFFSETS = [0x414, 0x61c] as const;

const PUBKEY_OFFSET = 0x10;
const PUBKEY_SIZE = 0x404;
const EC_COORD_SIZE = 72; // coordinates and ECDSA r/s fields are 72 bytes wide
const RSA_FIELD_SIZE = 512;
const SIG_DATA_SIZE = 512;
const SUPPORTED_RSA_BITS = [2048, 4096];
const CMD = 'SEV_CERT';

/** Usages a SEV-format certificate's own key may have. */
const SUBJECT_USAGES = [Usage.OCA, Usage.PEK, Usage.PDH, Usage.CEK];
/** Usages that may appear in a filled signature slot. */
const SIGNER_USAGES = [Usage.ASK, Usage.OCA, Usage.PEK, Usage.CEK];

/** The certificate's public key as stored: EC (big-endian coordinates) or RSA (big-endian integers). */
export type SevPublicKey =
  | ({ type: 'ec' } & EcPublicKeyComponents)
  | { type: 'rsa'; modulusBits: number; modulus: Buffer; exponent: Buffer };

/** One of the two signature slots, with its 512 data bytes exactly as stored (little-endian). */
export interface SignatureSlot {
  usage: Usage;
  algorithm: Algorithm;
  data: Buffer;
}

/** Result of checking one signature. */
export interface SignatureCheck {
  ok: boolean;
  /** Why it failed, in words that name the field or the key. */
  reason?: string;
}

/** Anything that can sign an SEV certificate: a private key, its usage, and the algorithm to record. */
export interface SevSigner {
  privateKey: KeyObject;
  usage: Usage;
  /** Defaults to ECDSA_SHA256 for EC keys (as the firmware signs), RSA_SHA256/RSA_SHA384 for RSA-2048/4096 (as AMD's ASKs sign). */
  algorithm?: Algorithm;
}

/** A public key that can verify: an SEV cert, an AMD CA cert, or a bare key with its usage. */
export type SevVerifier = SevCertificate | CaCertificate | { publicKey: KeyObject; usage: Usage; algorithm?: Algorithm };

const EMPTY_SLOT = (): SignatureSlot => ({ usage: Usage.NONE, algorithm: Algorithm.NONE, data: Buffer.alloc(SIG_DATA_SIZE) });

function fail(message: string, cause?: unknown): SevCertificateError {
  return new SevCertificateError(CMD, message, cause);
}

function allZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** An SEV-format certificate (PDH, PEK, OCA, CEK). Instances are immutable; signing returns a new one. */
export class SevCertificate {
  /** Format version; always 1. */
  readonly version = 1;
  /** Firmware API version that produced the certificate. */
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly usage: Usage;
  readonly algorithm: Algorithm;
  /** The public key fields as stored (big-endian integers). */
  readonly key: SevPublicKey;
  /** The public key as a node KeyObject. */
  readonly publicKey: KeyObject;
  readonly signatures: readonly [SignatureSlot, SignatureSlot];

  private constructor(fields: {
    apiMajor: number;
    apiMinor: number;
    usage: Usage;
    algorithm: Algorithm;
    key: SevPublicKey;
    publicKey: KeyObject;
    signatures: [SignatureSlot, SignatureSlot];
  }) {
    this.apiMajor = fields.apiMajor;
    this.apiMinor = fields.apiMinor;
    this.usage = fields.usage;
    this.algorithm = fields.algorithm;
    this.key = fields.key;
    this.publicKey = fields.publicKey;
    this.signatures = Object.freeze(fields.signatures.map((s) => Object.freeze({ ...s, data: Buffer.from(s.data) }))) as
      readonly [SignatureSlot, SignatureSlot];
    Object.freeze(this);
  }

  /**
   * Parses a 2084-byte SEV certificate. Throws SevCertificateError for any deviation from the
   * format: size, version, unknown usage/algorithm, key not on its curve, non-zero reserved bytes.
   */
  static parse(bytes: Uint8Array): SevCertificate {
    if (!(bytes instanceof Uint8Array)) throw fail('expected the certificate as a Buffer/Uint8Array');
    if (bytes.length !== SEV_CERT_SIZE) {
      throw fail(`an SEV certificate is ${SEV_CERT_SIZE} bytes, got ${bytes.length}`);
    }
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const version = b.readUInt32LE(0);
    if (version !== 1) throw fail(`unsupported certificate version ${version} (expected 1)`);
    if (b.readUInt16LE(6) !== 0) throw fail('reserved bytes at 0x6 are not zero');
    const usage = b.readUInt32LE(8);
    if (!SUBJECT_USAGES.includes(usage)) {
      throw fail(`public key usage ${usageName(usage)} is not one of OCA, PEK, PDH, CEK`);
    }
    const algorithm = b.readUInt32LE(0xc);
    const info = algorithmInfo(algorithm);
    if (!info) throw fail(`unknown public key algorithm ${hex(algorithm)}`);
    if ((usage === Usage.PDH) !== (info.kind === 'ecdh')) {
      throw fail(`a ${usageName(usage)} key cannot use algorithm ${algorithmName(algorithm)}`);
    }
    const key = decodePublicKey(b.subarray(PUBKEY_OFFSET, PUBKEY_OFFSET + PUBKEY_SIZE), info.kind);
    const signatures = SEV_CERT_SIGNATURE_OFFSETS.map((off, i) => parseSlot(b.subarray(off, off + 8 + SIG_DATA_SIZE), i)) as
      [SignatureSlot, SignatureSlot];
    const [s1, s2] = signatures;
    if (s1.usage !== Usage.NONE && s1.usage === s2.usage) {
      throw fail(`both signature slots claim the same signer (${usageName(s1.usage)})`);
    }
    // Importing the key (which checks the point is on the curve) is the costly step: done last.
    const publicKey = key.type === 'ec' ? ecPublicKeyFromComponents(key, CMD) : rsaPublicKeyFromComponents(key, CMD);
    return new SevCertificate({ apiMajor: b[4], apiMinor: b[5], usage, algorithm, key, publicKey, signatures });
  }

  /**
   * An unsigned certificate for `publicKey` (EC P-256/P-384, or RSA 2048/4096). The algorithm
   * defaults to ECDH_SHA256 for a PDH, ECDSA_SHA256 for other EC keys (as the firmware does), and
   * for RSA to SHA-256 with 2048-bit and SHA-384 with 4096-bit keys (as AMD's ASKs do).
   */
  static create(opts: {
    usage: Usage;
    publicKey: KeyObject;
    algorithm?: Algorithm;
    apiMajor?: number;
    apiMinor?: number;
  }): SevCertificate {
    const { usage } = opts;
    if (!SUBJECT_USAGES.includes(usage)) throw fail(`usage ${usageName(usage)} is not one of OCA, PEK, PDH, CEK`);
    const isRsa = opts.publicKey.asymmetricKeyType === 'rsa';
    const algorithm = opts.algorithm ?? defaultAlgorithm(opts.publicKey, usage === Usage.PDH ? 'ecdh' : 'ecdsa');
    const info = algorithmInfo(algorithm);
    if (!info || (usage === Usage.PDH) !== (info.kind === 'ecdh') || (info.kind === 'rsa') !== isRsa) {
      throw fail(`algorithm ${algorithmName(algorithm)} does not fit a ${usageName(usage)} ${opts.publicKey.asymmetricKeyType} key`);
    }
    const key = keyFieldsFromKeyObject(opts.publicKey);
    const apiMajor = opts.apiMajor ?? 0;
    const apiMinor = opts.apiMinor ?? 0;
    if (![apiMajor, apiMinor].every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw fail('api version numbers must be bytes (0..255)');
    }
    // Re-parse so that a created certificate obeys exactly the rules of a parsed one.
    const draft = new SevCertificate({
      apiMajor, apiMinor, usage, algorithm, key, publicKey: opts.publicKey, signatures: [EMPTY_SLOT(), EMPTY_SLOT()],
    });
    return SevCertificate.parse(draft.toBuffer());
  }

  /** The 2084-byte encoding. */
  toBuffer(): Buffer {
    const out = Buffer.alloc(SEV_CERT_SIZE);
    this.writeBody(out);
    SEV_CERT_SIGNATURE_OFFSETS.forEach((off, i) => {
      const slot = this.signatures[i];
      out.writeUInt32LE(slot.usage, off);
      out.writeUInt32LE(slot.algorithm, off + 4);
      slot.data.copy(out, off + 8);
    });
    return out;
  }

  /** The signed region: the first 0x414 bytes. */
  body(): Buffer {
    const out = Buffer.alloc(SEV_CERT_BODY_SIZE);
    this.writeBody(out);
    return out;
  }

  /** True when neither slot holds a signature. */
  get isUnsigned(): boolean {
    return this.signatures.every((s) => s.usage === Usage.NONE);
  }

  /** The slot index signed by a given usage, or -1. */
  slotOf(signerUsage: Usage): number {
    return this.signatures.findIndex((s) => s.usage === signerUsage && s.usage !== Usage.NONE);
  }

  /**
   * A copy signed by `signer` in `slot` (default: the slot that signer already used, else the
   * first empty slot). Use it for an OCA's self-signature and to sign a PEK CSR with the OCA.
   */
  signedBy(signer: SevSigner, slot?: 0 | 1): SevCertificate {
    const key = signer.privateKey;
    if (key.type !== 'private') throw fail('signing needs a private KeyObject');
    if (!SIGNER_USAGES.includes(signer.usage)) throw fail(`a ${usageName(signer.usage)} key does not sign SEV certificates`);
    const isRsa = key.asymmetricKeyType === 'rsa';
    const algorithm = signer.algorithm ?? defaultAlgorithm(key, 'ecdsa');
    const info = algorithmInfo(algorithm);
    if (!info || info.kind === 'ecdh' || (info.kind === 'rsa') !== isRsa) {
      throw fail(`cannot sign with algorithm ${algorithmName(algorithm)} using a ${key.asymmetricKeyType} key`);
    }
    if (slot !== undefined && slot !== 0 && slot !== 1) throw fail(`there are two signature slots, 0 and 1; got ${String(slot)}`);
    const index = slot ?? (this.slotOf(signer.usage) >= 0 ? this.slotOf(signer.usage) : this.signatures.findIndex((s) => s.usage === Usage.NONE));
    if (index < 0) throw fail('both signature slots are already used');
    const other = this.signatures[1 - index];
    if (other.usage === signer.usage) throw fail(`the other slot is already signed by ${usageName(signer.usage)}`);
    const data = signatureData(key, info.hash, info.kind === 'rsa', this.body());
    const signatures = [...this.signatures] as [SignatureSlot, SignatureSlot];
    signatures[index] = { usage: signer.usage, algorithm, data };
    return SevCertificate.parse(
      new SevCertificate({ ...this, signatures }).toBuffer(),
    );
  }

  /**
   * Checks the signature that `signer` (identified by its usage) made over this certificate.
   * The slot's algorithm must match the signer's key: same kind, same digest.
   */
  verifySignature(signer: SevVerifier): SignatureCheck {
    const usage = signer.usage;
    const index = this.slotOf(usage);
    if (index < 0) return { ok: false, reason: `${usageName(this.usage)} has no signature by ${usageName(usage)}` };
    const slot = this.signatures[index];
    const slotInfo = algorithmInfo(slot.algorithm)!;
    const expected = expectedSignerAlgorithm(signer);
    if (expected && expected !== slot.algorithm) {
      return {
        ok: false,
        reason: `signature slot ${index + 1} uses ${algorithmName(slot.algorithm)}, but the ${usageName(usage)} key signs with ${algorithmName(expected)}`,
      };
    }
    const key = signer.publicKey;
    const body = this.body();
    if (slotInfo.kind === 'rsa') {
      if (key.asymmetricKeyType !== 'rsa') return { ok: false, reason: `${usageName(usage)} key is not RSA` };
      const bytes = (key.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
      if (!allZero(slot.data.subarray(bytes))) {
        return { ok: false, reason: `signature slot ${index + 1} has non-zero bytes beyond the ${bytes * 8}-bit RSA signature` };
      }
      const ok = rsaPssVerify(key, slotInfo.hash, body, reversed(slot.data.subarray(0, bytes)));
      return ok ? { ok } : { ok, reason: `RSA-PSS signature by ${usageName(usage)} does not match` };
    }
    if (key.asymmetricKeyType !== 'ec') return { ok: false, reason: `${usageName(usage)} key is not an EC key` };
    const size = EC_CURVES[ecComponentsFromKey(key, CMD).curve].bytes;
    const r = leToBeFixed(slot.data.subarray(0, EC_COORD_SIZE), size);
    const s = leToBeFixed(slot.data.subarray(EC_COORD_SIZE, 2 * EC_COORD_SIZE), size);
    if (!r || !s) return { ok: false, reason: `ECDSA r or s in slot ${index + 1} is wider than the signer's curve` };
    const ok = ecdsaVerify(key, slotInfo.hash, body, r, s);
    return ok ? { ok } : { ok, reason: `ECDSA signature by ${usageName(usage)} does not match` };
  }

  private writeBody(out: Buffer): void {
    out.writeUInt32LE(this.version, 0);
    out[4] = this.apiMajor;
    out[5] = this.apiMinor;
    out.writeUInt32LE(this.usage, 8);
    out.writeUInt32LE(this.algorithm, 0xc);
    const k = this.key;
    if (k.type === 'ec') {
      out.writeUInt32LE(k.curve, PUBKEY_OFFSET);
      beToLe(k.x, EC_COORD_SIZE).copy(out, PUBKEY_OFFSET + 4);
      beToLe(k.y, EC_COORD_SIZE).copy(out, PUBKEY_OFFSET + 4 + EC_COORD_SIZE);
    } else {
      out.writeUInt32LE(k.modulusBits, PUBKEY_OFFSET);
      beToLe(k.exponent, RSA_FIELD_SIZE).copy(out, PUBKEY_OFFSET + 4);
      beToLe(k.modulus, RSA_FIELD_SIZE).copy(out, PUBKEY_OFFSET + 4 + RSA_FIELD_SIZE);
    }
  }
}

/** Generates a P-384 key pair and returns it with a self-signed OCA certificate for it. */
export function generateOca(opts: { apiMajor?: number; apiMinor?: number } = {}): { cert: SevCertificate; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { cert: selfSignedOca(privateKey, publicKey, opts), privateKey };
}

/** A self-signed OCA certificate for an existing key pair (ECDSA_SHA256, like sevctl's). */
export function selfSignedOca(
  privateKey: KeyObject,
  publicKey: KeyObject = createPublicKey(privateKey),
  opts: { apiMajor?: number; apiMinor?: number } = {},
): SevCertificate {
  return SevCertificate.create({ usage: Usage.OCA, publicKey, ...opts }).signedBy({ privateKey, usage: Usage.OCA });
}

function decodePublicKey(field: Buffer, kind: 'rsa' | 'ecdsa' | 'ecdh'): SevPublicKey {
  if (kind === 'rsa') {
    const bits = field.readUInt32LE(0);
    if (!SUPPORTED_RSA_BITS.includes(bits)) throw fail(`unsupported RSA modulus size ${bits} bits (2048 or 4096)`);
    const bytes = bits / 8;
    const exponent = leToBeFixed(field.subarray(4, 4 + RSA_FIELD_SIZE), bytes);
    const modulus = leToBeFixed(field.subarray(4 + RSA_FIELD_SIZE), bytes);
    if (!exponent || !modulus) throw fail(`RSA exponent or modulus is wider than ${bits} bits`);
    if ((modulus[0] & 0x80) === 0) throw fail(`RSA modulus is shorter than the stated ${bits} bits`);
    return { type: 'rsa', modulusBits: bits, modulus, exponent: stripLeadingZeros(exponent) };
  }
  const curve = field.readUInt32LE(0) as EcCurve;
  const info = EC_CURVES[curve];
  if (!info) throw fail(`unknown EC curve id ${field.readUInt32LE(0)}`);
  const x = leToBeFixed(field.subarray(4, 4 + EC_COORD_SIZE), info.bytes);
  const y = leToBeFixed(field.subarray(4 + EC_COORD_SIZE, 4 + 2 * EC_COORD_SIZE), info.bytes);
  if (!x || !y) throw fail(`${info.jwk} coordinates have non-zero bytes beyond ${info.bytes} bytes`);
  if (!allZero(field.subarray(4 + 2 * EC_COORD_SIZE))) throw fail('reserved bytes after the EC public key are not zero');
  return { type: 'ec', curve, x, y };
}

function parseSlot(field: Buffer, index: number): SignatureSlot {
  const usage = field.readUInt32LE(0);
  const algorithm = field.readUInt32LE(4);
  const data = Buffer.from(field.subarray(8));
  const name = `signature slot ${index + 1}`;
  if (usage === Usage.NONE || algorithm === Algorithm.NONE) {
    if (usage !== Usage.NONE || algorithm !== Algorithm.NONE) {
      throw fail(`${name} is half empty (usage ${usageName(usage)}, algorithm ${algorithmName(algorithm)})`);
    }
    if (!allZero(data)) throw fail(`${name} is empty but its signature bytes are not zero`);
    return { usage, algorithm, data };
  }
  if (!SIGNER_USAGES.includes(usage)) throw fail(`${name}: ${usageName(usage)} is not a signing key usage`);
  const info = algorithmInfo(algorithm);
  if (!info || info.kind === 'ecdh') throw fail(`${name}: ${algorithmName(algorithm)} is not a signature algorithm`);
  if (usage === Usage.ASK && info.kind !== 'rsa') throw fail(`${name}: the ASK signs with RSA, not ${algorithmName(algorithm)}`);
  if (info.kind === 'ecdsa' && !allZero(data.subarray(2 * EC_COORD_SIZE))) {
    throw fail(`${name}: reserved bytes after ECDSA r and s are not zero`);
  }
  return { usage, algorithm, data };
}

function keyFieldsFromKeyObject(publicKey: KeyObject): SevPublicKey {
  if (publicKey.asymmetricKeyType === 'rsa') {
    const { modulus, exponent } = rsaComponentsFromKey(publicKey, CMD);
    const bits = stripLeadingZeros(modulus).length * 8;
    if (!SUPPORTED_RSA_BITS.includes(bits)) throw fail(`unsupported RSA modulus size ${bits} bits (2048 or 4096)`);
    return { type: 'rsa', modulusBits: bits, modulus: stripLeadingZeros(modulus), exponent: stripLeadingZeros(exponent) };
  }
  if (publicKey.asymmetricKeyType === 'ec') return { type: 'ec', ...ecComponentsFromKey(publicKey, CMD) };
  throw fail(`unsupported key type ${publicKey.asymmetricKeyType}`);
}

/** Default algorithm for a key: EC → SHA-256; RSA → SHA-256 (2048-bit) or SHA-384 (4096-bit), like AMD's CA keys. */
function defaultAlgorithm(key: KeyObject, ecKind: 'ecdsa' | 'ecdh'): Algorithm {
  if (key.asymmetricKeyType !== 'rsa') return algorithmFor(ecKind, 'sha256');
  return algorithmFor('rsa', caHashForBits(key.asymmetricKeyDetails?.modulusLength ?? 0));
}

/** The algorithm a signer's key must have recorded in the slot, when the signer tells us. */
function expectedSignerAlgorithm(signer: SevVerifier): Algorithm | undefined {
  if (signer instanceof SevCertificate) return signer.algorithm;
  if (signer instanceof CaCertificate) return algorithmFor('rsa', signer.hash);
  return signer.algorithm;
}

function signatureData(key: KeyObject, hash: HashName, rsa: boolean, body: Buffer): Buffer {
  const data = Buffer.alloc(SIG_DATA_SIZE);
  if (rsa) {
    const sig = rsaPssSign(key, hash, body);
    if (sig.length > SIG_DATA_SIZE) throw fail(`an RSA signature of ${sig.length * 8} bits does not fit the slot`);
    reversed(sig).copy(data);
  } else {
    const { r, s } = ecdsaSign(key, hash, body);
    beToLe(r, EC_COORD_SIZE).copy(data, 0);
    beToLe(s, EC_COORD_SIZE).copy(data, EC_COORD_SIZE);
  }
  return data;
}
