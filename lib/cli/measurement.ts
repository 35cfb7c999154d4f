// `sev measurement build|verify`: the expected launch measurement of an SEV / SEV-ES guest,
// with sevctl's `measurement build` flags and output (base64 of measurement ‖ nonce), and a
// `verify` verb that checks a measurement reported by the VMM (QEMU query-sev-launch-measure,
// virsh domlaunchsecinfo) like libvirt's virt-qemu-sev-validate does offline.

import { SevArgumentError } from '../errors';
import { writeOutputFile } from '../output-files';
import {
  expectedMeasurement, verifyLaunchMeasurement, POLICY_ES,
  type ExpectedMeasurementParams,
} from '../owner/expected-measurement';
import { digestFileArg } from '../owner/file-digest';
import { MAX_FIRMWARE_FILE_BYTES, parseIntOrHex, readBase64, readBase64OrPath, readFileArg } from '../owner/inputs';
import { sevEsVcpusFor, type LaunchImages, type SevEsVcpus } from '../owner/launch-digest';
import { LAUNCH_MEASURE_BLOB_SIZE, MEASUREMENT_SIZE, MNONCE_SIZE } from '../owner/measurement';
import { OvmfImage } from '../owner/ovmf';
import { cpuTypeSignature, type CpuSignature, type UserspaceVmm } from '../owner/vmsa-builder';
import { toJson, UsageError, type CliContext } from './output';
import type { Command } from './sev';

const COMMAND = 'measurement';
type Values = Record<string, unknown>;

const str = (v: Values, name: string): string | undefined => v[name] as string | undefined;

function required(v: Values, name: string, why = ''): string {
  const value = str(v, name);
  if (value === undefined) throw new UsageError(`${COMMAND}: --${name} is required${why}`);
  return value;
}

/** --userspace (sevctl vmsa's name for the VMM), shared with `sev vmsa`. */
export function parseUserspace(value: string | undefined, command: string): UserspaceVmm {
  if (value === undefined || value === 'qemu' || value === 'krun') return value ?? 'qemu';
  throw new UsageError(`${command}: --userspace must be qemu or krun, got '${value}'`);
}

function launchParameters(v: Values) {
  return {
    apiMajor: parseIntOrHex(COMMAND, '--api-major', required(v, 'api-major'), 0xff),
    apiMinor: parseIntOrHex(COMMAND, '--api-minor', required(v, 'api-minor'), 0xff),
    build: parseIntOrHex(COMMAND, '--build-id', required(v, 'build-id'), 0xff),
    policy: parseIntOrHex(COMMAND, '--policy', required(v, 'policy')),
    tik: readBase64OrPath(COMMAND, '--tik', required(v, 'tik'), 16),
  };
}

/** The CPU signature from --cpu-type or --cpu-family/--cpu-model/--cpu-stepping, if given. */
function cpuSignature(v: Values): CpuSignature | undefined {
  const type = str(v, 'cpu-type');
  const parts = ['cpu-family', 'cpu-model', 'cpu-stepping'].map((n) => str(v, n));
  if (type !== undefined) {
    if (parts.some((p) => p !== undefined)) throw new UsageError(`${COMMAND}: --cpu-type and --cpu-family/--cpu-model/--cpu-stepping exclude each other`);
    return cpuTypeSignature(type);
  }
  if (parts.every((p) => p === undefined)) return undefined;
  if (parts.some((p) => p === undefined)) throw new UsageError(`${COMMAND}: --cpu-family, --cpu-model, --cpu-stepping must be given together`);
  const [family, model, stepping] = parts.map((p, i) => parseIntOrHex(COMMAND, `--${['cpu-family', 'cpu-model', 'cpu-stepping'][i]}`, p!, 0xfff));
  return { family, model, stepping };
}

