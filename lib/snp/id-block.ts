// SEV-SNP ID blocks (SNP ABI spec, SNP_LAUNCH_FINISH): the 96-byte ID_BLOCK that a guest owner
// signs with an ID key, the 4096-byte ID_AUTH_INFO that carries that signature, the ID public
// key and (optionally) the author key's signature over the ID key, and the key digests the
// firmware then puts in every attestation report (id_key_digest, author_key_digest).
//
// Keys are ECDSA P-384 with SHA-384 (algorithm 1, curve 2). AMD writes public keys and
// signatures with little-endian integers in 72-byte fields:
//   SNP public key (1028 bytes): curve u32, Qx[72], Qy[72], 880 zero bytes
//   SNP signature  (512 bytes):  R[72], S[72], 368 zero bytes
// A key digest is the SHA-384 of the 1028-byte public key.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

import { SevArgumentError, SevCertificateError } from '../errors';
import { beToLe, EcCurve, ecComponentsFromKey, ecPublicKeyFromComponents, leToBeFixed } from '../certs/keys';
import { ecdsaSign, ecdsaVerify } from '../certs/signing';
import type { FieldMismatch } from './certs';
import { parseAttestationReport, type AttestationReport } from './report';

export const ID_BLOCK_SIZE = 96;
export const ID_AUTH_SIZE = 4096;
export const SNP_PUBLIC_KEY_SIZE = 1028;
export const SNP_SIGNATURE_SIZE = 512;
export const KEY_DIGEST_SIZE = 48;
/** The only ID_BLOCK version the ABI defines. */
export const ID_BLOCK_VERSION = 1;
/** The policy sev-snp-measure and virtee/sev put in an ID block when none is given (SMT allowed, bit 17 set). */
export const ID_BLOCK_DEFAULT_POLICY = 0x30000n;
/** id_key_algo / auth_key_algo: ECDSA P-384 with SHA-384. */
export const SNP_KEY_ALGO_ECDSA_P384_SHA384 = 1;
/** The curve field of an SNP public key: P-384. */
export const SNP_CURVE_P384 = 2;

const FIELD = 72; // bytes of an R, S, Qx or Qy field
const P384_BYTES = 48;

/** Offsets in ID_AUTH_INFO. */
const AUTH = Object.freeze({ idKeyAlgo: 0x000, authKeyAlgo: 0x004, idBlockSig: 0x040, idKey: 0x240, idKeySig: 0x680, authorKey: 0x880 });

/** The fields of an ID_BLOCK; everything but the launch digest has a default. */
export interface IdBlockInput {
  /** The expected launch measurement (48 bytes). */
  launchDigest: Uint8Array;
  /** 16 bytes; zeros by default. */
  familyId?: Uint8Array;
  /** 16 bytes; zeros by default. */
  imageId?: Uint8Array;
  /** u32; 0 by default. */
  guestSvn?: number;
  /** The guest policy (u64) the firmware requires at launch; 0x30000 by default. */
  policy?: bigint | number;
}

export interface IdBlock {
  launchDigest: Buffer;
  familyId: Buffer;
  imageId: Buffer;
  version: number;
  guestSvn: number;
  policy: bigint;
}

/** A key as a KeyObject or PEM text (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, or SPKI `PUBLIC KEY`). */
export type SnpKeyInput = KeyObject | string | Uint8Array;

function bytesArg(command: string, name: string, value: unknown, length: number, fallback?: Buffer): Buffer {
  if (value === undefined && fallback) return fallback;
  if (!(value instanceof Uint8Array)) throw new SevArgumentError(command, `${name} must be a Buffer or Uint8Array of ${length} bytes`);
  if (value.length !== length) throw new SevArgumentError(command, `${name} must be ${length} bytes, got ${value.length}`);
  return Buffer.from(value);
}

