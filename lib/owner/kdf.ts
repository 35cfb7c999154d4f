// The SEV API's key derivation and MACs (SEV API spec 55766, "Key Derivation Function" and
// "Launch Secret"): NIST SP 800-108 KDF in counter mode with HMAC-SHA256, 32-bit little-endian
// counter and length fields, and HMAC-SHA256 integrity tags.
import { createHmac, timingSafeEqual } from 'node:crypto';

import { SevArgumentError } from '../errors';
import { requireBytes } from './inputs';

/** HMAC-SHA256(key, parts...). */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/**
 * KDF(key, label, context, length): for i = 1.., HMAC(key, i ‖ label ‖ 0x00 ‖ context ‖ L) with
 * i and L (the output length in bits) as u32 LE, concatenated and truncated to `length` bytes.
 */
export function sevKdf(key: Uint8Array, label: string, context: Uint8Array, length: number): Buffer {
  requireBytes('kdf', 'key', key);
  requireBytes('kdf', 'context', context);
  if (typeof label !== 'string') throw new SevArgumentError('kdf', 'label must be a string');
  if (!Number.isInteger(length) || length <= 0 || length > 1 << 16) throw new SevArgumentError('kdf', 'length must be a positive integer');
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * 32 < length; i++) {
    blocks.push(hmacSha256(key, u32le(i), Buffer.from(label, 'latin1'), Buffer.of(0), context, u32le(length * 8)));
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** Constant-time equality for MACs and measurements (false on length mismatch). */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  requireBytes('macEqual', 'first value', a);
  requireBytes('macEqual', 'second value', b);
  return a.length === b.length && timingSafeEqual(a, b);
}
