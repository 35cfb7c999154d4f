// The guest owner's side of LAUNCH_START (SEV API spec 55766, "Session establishment"): a fresh
// P-384 guest-owner DH key (GODH), the shared secret with the platform's PDH, and the session
// blob that carries the TEK and TIK wrapped for the firmware:
//   Z        = ECDH(GODH private, PDH public)            (x coordinate)
//   master   = KDF(Z, "sev-master-secret", nonce, 16)
//   KEK, KIK = KDF(master, "sev-kek" | "sev-kik", "", 16)
//   wrap_tk  = AES-128-CTR(KEK, wrap_iv, TEK ‖ TIK);  wrap_mac = HMAC(KIK, wrap_tk)
//   policy_mac = HMAC(TIK, policy as u32 LE)
//   session  = nonce(16) ‖ wrap_tk(32) ‖ wrap_iv(16) ‖ wrap_mac(32) ‖ policy_mac(32)
import { createCipheriv, randomBytes } from 'node:crypto';

import { SevArgumentError } from '../errors';
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