/** The 96-byte ID_BLOCK. */
export function buildIdBlock(input: IdBlockInput): Buffer {
  const command = 'buildIdBlock';
  if (typeof input !== 'object' || input === null) throw new SevArgumentError(command, 'expected { launchDigest, familyId?, imageId?, guestSvn?, policy? }');
  const svn = input.guestSvn ?? 0;
  if (!Number.isInteger(svn) || svn < 0 || svn > 0xffffffff) throw new SevArgumentError(command, `guestSvn must be a u32, got ${svn}`);
  const policy = input.policy ?? ID_BLOCK_DEFAULT_POLICY;
  if ((typeof policy !== 'bigint' && !Number.isSafeInteger(policy)) || BigInt(policy) < 0n || BigInt(policy) >= 1n << 64n) {
    throw new SevArgumentError(command, `policy must be a u64, got ${String(policy)}`);
  }
  const block = Buffer.alloc(ID_BLOCK_SIZE);
  bytesArg(command, 'launchDigest', input.launchDigest, 48).copy(block, 0x00);
  bytesArg(command, 'familyId', input.familyId, 16, Buffer.alloc(16)).copy(block, 0x30);
  bytesArg(command, 'imageId', input.imageId, 16, Buffer.alloc(16)).copy(block, 0x40);
  block.writeUInt32LE(ID_BLOCK_VERSION, 0x50);
  block.writeUInt32LE(svn, 0x54);
  block.writeBigUInt64LE(BigInt(policy), 0x58);
  return block;
}

export function parseIdBlock(bytes: Uint8Array): IdBlock {
  const block = bytesArg('parseIdBlock', 'an ID_BLOCK', bytes, ID_BLOCK_SIZE);
  const version = block.readUInt32LE(0x50);
  if (version !== ID_BLOCK_VERSION) throw new SevArgumentError('parseIdBlock', `ID_BLOCK version ${version} is unknown (only ${ID_BLOCK_VERSION} is defined)`);
  return {
    launchDigest: block.subarray(0x00, 0x30),
    familyId: block.subarray(0x30, 0x40),
    imageId: block.subarray(0x40, 0x50),
    version,
    guestSvn: block.readUInt32LE(0x54),
    policy: block.readBigUInt64LE(0x58),
  };
}

function requireP384(command: string, name: string, key: KeyObject): KeyObject {
  const curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined;
  if (curve !== 'secp384r1') {
    const what = key.asymmetricKeyType === 'ec' ? `an EC key on ${curve ?? 'an unknown curve'}` : `a ${key.asymmetricKeyType ?? key.type} key`;
    throw new SevArgumentError(command, `${name} must be an ECDSA P-384 (secp384r1) key, got ${what}`);
  }
  return key;
}

function isKeyObject(v: unknown): v is KeyObject {
  return typeof v === 'object' && v !== null && typeof (v as KeyObject).export === 'function' && typeof (v as KeyObject).type === 'string';
}

/** A P-384 key from a KeyObject or PEM; `private` requires the private half (to sign). */
export function loadSnpKey(input: SnpKeyInput, name = 'key', kind: 'private' | 'any' = 'any'): KeyObject {
  const command = 'loadSnpKey';
  let key: KeyObject;
  if (isKeyObject(input)) {
    key = input;
  } else if (typeof input === 'string' || input instanceof Uint8Array) {
    const pem = Buffer.from(input).toString('latin1');
    const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
    if (!label) throw new SevArgumentError(command, `${name} is not PEM text (expected -----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)`);
    if (label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(pem)) {
      throw new SevArgumentError(command, `${name} is an encrypted private key; decrypt it first (openssl pkey -in KEY -out PLAIN)`);
    }
    try {
      key = label.includes('PRIVATE') ? createPrivateKey(pem) : createPublicKey(pem);
    } catch (e) {
      throw new SevArgumentError(command, `${name}: the PEM ${label} block is not a valid key (${(e as Error).message})`);
    }
  } else {
    throw new SevArgumentError(command, `${name} must be a KeyObject or PEM text`);
  }
  if (kind === 'private' && key.type !== 'private') throw new SevArgumentError(command, `${name} must be a private key (it signs), got a ${key.type} key`);
  return requireP384(command, name, key);
}

