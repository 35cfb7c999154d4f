// AMD's CA certificate format for the ARK and ASK (SEV API spec, pub. 55766, appendix B).
// Little-endian, variable size:
//
//   0x00 version (1)   0x04 key_id[16]   0x14 certifying_id[16]   0x24 key_usage (ARK 0x0, ASK 0x13)
//   0x28 reserved[16]  0x38 pub_exp_size (bits)   0x3C modulus_size (bits)
//   0x40 pub_exp[pub_exp_size/8]  modulus[modulus_size/8]  signature[modulus_size/8]
//
// The signature covers everything before it and is RSASSA-PSS, stored byte-reversed. Verified
// against AMD's published certificates: RSA-2048 (Naples) signs with SHA-256 and a 32-byte salt,
// RSA-4096 (Rome, Milan, Genoa, Turin) with SHA-384 and a 48-byte salt; MGF1 uses the same digest.
import { randomBytes, type KeyObject } from 'node:crypto';

import { SevCertificateError } from '../errors';
import { Usage, usageName, type HashName } from './constants';
import { beToLe, leToBeFixed, reversed, rsaComponentsFromKey, rsaPublicKeyFromComponents, stripLeadingZeros } from './keys';
import { rsaPssSign, rsaPssVerify } from './signing';
import type { SignatureCheck } from './sev-cert';

/** Size of the fixed header before the exponent. */
export const CA_CERT_HEADER_SIZE = 0x40;
/** Certificate sizes for the two key sizes AMD uses. */
export const CA_CERT_SIZES = Object.freeze({ 2048: 0x40 + 3 * 256, 4096: 0x40 + 3 * 512 }); // 832, 1600

const CMD = 'CA_CERT';
const SUPPORTED_BITS = [2048, 4096];

function fail(message: string, cause?: unknown): SevCertificateError {
  return new SevCertificateError(CMD, message, cause);
}

/** The digest an RSA key of this size signs with in AMD's CA format. */
export function caHashForBits(bits: number): HashName {
  return bits === 2048 ? 'sha256' : 'sha384';
}

interface CaFields {
  keyId: Uint8Array;
  certifyingId: Uint8Array;
  usage: Usage.ARK | Usage.ASK;
  modulusBits: number;
  pubExpBits: number;
  modulus: Buffer;
  exponent: Buffer;
  signature: Uint8Array;
  publicKey: KeyObject;
}

/** An AMD CA-format certificate (ARK or ASK). Immutable; signing returns a new one. */
export class CaCertificate {
  readonly version = 1;
  /** 16-byte id of this key. */
  readonly keyId: Buffer;
  /** 16-byte id of the key that signed this one (the ARK's own id for the self-signed ARK). */
  readonly certifyingId: Buffer;
  readonly usage: Usage.ARK | Usage.ASK;
  readonly modulusBits: number;
  readonly pubExpBits: number;
  /** RSA modulus and exponent, big-endian. */
  readonly modulus: Buffer;
  readonly exponent: Buffer;
  /** The signature field exactly as stored (little-endian, modulus-sized). */
  readonly signature: Buffer;
  /** The public key as a node KeyObject. */
  readonly publicKey: KeyObject;

  private constructor(f: CaFields) {
    this.keyId = Buffer.from(f.keyId);
    this.certifyingId = Buffer.from(f.certifyingId);
    this.usage = f.usage;
    this.modulusBits = f.modulusBits;
    this.pubExpBits = f.pubExpBits;
    this.modulus = Buffer.from(f.modulus);
    this.exponent = Buffer.from(f.exponent);
    this.signature = Buffer.from(f.signature);
    this.publicKey = f.publicKey;
    Object.freeze(this);
  }

  /** Parses exactly one CA certificate; the byte length must match the sizes in its header. */
  static parse(bytes: Uint8Array): CaCertificate {
    const { cert, length } = CaCertificate.parseFirst(bytes);
    if (length !== bytes.length) {
      throw fail(`${length} bytes of ${usageName(cert.usage)} certificate followed by ${bytes.length - length} extra bytes`);
    }
    return cert;
  }

  /** Parses the CA certificate at the start of `bytes` (as in an ASK‖ARK blob) and says how long it was. */
  static parseFirst(bytes: Uint8Array): { cert: CaCertificate; length: number } {
    if (!(bytes instanceof Uint8Array)) throw fail('expected the certificate as a Buffer/Uint8Array');
    if (bytes.length < CA_CERT_HEADER_SIZE) {
      throw fail(`a CA certificate has a ${CA_CERT_HEADER_SIZE}-byte header, got ${bytes.length} bytes`);
    }
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const version = b.readUInt32LE(0);
    if (version !== 1) throw fail(`unsupported CA certificate version ${version} (expected 1)`);
    const usage = b.readUInt32LE(0x24);
    if (usage !== Usage.ARK && usage !== Usage.ASK) throw fail(`key usage ${usageName(usage)} is neither ARK nor ASK`);
    if (b.subarray(0x28, 0x38).some((x) => x !== 0)) throw fail('reserved bytes at 0x28 are not zero');
    const pubExpBits = b.readUInt32LE(0x38);
    const modulusBits = b.readUInt32LE(0x3c);
    if (!SUPPORTED_BITS.includes(modulusBits)) throw fail(`unsupported modulus size ${modulusBits} bits (2048 or 4096)`);
    if (pubExpBits !== modulusBits) throw fail(`exponent field size ${pubExpBits} bits differs from modulus size ${modulusBits}`);
    const size = modulusBits / 8;
    const length = CA_CERT_HEADER_SIZE + 3 * size;
    if (b.length < length) {
      throw fail(`a ${modulusBits}-bit ${usageName(usage)} certificate is ${length} bytes, got ${b.length} (truncated)`);
    }
    const expField = b.subarray(CA_CERT_HEADER_SIZE, CA_CERT_HEADER_SIZE + size);
    const modulus = reversed(b.subarray(CA_CERT_HEADER_SIZE + size, CA_CERT_HEADER_SIZE + 2 * size));
    if ((modulus[0] & 0x80) === 0) throw fail(`the modulus is shorter than the stated ${modulusBits} bits`);
    const exponent = stripLeadingZeros(leToBeFixed(expField, size)!);
    const publicKey = rsaPublicKeyFromComponents({ modulus, exponent }, CMD);
    const cert = new CaCertificate({
      keyId: b.subarray(0x04, 0x14),
      certifyingId: b.subarray(0x14, 0x24),
      usage,
      modulusBits,
      pubExpBits,
      modulus,
      exponent,
      signature: b.subarray(CA_CERT_HEADER_SIZE + 2 * size, length),
      publicKey,
    });
    return { cert, length };
  }

