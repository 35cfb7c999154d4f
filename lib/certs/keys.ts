// Public keys between AMD's little-endian certificate fields and node:crypto KeyObjects.
// AMD stores big integers (RSA modulus/exponent, EC coordinates, signatures) little-endian in
// fixed-width fields; node speaks big-endian (JWK, DER). All conversions go through JWK so
// node:crypto does the validation (point on curve, sane RSA components).
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

import { SevArgumentError, SevCertificateError } from '../errors';

/** Elliptic curves of the SEV certificate format (SEV API spec, "ECC curve" ids). */
export enum EcCurve {
  P256 = 0x1,
  P384 = 0x2,
}

/** Curve facts: JWK name, byte size of a coordinate / scalar. */
export const EC_CURVES: Readonly<Record<EcCurve, { jwk: 'P-256' | 'P-384'; bytes: number }>> = Object.freeze({
  [EcCurve.P256]: { jwk: 'P-256', bytes: 32 },
  [EcCurve.P384]: { jwk: 'P-384', bytes: 48 },
});

/** An EC public key as the certificate holds it, coordinates big-endian and curve-sized. */
export interface EcPublicKeyComponents {
  curve: EcCurve;
  x: Buffer;
  y: Buffer;
}

/** An RSA public key as big-endian integers without leading zeros. */
export interface RsaPublicKeyComponents {
  modulus: Buffer;
  exponent: Buffer;
}

/** Byte-reversed copy (little-endian ↔ big-endian). */
export function reversed(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes).reverse();
}

/** Big-endian integer without leading zero bytes (zero stays one byte). */
export function stripLeadingZeros(bigEndian: Uint8Array): Buffer {
  let i = 0;
  while (i < bigEndian.length - 1 && bigEndian[i] === 0) i++;
  return Buffer.from(bigEndian.subarray(i));
}

/** Reads a little-endian field as a big-endian integer of exactly `width` bytes; null when it does not fit. */
export function leToBeFixed(le: Uint8Array, width: number): Buffer | null {
  for (let i = width; i < le.length; i++) if (le[i] !== 0) return null;
  const out = Buffer.alloc(width);
  const n = Math.min(width, le.length);
  for (let i = 0; i < n; i++) out[width - 1 - i] = le[i];
  return out;
}

/** Writes a big-endian integer into a zero-padded little-endian field of `width` bytes. */
export function beToLe(be: Uint8Array, width: number): Buffer {
  const value = stripLeadingZeros(be);
  if (value.length > width) {
    throw new SevArgumentError('beToLe', `integer of ${value.length} bytes does not fit a ${width}-byte field`);
  }
  const out = Buffer.alloc(width);
  for (let i = 0; i < value.length; i++) out[i] = value[value.length - 1 - i];
  return out;
}

function bad(command: string, message: string, cause?: unknown): SevCertificateError {
  return new SevCertificateError(command, message, cause);
}

/** EC public KeyObject from big-endian coordinates; node checks the point is on the curve. */
export function ecPublicKeyFromComponents(key: EcPublicKeyComponents, command = 'EC_KEY'): KeyObject {
  const curve = EC_CURVES[key.curve];
  if (!curve) throw bad(command, `unknown EC curve id ${key.curve}`);
  if (key.x.length !== curve.bytes || key.y.length !== curve.bytes) {
    throw bad(command, `${curve.jwk} coordinates must be ${curve.bytes} bytes`);
  }
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: curve.jwk, x: key.x.toString('base64url'), y: key.y.toString('base64url') },
      format: 'jwk',
    });
  } catch (e) {
    throw bad(command, `the ${curve.jwk} public key is not a point on the curve`, e);
  }
}

/** Curve and big-endian coordinates of an EC KeyObject (public or private) on P-256/P-384. */
export function ecComponentsFromKey(key: KeyObject, command = 'EC_KEY'): EcPublicKeyComponents {
  const jwk = publicJwk(key, command);
  if (jwk.kty !== 'EC') throw bad(command, `expected an EC key, got ${jwk.kty}`);
  const entry = Object.entries(EC_CURVES).find(([, c]) => c.jwk === jwk.crv);
  if (!entry || !jwk.x || !jwk.y) throw bad(command, `unsupported EC curve ${jwk.crv}`);
  return { curve: Number(entry[0]) as EcCurve, x: Buffer.from(jwk.x, 'base64url'), y: Buffer.from(jwk.y, 'base64url') };
}

/** RSA public KeyObject from big-endian modulus and exponent. */
export function rsaPublicKeyFromComponents(key: RsaPublicKeyComponents, command = 'RSA_KEY'): KeyObject {
  const n = stripLeadingZeros(key.modulus);
  const e = stripLeadingZeros(key.exponent);
  if (n.length < 2 || (n[n.length - 1] & 1) === 0) throw bad(command, 'RSA modulus must be odd and non-trivial');
  if ((e[e.length - 1] & 1) === 0 || (e.length === 1 && e[0] < 3)) throw bad(command, 'RSA exponent must be odd and at least 3');
  try {
    return createPublicKey({
      key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
      format: 'jwk',
    });
  } catch (err) {
    throw bad(command, 'invalid RSA public key', err);
  }
}

/** Big-endian modulus and exponent of an RSA KeyObject (public or private). */
export function rsaComponentsFromKey(key: KeyObject, command = 'RSA_KEY'): RsaPublicKeyComponents {
  const jwk = publicJwk(key, command);
  if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e) throw bad(command, `expected an RSA key, got ${jwk.kty}`);
  return { modulus: Buffer.from(jwk.n, 'base64url'), exponent: Buffer.from(jwk.e, 'base64url') };
}

/** The public half of a key as JWK (private members dropped). */
export function publicJwk(key: KeyObject, command = 'KEY'): JsonWebKey {
  try {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    return pub.export({ format: 'jwk' });
  } catch (e) {
    throw bad(command, `cannot export the key (${key.asymmetricKeyType ?? key.type})`, e);
  }
}

/** Accepted spellings of a public key: KeyObject, PEM (string or Buffer), SPKI DER, or a JWK object. */
export type PublicKeyInput = KeyObject | string | Buffer | JsonWebKey;

/** Normalises a public key given as KeyObject/PEM/DER/JWK to a public KeyObject (private keys are reduced). */
export function toPublicKey(input: PublicKeyInput, command = 'KEY'): KeyObject {
  try {
    if (typeof input === 'string') return createPublicKey(input);
    if (Buffer.isBuffer(input)) {
      const pem = input.subarray(0, 10).toString('latin1').startsWith('-----');
      return pem ? createPublicKey(input) : createPublicKey({ key: input, format: 'der', type: 'spki' });
    }
    if (isKeyObject(input)) return input.type === 'public' ? input : createPublicKey(input);
    return createPublicKey({ key: input, format: 'jwk' });
  } catch (e) {
    throw bad(command, 'not a usable public key (expected a KeyObject, PEM, SPKI DER or JWK)', e);
  }
}

/** Public key as SPKI PEM text. */
export function publicKeyToPem(key: KeyObject): string {
  return toPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
}

/** SHA-256 (hex) of the key's SubjectPublicKeyInfo DER: the canonical fingerprint node-sev pins. */
export function spkiSha256(key: KeyObject): string {
  const der = toPublicKey(key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

function isKeyObject(v: unknown): v is KeyObject {
  return typeof v === 'object' && v !== null && typeof (v as KeyObject).export === 'function' &&
    typeof (v as KeyObject).type === 'string';
}