/** The 1028-byte SNP public key of a P-384 key (private keys give their public half). */
export function snpPublicKey(key: SnpKeyInput): Buffer {
  const { x, y } = ecComponentsFromKey(loadSnpKey(key), 'snpPublicKey');
  const out = Buffer.alloc(SNP_PUBLIC_KEY_SIZE);
  out.writeUInt32LE(SNP_CURVE_P384, 0);
  beToLe(x, FIELD).copy(out, 4);
  beToLe(y, FIELD).copy(out, 4 + FIELD);
  return out;
}

/** The public KeyObject of a 1028-byte SNP public key; a wrong curve or a point off the curve is a SevCertificateError. */
export function parseSnpPublicKey(bytes: Uint8Array): KeyObject {
  const command = 'parseSnpPublicKey';
  const raw = bytesArg(command, 'an SNP public key', bytes, SNP_PUBLIC_KEY_SIZE);
  const curve = raw.readUInt32LE(0);
  if (curve !== SNP_CURVE_P384) throw new SevCertificateError(command, `curve ${curve} is not P-384 (${SNP_CURVE_P384})`);
  const x = leToBeFixed(raw.subarray(4, 4 + FIELD), P384_BYTES);
  const y = leToBeFixed(raw.subarray(4 + FIELD, 4 + 2 * FIELD), P384_BYTES);
  if (!x || !y) throw new SevCertificateError(command, 'Qx or Qy does not fit P-384 (bytes above the 48th are set)');
  return ecPublicKeyFromComponents({ curve: EcCurve.P384, x, y }, command);
}

/** SHA-384 of the key's 1028-byte SNP public key: what a report holds as id_key_digest / author_key_digest. */
export function snpKeyDigest(key: SnpKeyInput): Buffer {
  return createHash('sha384').update(snpPublicKey(key)).digest();
}

/** ECDSA P-384 SHA-384 signature of `data` in the 512-byte SNP format (randomized: each call differs). */
export function snpSign(privateKey: SnpKeyInput, data: Uint8Array): Buffer {
  const { r, s } = ecdsaSign(loadSnpKey(privateKey, 'the signing key', 'private'), 'sha384', data);
  const out = Buffer.alloc(SNP_SIGNATURE_SIZE);
  beToLe(r, FIELD).copy(out, 0);
  beToLe(s, FIELD).copy(out, FIELD);
  return out;
}

/** True when `signature` (512-byte SNP format) is `key`'s signature of `data`; false for any bad signature. */
export function snpVerify(key: SnpKeyInput, data: Uint8Array, signature: Uint8Array): boolean {
  const publicKey = loadSnpKey(key);
  if (!(signature instanceof Uint8Array) || signature.length !== SNP_SIGNATURE_SIZE) return false;
  const r = leToBeFixed(signature.subarray(0, FIELD), P384_BYTES);
  const s = leToBeFixed(signature.subarray(FIELD, 2 * FIELD), P384_BYTES);
  if (!r || !s || signature.subarray(2 * FIELD).some((b) => b !== 0)) return false;
  return ecdsaVerify(publicKey, 'sha384', data, r, s);
}

export interface IdAuthInput {
  /** The ID key: private to sign the ID block, or public with `idBlockSignature`. */
  idKey: SnpKeyInput;
  /** The author key: private to sign the ID key, or public with `idKeySignature`. */
  authorKey: SnpKeyInput;
  /** A saved signature of the ID block (512 bytes, SNP format) to use instead of signing; it must verify. */
  idBlockSignature?: Uint8Array;
  /** A saved signature of the ID public key by the author key; it must verify. */
  idKeySignature?: Uint8Array;
}

/** A signature to embed: the given one (checked) or a fresh one by `key`, which must then be private. */
function signatureFor(name: string, key: KeyObject, data: Buffer, given: Uint8Array | undefined): Buffer {
  if (given === undefined) return snpSign(key, data);
  const sig = bytesArg('buildIdAuth', name, given, SNP_SIGNATURE_SIZE);
  if (!snpVerify(key, data, sig)) throw new SevArgumentError('buildIdAuth', `${name} does not verify with its key`);
  return sig;
}