  /**
   * An unsigned CA certificate for an RSA-2048/4096 key (signature all zero). Ids default to
   * random; an ARK's certifying id defaults to its own key id.
   */
  static create(opts: { usage: Usage.ARK | Usage.ASK; publicKey: KeyObject; keyId?: Uint8Array; certifyingId?: Uint8Array }): CaCertificate {
    if (opts.usage !== Usage.ARK && opts.usage !== Usage.ASK) throw fail('usage must be ARK or ASK');
    const { modulus, exponent } = rsaComponentsFromKey(opts.publicKey, CMD);
    const n = stripLeadingZeros(modulus);
    const bits = n.length * 8;
    if (!SUPPORTED_BITS.includes(bits)) throw fail(`unsupported modulus size ${bits} bits (2048 or 4096)`);
    const keyId = Buffer.from(opts.keyId ?? randomBytes(16));
    const certifyingId = Buffer.from(opts.certifyingId ?? (opts.usage === Usage.ARK ? keyId : randomBytes(16)));
    if (keyId.length !== 16 || certifyingId.length !== 16) throw fail('key ids are 16 bytes');
    const draft = new CaCertificate({
      keyId, certifyingId, usage: opts.usage, modulusBits: bits, pubExpBits: bits, modulus: n,
      exponent: stripLeadingZeros(exponent), signature: Buffer.alloc(bits / 8), publicKey: opts.publicKey,
    });
    return CaCertificate.parse(draft.toBuffer());
  }

  /** The digest this key signs with (SHA-256 for RSA-2048, SHA-384 for RSA-4096). */
  get hash(): HashName {
    return caHashForBits(this.modulusBits);
  }

  /** Encoded size in bytes. */
  get size(): number {
    return CA_CERT_HEADER_SIZE + 3 * (this.modulusBits / 8);
  }

  /** True when the certificate names itself as its certifier (an ARK). */
  get isSelfSigned(): boolean {
    return this.keyId.equals(this.certifyingId);
  }

  /** The byte-exact encoding. */
  toBuffer(): Buffer {
    return Buffer.concat([this.body(), this.signature]);
  }

  /** The signed region: header, exponent and modulus. */
  body(): Buffer {
    const size = this.modulusBits / 8;
    const header = Buffer.alloc(CA_CERT_HEADER_SIZE);
    header.writeUInt32LE(this.version, 0);
    this.keyId.copy(header, 0x04);
    this.certifyingId.copy(header, 0x14);
    header.writeUInt32LE(this.usage, 0x24);
    header.writeUInt32LE(this.pubExpBits, 0x38);
    header.writeUInt32LE(this.modulusBits, 0x3c);
    return Buffer.concat([header, beToLe(this.exponent, this.pubExpBits / 8), beToLe(this.modulus, size)]);
  }

  /**
   * A copy signed by `privateKey` (RSA-PSS, digest by the signer's key size). The caller sets
   * `certifyingId` (at create time) to the signer's key id: it is part of the signed bytes.
   */
  signedBy(privateKey: KeyObject): CaCertificate {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') throw fail('signing needs a private RSA KeyObject');
    const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits !== this.modulusBits) throw fail(`a ${bits}-bit key cannot fill a ${this.modulusBits}-bit signature field`);
    const sig = rsaPssSign(privateKey, caHashForBits(bits), this.body());
    return CaCertificate.parse(Buffer.concat([this.body(), reversed(sig)]));
  }

  /**
   * Checks this certificate's signature with `signer` (the ARK for an ASK, itself for the ARK).
   * With a CA certificate as signer, its key id must equal this certificate's certifying id.
   */
  verifySignature(signer: CaCertificate | KeyObject): SignatureCheck {
    let key: KeyObject;
    if (signer instanceof CaCertificate) {
      if (!signer.keyId.equals(this.certifyingId)) {
        return {
          ok: false,
          reason: `certifying id ${this.certifyingId.toString('hex')} is not the ${usageName(signer.usage)}'s key id ${signer.keyId.toString('hex')}`,
        };
      }
      key = signer.publicKey;
    } else {
      key = signer;
    }
    if (key.asymmetricKeyType !== 'rsa') return { ok: false, reason: 'the signer is not an RSA key' };
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits !== this.modulusBits) return { ok: false, reason: `a ${bits}-bit signer cannot have made a ${this.modulusBits}-bit signature` };
    const ok = rsaPssVerify(key, caHashForBits(bits), this.body(), reversed(this.signature));
    return ok ? { ok } : { ok, reason: `RSA-PSS signature over the ${usageName(this.usage)} does not match` };
  }
}
