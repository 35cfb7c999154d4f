// The SEV launch measurement (SEV API spec 55766, LAUNCH_MEASURE):
//   MEASURE = HMAC-SHA256(TIK, 0x04 ‖ API_MAJOR ‖ API_MINOR ‖ BUILD ‖ GCTX.POLICY ‖ GCTX.LD ‖ MNONCE)
// where GCTX.LD is the SHA-256 launch digest over everything measured by LAUNCH_UPDATE_DATA /
// LAUNCH_UPDATE_VMSA, in order. The LAUNCH_MEASURE blob is MEASURE (32) ‖ MNONCE (16).
import { createHash } from 'node:crypto';

import { SevArgumentError } from '../errors';
import { requireBytes } from './inputs';
import { hmacSha256, macEqual } from './kdf';

export const MEASUREMENT_SIZE = 32;
export const MNONCE_SIZE = 16;
export const LAUNCH_MEASURE_BLOB_SIZE = MEASUREMENT_SIZE + MNONCE_SIZE;

export interface FirmwareBuild {
  apiMajor: number;
  apiMinor: number;
  build: number;
}

export interface MeasurementInputs extends FirmwareBuild {
  tik: Uint8Array;
  policy: number;
  /** SHA-256 launch digest (32 bytes). */
  digest: Uint8Array;
  mnonce: Uint8Array;
}

/** Splits a LAUNCH_MEASURE blob into the measurement and the firmware's nonce. */
export function parseLaunchMeasure(blob: Uint8Array): { measurement: Buffer; mnonce: Buffer } {
  requireBytes('LAUNCH_MEASURE', 'measurement blob', blob);
  if (blob.length !== LAUNCH_MEASURE_BLOB_SIZE) {
    throw new SevArgumentError('LAUNCH_MEASURE', `measurement blob must be ${LAUNCH_MEASURE_BLOB_SIZE} bytes, got ${blob.length}`);
  }
  const b = Buffer.from(blob);
  return { measurement: b.subarray(0, MEASUREMENT_SIZE), mnonce: b.subarray(MEASUREMENT_SIZE) };
}

/** The launch digest over the measured data, in launch order. */
export function launchDigest(chunks: Iterable<Uint8Array>): Buffer {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest();
}

/**
 * The measurement LAUNCH_MEASURE returns for these inputs (32 bytes). Throws SevArgumentError
 * for wrong sizes (TIK 16, digest 32, nonce 16) or out-of-range version / policy numbers.
 */
export function computeMeasurement(m: MeasurementInputs): Buffer {
  if (typeof m !== 'object' || m === null) {
    throw new SevArgumentError('measurement', 'expected { apiMajor, apiMinor, build, policy, tik, digest, mnonce }');
  }
  const check = (name: string, v: Uint8Array, len: number) => {
    if (!(v instanceof Uint8Array) || v.length !== len) {
      throw new SevArgumentError('measurement', `${name} must be ${len} bytes`);
    }
  };
  check('tik', m.tik, 16);
  check('digest', m.digest, 32);
  check('mnonce', m.mnonce, MNONCE_SIZE);
  for (const [k, v] of [['apiMajor', m.apiMajor], ['apiMinor', m.apiMinor], ['build', m.build]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new SevArgumentError('measurement', `${k} must be a byte`);
  }
  if (!Number.isInteger(m.policy) || m.policy < 0 || m.policy > 0xffffffff) {
    throw new SevArgumentError('measurement', 'policy must be a 32-bit unsigned integer');
  }
  const policy = Buffer.alloc(4);
  policy.writeUInt32LE(m.policy);
  return hmacSha256(m.tik, Buffer.of(0x04, m.apiMajor, m.apiMinor, m.build), policy, m.digest, m.mnonce);
}

/** Constant-time check of a reported measurement against the expected inputs. */
export function verifyMeasurement(reported: Uint8Array, m: MeasurementInputs): boolean {
  return macEqual(computeMeasurement(m), reported);
}