/** The 4096-byte ID_AUTH_INFO for `idBlock`: the ID key signs the block, the author key signs the ID key. */
export function buildIdAuth(idBlock: Uint8Array, input: IdAuthInput): Buffer {
  const block = bytesArg('buildIdAuth', 'the ID_BLOCK', idBlock, ID_BLOCK_SIZE);
  if (typeof input !== 'object' || input === null) throw new SevArgumentError('buildIdAuth', 'expected { idKey, authorKey }');
  // A key that has to sign must be private; one whose signature is given may be public.
  const idKey = loadSnpKey(input.idKey, 'idKey', input.idBlockSignature ? 'any' : 'private');
  const authorKey = loadSnpKey(input.authorKey, 'authorKey', input.idKeySignature ? 'any' : 'private');
  const idPublic = snpPublicKey(idKey);
  const auth = Buffer.alloc(ID_AUTH_SIZE);
  auth.writeUInt32LE(SNP_KEY_ALGO_ECDSA_P384_SHA384, AUTH.idKeyAlgo);
  auth.writeUInt32LE(SNP_KEY_ALGO_ECDSA_P384_SHA384, AUTH.authKeyAlgo);
  signatureFor('idBlockSignature', idKey, block, input.idBlockSignature).copy(auth, AUTH.idBlockSig);
  idPublic.copy(auth, AUTH.idKey);
  signatureFor('idKeySignature', authorKey, idPublic, input.idKeySignature).copy(auth, AUTH.idKeySig);
  snpPublicKey(authorKey).copy(auth, AUTH.authorKey);
  return auth;
}

export interface IdBlockAndAuth {
  idBlock: Buffer;
  idAuth: Buffer;
  /** What the report's id_key_digest will be. */
  idKeyDigest: Buffer;
  /** What the report's author_key_digest will be (when the guest is launched with author_key_en). */
  authorKeyDigest: Buffer;
}

/** ID_BLOCK, ID_AUTH_INFO and both key digests, as snpguest's `generate id-block` makes them. */
export function createIdBlock(input: IdBlockInput & IdAuthInput): IdBlockAndAuth {
  const idBlock = buildIdBlock(input);
  const idAuth = buildIdAuth(idBlock, input);
  return {
    idBlock,
    idAuth,
    idKeyDigest: snpKeyDigest(input.idKey),
    authorKeyDigest: snpKeyDigest(input.authorKey),
  };
}

export interface IdAuth {
  idKeyAlgo: number;
  authKeyAlgo: number;
  idBlockSignature: Buffer;
  idKey: Buffer;
  idKeySignature: Buffer;
  /** The author public key, or null when its field is all zero (a guest launched without one). */
  authorKey: Buffer | null;
}

export function parseIdAuth(bytes: Uint8Array): IdAuth {
  const command = 'parseIdAuth';
  const auth = bytesArg(command, 'an ID_AUTH_INFO', bytes, ID_AUTH_SIZE);
  const at = (offset: number, size: number) => auth.subarray(offset, offset + size);
  const idKeyAlgo = auth.readUInt32LE(AUTH.idKeyAlgo);
  const authKeyAlgo = auth.readUInt32LE(AUTH.authKeyAlgo);
  const authorKey = at(AUTH.authorKey, SNP_PUBLIC_KEY_SIZE);
  const hasAuthor = authorKey.some((b) => b !== 0);
  if (idKeyAlgo !== SNP_KEY_ALGO_ECDSA_P384_SHA384) throw new SevArgumentError(command, `id_key_algo ${idKeyAlgo} is not ECDSA P-384 SHA-384 (1)`);
  if (hasAuthor && authKeyAlgo !== SNP_KEY_ALGO_ECDSA_P384_SHA384) throw new SevArgumentError(command, `auth_key_algo ${authKeyAlgo} is not ECDSA P-384 SHA-384 (1)`);
  return {
    idKeyAlgo,
    authKeyAlgo,
    idBlockSignature: at(AUTH.idBlockSig, SNP_SIGNATURE_SIZE),
    idKey: at(AUTH.idKey, SNP_PUBLIC_KEY_SIZE),
    idKeySignature: at(AUTH.idKeySig, SNP_SIGNATURE_SIZE),
    authorKey: hasAuthor ? authorKey : null,
  };
}