/** vCPU state for SEV-ES: VMSA files (sevctl), or pages built from the CPU signature. */
function sevEsVcpus(v: Values, ovmf: OvmfImage): SevEsVcpus | undefined {
  const files = [str(v, 'vmsa-cpu0'), str(v, 'vmsa-cpu1')];
  const signature = cpuSignature(v);
  const numCpus = str(v, 'num-cpus');
  if (numCpus === undefined) {
    if (files.some((f) => f !== undefined) || signature) throw new UsageError(`${COMMAND}: --num-cpus is needed with VMSAs or a CPU signature`);
    return undefined;
  }
  const count = parseIntOrHex(COMMAND, '--num-cpus', numCpus);
  if (count < 1) throw new SevArgumentError(COMMAND, '--num-cpus must be at least 1');
  if (files.some((f) => f !== undefined)) {
    if (files.some((f) => f === undefined)) throw new UsageError(`${COMMAND}: --num-cpus, --vmsa-cpu0, --vmsa-cpu1 must be specified together`);
    if (signature) throw new UsageError(`${COMMAND}: give VMSA files or a CPU signature, not both`);
    return { count, bsp: readFileArg(COMMAND, '--vmsa-cpu0', files[0]!), ap: readFileArg(COMMAND, '--vmsa-cpu1', files[1]!) };
  }
  if (!signature) throw new UsageError(`${COMMAND}: with --num-cpus give --vmsa-cpu0/--vmsa-cpu1, --cpu-type, or --cpu-family/--cpu-model/--cpu-stepping`);
  return sevEsVcpusFor({ count, firmware: ovmf, userspace: parseUserspace(str(v, 'userspace'), COMMAND), ...signature });
}

function launchImages(ctx: CliContext, v: Values, policy: number): LaunchImages {
  const ovmf = OvmfImage.parse(readFileArg(COMMAND, '--firmware', required(v, 'firmware', ' (or --launch-digest)'), MAX_FIRMWARE_FILE_BYTES));
  const images: LaunchImages = { firmware: ovmf };
  const kernel = str(v, 'kernel');
  if (kernel !== undefined) {
    const initrd = str(v, 'initrd');
    // Measured through their SHA-256 only: streamed once, never held in memory.
    images.kernelBoot = {
      kernel: digestFileArg(COMMAND, '--kernel', kernel),
      initrd: initrd === undefined ? undefined : digestFileArg(COMMAND, '--initrd', initrd),
      cmdline: str(v, 'cmdline'),
    };
  } else if (str(v, 'initrd') !== undefined || str(v, 'cmdline') !== undefined) {
    throw new UsageError(`${COMMAND}: --initrd and --cmdline are measured only with --kernel`);
  }
  const vcpus = sevEsVcpus(v, ovmf);
  if (vcpus && (policy & POLICY_ES) === 0) {
    ctx.err(`note: the policy (0x${policy.toString(16)}) has no SEV-ES bit; vCPU state is not measured for SEV guests`);
  }
  images.vcpus = vcpus;
  return images;
}

function measurementParams(ctx: CliContext, v: Values): ExpectedMeasurementParams {
  const build = launchParameters(v);
  const digest = str(v, 'launch-digest');
  if (digest !== undefined) {
    if (str(v, 'firmware') !== undefined) throw new UsageError(`${COMMAND}: --launch-digest and --firmware exclude each other`);
    return { ...build, digest: readBase64(COMMAND, '--launch-digest', digest, 32) };
  }
  return { ...build, images: launchImages(ctx, v, build.policy) };
}

/** The nonce: --nonce, else the last 16 bytes of a LAUNCH_MEASURE blob. */
function nonceFrom(v: Values, blob: Buffer | undefined): Buffer {
  const nonce = str(v, 'nonce');
  if (nonce !== undefined) return readBase64OrPath(COMMAND, '--nonce', nonce, MNONCE_SIZE);
  if (blob) return blob.subarray(MEASUREMENT_SIZE);
  throw new UsageError(`${COMMAND}: one of --nonce or --launch-measure-blob must be specified`);
}

async function build(ctx: CliContext, v: Values): Promise<number> {
  const blobArg = str(v, 'launch-measure-blob');
  const blob = blobArg === undefined ? undefined : readBase64OrPath(COMMAND, '--launch-measure-blob', blobArg, LAUNCH_MEASURE_BLOB_SIZE);
  const mnonce = nonceFrom(v, blob);
  const result = expectedMeasurement(measurementParams(ctx, v), mnonce);
  const outfile = str(v, 'outfile');
  if (outfile !== undefined) {
    writeOutputFile(COMMAND, outfile, result.blob);
  }
  if (ctx.json) {
    ctx.out(toJson({
      measurement: result.measurement.toString('base64'),
      mnonce: result.mnonce.toString('base64'),
      launchMeasureBlob: result.blob.toString('base64'),
      launchDigest: result.digest.toString('base64'),
      ...(outfile === undefined ? {} : { outfile }),
    }));
  } else {
    ctx.out(outfile === undefined ? result.blob.toString('base64') : `Wrote outfile: ${outfile}`);
  }
  return 0;
}

