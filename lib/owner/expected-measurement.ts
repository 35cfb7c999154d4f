// The guest owner's check of a launch (what libvirt's virt-qemu-sev-validate does offline):
// rebuild the launch digest from the images, compute the HMAC the firmware should have
// returned for the reported nonce, and compare in constant time.
import { SevArgumentError } from '../errors';
import { macEqual } from './kdf';
import { launchDigestOf, type LaunchImages } from './launch-digest';
import { computeMeasurement, LAUNCH_MEASURE_BLOB_SIZE, MEASUREMENT_SIZE, MNONCE_SIZE, type FirmwareBuild } from './measurement';

/** Guest policy bit 2: the guest is an SEV-ES guest (SEV API spec 55766, "Guest Policy"). */
export const POLICY_ES = 1 << 2;

export interface ExpectedMeasurementParams extends FirmwareBuild {
  /** Guest policy as given to LAUNCH_START. */
  policy: number;
  /** Transport integrity key (16 bytes) of the launch session. */
  tik: Uint8Array;
  /** Either the launch digest itself (32 bytes)... */
  digest?: Uint8Array;
  /** ...or the images that were measured. */
  images?: LaunchImages;
}

export interface ExpectedMeasurement {
  /** HMAC-SHA256 the firmware returns from LAUNCH_MEASURE (32 bytes). */
  measurement: Buffer;
  mnonce: Buffer;
  /** measurement ‖ mnonce, the LAUNCH_MEASURE blob QEMU / libvirt report (48 bytes). */
  blob: Buffer;
  /** The launch digest GCTX.LD (32 bytes). */
  digest: Buffer;
}

/** Resolves the launch digest from the parameters (explicit digest wins, as in sevctl). */
export function expectedLaunchDigest(p: ExpectedMeasurementParams): Buffer {
  if (p.digest) {
    if (p.digest.length !== 32) throw new SevArgumentError('measurement', `the launch digest must be 32 bytes, got ${p.digest.length}`);
    return Buffer.from(p.digest);
  }
  if (!p.images) throw new SevArgumentError('measurement', 'give either the launch digest or the firmware image');
  const es = (p.policy & POLICY_ES) !== 0;
  if (es && !p.images.vcpus) {
    throw new SevArgumentError('measurement', 'the policy has the SEV-ES bit set: the vCPU count and VMSAs (or CPU signature) are needed');
  }
  // A plain SEV guest's register state is not measured.
  return launchDigestOf(es ? p.images : { ...p.images, vcpus: undefined });
}

/** Computes the measurement a correct launch reports for firmware nonce `mnonce`. */
export function expectedMeasurement(p: ExpectedMeasurementParams, mnonce: Uint8Array): ExpectedMeasurement {
  if (mnonce.length !== MNONCE_SIZE) throw new SevArgumentError('measurement', `the nonce must be ${MNONCE_SIZE} bytes, got ${mnonce.length}`);
  const digest = expectedLaunchDigest(p);
  const measurement = computeMeasurement({ ...p, digest, mnonce });
  const nonce = Buffer.from(mnonce);
  return { measurement, mnonce: nonce, blob: Buffer.concat([measurement, nonce]), digest };
}

export interface MeasurementVerdict extends ExpectedMeasurement {
  ok: boolean;
  /** The measurement part of what was reported. */
  reported: Buffer;
}

/**
 * Verifies a reported measurement: either the 48-byte LAUNCH_MEASURE blob (the nonce is taken
 * from it) or the 32-byte measurement together with `mnonce`. Constant-time comparison.
 */
export function verifyLaunchMeasurement(reported: Uint8Array, p: ExpectedMeasurementParams, mnonce?: Uint8Array): MeasurementVerdict {
  let measured: Buffer;
  let nonce: Uint8Array | undefined = mnonce;
  if (reported.length === LAUNCH_MEASURE_BLOB_SIZE) {
    measured = Buffer.from(reported.subarray(0, MEASUREMENT_SIZE));
    nonce ??= reported.subarray(MEASUREMENT_SIZE);
  } else if (reported.length === MEASUREMENT_SIZE) {
    measured = Buffer.from(reported);
    if (!nonce) throw new SevArgumentError('measurement', 'a 32-byte measurement needs the nonce; give the 48-byte LAUNCH_MEASURE blob or the nonce');
  } else {
    throw new SevArgumentError('measurement', `the reported measurement must be ${LAUNCH_MEASURE_BLOB_SIZE} bytes (measurement ‖ nonce) or ${MEASUREMENT_SIZE}, got ${reported.length}`);
  }
  const expected = expectedMeasurement(p, nonce);
  return { ...expected, ok: macEqual(expected.measurement, measured), reported: measured };
}