export interface IdAuthCheck {
  check: 'id_block_sig' | 'id_key_sig';
  ok: boolean;
  reason?: string;
}

export interface IdAuthVerification {
  ok: boolean;
  /** SHA-384 of the ID_AUTH's ID key. */
  idKeyDigest: Buffer;
  /** SHA-384 of its author key, null without one. */
  authorKeyDigest: Buffer | null;
  /** id_block_sig, then id_key_sig when there is an author key. */
  checks: IdAuthCheck[];
}

function signatureCheck(check: IdAuthCheck['check'], keyBytes: Buffer, data: Buffer, signature: Buffer): IdAuthCheck {
  let key: KeyObject;
  try {
    key = parseSnpPublicKey(keyBytes);
  } catch (e) {
    if (!(e instanceof SevCertificateError)) throw e;
    return { check, ok: false, reason: `unusable public key: ${e.message}` };
  }
  return snpVerify(key, data, signature) ? { check, ok: true } : { check, ok: false, reason: 'bad signature (ECDSA P-384 SHA-384)' };
}

/** Checks ID_AUTH_INFO's signatures as SNP_LAUNCH_FINISH does: the ID key over the ID block, the author key over the ID key. */
export function verifyIdAuth(idBlock: Uint8Array, idAuth: Uint8Array): IdAuthVerification {
  const block = bytesArg('verifyIdAuth', 'the ID_BLOCK', idBlock, ID_BLOCK_SIZE);
  const auth = parseIdAuth(idAuth);
  const checks = [signatureCheck('id_block_sig', auth.idKey, block, auth.idBlockSignature)];
  if (auth.authorKey) checks.push(signatureCheck('id_key_sig', auth.authorKey, auth.idKey, auth.idKeySignature));
  const sha384 = (b: Buffer) => createHash('sha384').update(b).digest();
  return {
    ok: checks.every((c) => c.ok),
    idKeyDigest: sha384(auth.idKey),
    authorKeyDigest: auth.authorKey ? sha384(auth.authorKey) : null,
    checks,
  };
}

export interface ReportKeyCheck {
  ok: boolean;
  /** Each field that differs: the key's digest is expected, the report's value actual. */
  mismatches: FieldMismatch[];
}

/**
 * Whether a report's guest was launched with these keys: id_key_digest against the ID key and,
 * when an author key is given, author_key_en set and author_key_digest against it.
 */
export function checkReportKeys(report: AttestationReport | Uint8Array, keys: { idKey?: SnpKeyInput; authorKey?: SnpKeyInput }): ReportKeyCheck {
  const fields = report instanceof Uint8Array ? parseAttestationReport(report) : report;
  if (typeof keys !== 'object' || keys === null || (keys.idKey === undefined && keys.authorKey === undefined)) {
    throw new SevArgumentError('checkReportKeys', 'give idKey, authorKey or both');
  }
  const mismatches: FieldMismatch[] = [];
  const compare = (field: string, key: SnpKeyInput, actual: Buffer) => {
    const expected = snpKeyDigest(key);
    if (!expected.equals(actual)) mismatches.push({ field, expected: expected.toString('hex'), actual: actual.toString('hex') });
  };
  if (keys.idKey !== undefined) compare('id_key_digest', keys.idKey, fields.idKeyDigest);
  if (keys.authorKey !== undefined) {
    // Without author_key_en the firmware did not check an author key and the digest field is zero.
    if (!fields.authorKeyEn) mismatches.push({ field: 'author_key_en', expected: '1', actual: '0' });
    else compare('author_key_digest', keys.authorKey, fields.authorKeyDigest);
  }
  return { ok: mismatches.length === 0, mismatches };
}