async function verify(ctx: CliContext, v: Values): Promise<number> {
  const given = ['measurement', 'launch-measure-blob'].filter((n) => str(v, n) !== undefined);
  if (given.length !== 1) throw new UsageError(`${COMMAND} verify: give the reported measurement with --measurement (or --launch-measure-blob)`);
  const reported = readBase64OrPath(COMMAND, `--${given[0]}`, str(v, given[0])!);
  if (reported.length !== LAUNCH_MEASURE_BLOB_SIZE && reported.length !== MEASUREMENT_SIZE) {
    throw new SevArgumentError(COMMAND, `--${given[0]} must be the ${LAUNCH_MEASURE_BLOB_SIZE}-byte LAUNCH_MEASURE blob or a ${MEASUREMENT_SIZE}-byte measurement, got ${reported.length} bytes`);
  }
  const nonceArg = str(v, 'nonce');
  const mnonce = nonceArg === undefined ? undefined : readBase64OrPath(COMMAND, '--nonce', nonceArg, MNONCE_SIZE);
  if (!mnonce && reported.length === MEASUREMENT_SIZE) throw new UsageError(`${COMMAND} verify: a 32-byte measurement needs --nonce`);
  const verdict = verifyLaunchMeasurement(reported, measurementParams(ctx, v), mnonce);
  if (ctx.json) {
    ctx.out(toJson({
      match: verdict.ok,
      expected: verdict.measurement.toString('base64'),
      reported: verdict.reported.toString('base64'),
      mnonce: verdict.mnonce.toString('base64'),
      launchDigest: verdict.digest.toString('base64'),
    }));
  } else if (verdict.ok) {
    ctx.out('OK: the reported measurement matches the expected launch');
  } else {
    ctx.out('MISMATCH: the reported measurement does not match the expected launch');
    ctx.out(`  expected: ${verdict.measurement.toString('base64')}`);
    ctx.out(`  reported: ${verdict.reported.toString('base64')}`);
  }
  return verdict.ok ? 0 : 1;
}

const INPUTS = `  --api-major N --api-minor N --build-id N   firmware version (decimal or 0x-hex)
  --policy N                                 guest policy
  --tik PATH|BASE64                          transport integrity key (16 bytes)
  --nonce PATH|BASE64                        firmware nonce (16 bytes), or
  --launch-measure-blob PATH|BASE64          LAUNCH_MEASURE output; its nonce is used
  --launch-digest BASE64                     the launch digest itself, or:
  --firmware PATH                            OVMF image
  --kernel PATH [--initrd PATH] [--cmdline TEXT]   measured direct boot (SEV hashes table)
  --num-cpus N                               SEV-ES: number of vCPUs, with
    --vmsa-cpu0 PATH --vmsa-cpu1 PATH        VMSA pages of vCPU 0 and of the APs, or
    --cpu-type NAME | --cpu-family N --cpu-model N --cpu-stepping N  [--userspace qemu|krun]`;

export const measurementCommand: Command = {
  name: 'measurement',
  usage: `measurement build  <inputs> [--outfile PATH]
       sev measurement verify --measurement PATH|BASE64 <inputs>

Inputs:
${INPUTS}

build prints base64(measurement ‖ nonce), as sevctl does (--outfile writes it in binary).
verify exits 0 when the reported measurement (48-byte LAUNCH_MEASURE blob, or 32 bytes with
--nonce) matches, 1 when it does not.`,
  options: {
    'api-major': { type: 'string' },
    'api-minor': { type: 'string' },
    'build-id': { type: 'string' },
    policy: { type: 'string' },
    tik: { type: 'string' },
    nonce: { type: 'string' },
    'launch-measure-blob': { type: 'string' },
    'launch-digest': { type: 'string' },
    firmware: { type: 'string' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    cmdline: { type: 'string' },
    'num-cpus': { type: 'string' },
    'vmsa-cpu0': { type: 'string' },
    'vmsa-cpu1': { type: 'string' },
    'cpu-type': { type: 'string' },
    'cpu-family': { type: 'string' },
    'cpu-model': { type: 'string' },
    'cpu-stepping': { type: 'string' },
    userspace: { type: 'string' },
    outfile: { type: 'string' },
    measurement: { type: 'string' },
  },
  async run(ctx, { values, positionals }) {
    const [verb, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`${COMMAND}: unexpected argument '${extra[0]}'`);
    if (verb === 'build') {
      if (values.measurement !== undefined) throw new UsageError(`${COMMAND} build: --measurement is for verify`);
      return build(ctx, values);
    }
    if (verb === 'verify') {
      if (values.outfile !== undefined) throw new UsageError(`${COMMAND} verify: --outfile is for build`);
      return verify(ctx, values);
    }
    throw new UsageError(`${COMMAND}: expected 'build' or 'verify'${verb ? `, got '${verb}'` : ''}`);
  },
};
