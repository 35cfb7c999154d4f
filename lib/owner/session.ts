// The guest owner's side of LAUNCH_START (SEV API spec 55766, "Session establishment"): a fresh
// P-384 guest-owner DH key (GODH), the shared secret with the platform's PDH, and the session
// blob that carries the TEK and TIK wrapped for the firmware:
//   Z        = ECDH(GODH private, PDH public)            (x coordinate)
//   master   = KDF(Z, "sev-master-secret", nonce, 16)
//   KEK, KIK = KDF(master, "sev-kek" | "sev-kik", "", 16)
//   wrap_tk  = AES-128-CTR(KEK, wrap_iv, TEK ‖ TIK);  wrap_mac = HMAC(KIK, wrap_tk)
//   policy_mac = HMAC(TIK, policy as u32 LE)
//   session  = nonce(16) ‖ wrap_tk(32) ‖ wrap_iv(16) ‖ wrap_mac(32) ‖ policy_mac(32)
import { createCipheriv, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';

import { Algorithm, Usage, usageName } from '../certs/constants';
import { SevCertificate } from '../certs/sev-cert';
import { SevArgumentError } from '../errors';
import { requireBytes } from './inputs';
import { hmacSha256, sevKdf } from './kdf';

export const SESSION_BLOB_SIZE = 128;

export interface TransportKeys {
  tek: Buffer;
  tik: Buffer;
}

export interface SessionParts {
  nonce: Buffer;
  wrapTk: Buffer;
  wrapIv: Buffer;
  wrapMac: Buffer;
  policyMac: Buffer;
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/**
 * Builds the LAUNCH_START session blob from the ECDH shared secret `z`. nonce / iv / keys are
 * random unless given (tests pass them to reproduce known vectors).
 */
export function buildSessionBlob(
  z: Uint8Array,
  policy: number,
  keys: TransportKeys = { tek: randomBytes(16), tik: randomBytes(16) },
  nonce: Buffer = randomBytes(16),
  iv: Buffer = randomBytes(16),
): { blob: Buffer; parts: SessionParts; keys: TransportKeys } {
  requireBytes('session', 'shared secret', z);
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) {
    throw new SevArgumentError('session', 'policy must be a 32-bit unsigned integer');
  }
  if (typeof keys !== 'object' || keys === null) throw new SevArgumentError('session', 'expected the transport keys { tek, tik }');
  requireBytes('session', 'TEK', keys.tek, 16);
  requireBytes('session', 'TIK', keys.tik, 16);
  requireBytes('session', 'nonce', nonce, 16);
  requireBytes('session', 'IV', iv, 16);
  if (keys.tek.length !== 16 || keys.tik.length !== 16) {
    throw new SevArgumentError('session', 'TEK and TIK must be 16 bytes each');
  }
  if (nonce.length !== 16 || iv.length !== 16) throw new SevArgumentError('session', 'nonce and IV must be 16 bytes');
  const master = sevKdf(z, 'sev-master-secret', nonce, 16);
  const kek = sevKdf(master, 'sev-kek', Buffer.alloc(0), 16);
  const kik = sevKdf(master, 'sev-kik', Buffer.alloc(0), 16);
  const cipher = createCipheriv('aes-128-ctr', kek, iv);
  const wrapTk = Buffer.concat([cipher.update(Buffer.concat([keys.tek, keys.tik])), cipher.final()]);
  const wrapMac = hmacSha256(kik, wrapTk);
  const policyMac = hmacSha256(keys.tik, u32le(policy));
  const parts = { nonce, wrapTk, wrapIv: iv, wrapMac, policyMac };
  return { blob: Buffer.concat([nonce, wrapTk, iv, wrapMac, policyMac]), parts, keys };
}

export function parseSessionBlob(blob: Uint8Array): SessionParts {
  if (blob.length !== SESSION_BLOB_SIZE) {
    throw new SevArgumentError('session', `session blob must be ${SESSION_BLOB_SIZE} bytes, got ${blob.length}`);
  }
  const b = Buffer.from(blob);
  return {
    nonce: b.subarray(0, 16),
    wrapTk: b.subarray(16, 48),
    wrapIv: b.subarray(48, 64),
    wrapMac: b.subarray(64, 96),
    policyMac: b.subarray(96, 128),
  };
}

/** Everything the guest owner needs for LAUNCH_START, and keeps for later steps. */
export interface LaunchSession {
  /** The guest owner's DH certificate (SEV format, ECDH P-384), for LAUNCH_START's dh_uaddr. */
  godhCert: Buffer;
  /** The 128-byte session blob for LAUNCH_START's session_uaddr. */
  session: Buffer;
  /** Transport keys: keep them secret; the TIK verifies the measurement, the TEK wraps secrets. */
  tek: Buffer;
  tik: Buffer;
  policy: number;
}

/**
 * Builds a launch session for the platform whose PDH is `pdh` (verify the PDH's chain first —
 * lib/certs verifyChain). A fresh P-384 GODH key is made for each session.
 */
export function createLaunchSession(
  pdh: Uint8Array | SevCertificate,
  policy: number,
  options: { keys?: TransportKeys; nonce?: Buffer; iv?: Buffer } = {},
): LaunchSession {
  const pdhCert = pdh instanceof SevCertificate ? pdh : SevCertificate.parse(pdh);
  if (pdhCert.usage !== Usage.PDH) throw new SevArgumentError('session', `expected a PDH certificate, got ${usageName(pdhCert.usage)}`);
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) {
    throw new SevArgumentError('session', 'policy must be a 32-bit unsigned integer');
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const z = diffieHellman({ privateKey, publicKey: pdhCert.publicKey });
  const godh = SevCertificate.create({ usage: Usage.PDH, publicKey, algorithm: Algorithm.ECDH_SHA256 });
  const { blob, keys } = buildSessionBlob(z, policy, options.keys, options.nonce, options.iv);
  return { godhCert: godh.toBuffer(), session: blob, tek: keys.tek, tik: keys.tik, policy };
}
