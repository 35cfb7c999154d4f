// LAUNCH_SECRET packets (SEV API spec 55766, LAUNCH_SECRET): the payload is encrypted with the
// TEK (AES-128-CTR) and authenticated with the TIK over the launch measurement:
//   header = FLAGS(u32 LE) ‖ IV(16) ‖ MAC(32)
//   MAC    = HMAC(TIK, 0x01 ‖ FLAGS ‖ IV ‖ GUEST_LENGTH ‖ TRANS_LENGTH ‖ ciphertext ‖ MEASURE)
// The payload OVMF expects is its secret table (edk2 OvmfPkg/AmdSev/SecretDxe, sevctl
// `secret build`): a GUID table with u32 lengths, padded to 16 bytes:
//   GUID 1e74f542-71dd-4d66-963e-ef4287ff173b ‖ u32 len ‖ (GUID ‖ u32 len ‖ secret)... ‖ pad
import { createCipheriv, randomBytes } from 'node:crypto';

import { SevArgumentError } from '../errors';
import { requireBytes } from './inputs';
import { KNOWN_GUIDS } from './guid';
import { encodeGuidTable, type GuidTableEntry } from './guid-table';
import { hmacSha256 } from './kdf';

export const SECRET_HEADER_SIZE = 52;

export interface SecretPacket {
  header: Buffer;
  ciphertext: Buffer;
}

export function buildSecretPacket(
  keys: { tek: Uint8Array; tik: Uint8Array },
  measurement: Uint8Array,
  payload: Uint8Array,
  options: { flags?: number; iv?: Buffer } | null = {},
): SecretPacket {
  options ??= {};
  if (typeof keys !== 'object' || keys === null) throw new SevArgumentError('secret', 'expected the transport keys { tek, tik }');
  requireBytes('secret', 'TEK', keys.tek);
  requireBytes('secret', 'TIK', keys.tik);
  requireBytes('secret', 'measurement', measurement);
  requireBytes('secret', 'payload', payload);
  if (options.iv !== undefined) requireBytes('secret', 'IV', options.iv);
  if (keys.tek.length !== 16) throw new SevArgumentError('secret', `TEK must be 16 bytes, got ${keys.tek.length}`);
  if (keys.tik.length !== 16) throw new SevArgumentError('secret', `TIK must be 16 bytes, got ${keys.tik.length}`);
  if (measurement.length !== 32) throw new SevArgumentError('secret', 'measurement must be 32 bytes');
  if (options.iv !== undefined && options.iv.length !== 16) throw new SevArgumentError('secret', `IV must be 16 bytes, got ${options.iv.length}`);
  if (payload.length === 0 || payload.length % 16 !== 0) {
    throw new SevArgumentError('secret', 'payload length must be a non-zero multiple of 16');
  }
  const flags = options.flags ?? 0;
  const iv = options.iv ?? randomBytes(16);
  const cipher = createCipheriv('aes-128-ctr', keys.tek, iv);
  const ciphertext = Buffer.concat([cipher.update(payload), cipher.final()]);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return b;
  };
  const mac = hmacSha256(keys.tik, Buffer.of(0x01), u32(flags), iv, u32(payload.length), u32(ciphertext.length), ciphertext, measurement);
  return { header: Buffer.concat([u32(flags), iv, mac]), ciphertext };
}

/** One secret for the guest: OVMF exposes it to the guest under `guid`. */
export type SecretEntry = GuidTableEntry;

/** The OVMF secret table carrying `secrets`, padded to a multiple of 16 bytes. */
export function buildSecretTable(secrets: SecretEntry[]): Buffer {
  if (secrets.length === 0) throw new SevArgumentError('secret', 'at least one secret is needed');
  return encodeGuidTable(KNOWN_GUIDS.sevSecretTable, secrets, 4);
}

export interface LaunchSecretOptions {
  tek: Uint8Array;
  tik: Uint8Array;
  /** The launch measurement (32 bytes) or the whole LAUNCH_MEASURE blob (48 bytes). */
  measurement: Uint8Array;
  secrets: SecretEntry[];
  /** Random unless given (tests pin it to reproduce known packets). */
  iv?: Buffer;
}

/**
 * Builds the LAUNCH_SECRET packet for OVMF's secret table: the 52-byte header and the
 * encrypted table (what `sevctl secret build` writes to its header and payload files).
 */
export function buildLaunchSecret(o: LaunchSecretOptions): SecretPacket {
  if (o.measurement.length !== 32 && o.measurement.length !== 48) {
    throw new SevArgumentError('secret', `the launch measurement must be 32 bytes (or the 48-byte LAUNCH_MEASURE blob), got ${o.measurement.length}`);
  }
  return buildSecretPacket({ tek: o.tek, tik: o.tik }, o.measurement.subarray(0, 32), buildSecretTable(o.secrets), { iv: o.iv });
}
