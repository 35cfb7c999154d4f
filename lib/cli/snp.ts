// `sev snp …`: SEV-SNP attestation on the owner's side, with snpguest's verbs and flags where it
// has them (`display report`, `verify attestation`) and sev-snp-measure's for `measure`.
//   sev snp display report REPORT [--generation G]
//   sev snp verify attestation CERTS_DIR REPORT   (ark/ask/vcek .pem or .der in CERTS_DIR)
//   sev snp verify attestation REPORT --vcek F (--cert-chain F | --ask F --ark F)
//   sev snp measure --mode snp --ovmf F --vcpus N --vcpu-type T [--kernel F --initrd F --append S] ...
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SevArgumentError } from '../errors';
import { parseIntOrHex, readFileArg } from '../owner/inputs';
import { parseCertChainPem } from '../snp/certs';
import { calcLaunchDigest, type LaunchDigestOptions, type MeasurementMode } from '../snp/measurement';
import { formatReport, parseAttestationReport, reportToJSON, SNP_GENERATIONS, type SnpGeneration } from '../snp/report';
import { formatAttestation, verifyAttestation } from '../snp/verify';
import type { SnpVmmType } from '../snp/vmsa';
import { toJson, UsageError, type CliContext } from './output';
import type { Command } from './sev';
import { FETCH_OPTIONS, FETCH_USAGE, snpFetch } from './snp-fetch';

const COMMAND = 'snp';
type Values = Record<string, unknown>;
const str = (v: Values, name: string): string | undefined => v[name] as string | undefined;

function generationOption(v: Values): SnpGeneration | undefined {
  const g = str(v, 'generation');
  if (g === undefined) return undefined;
  if (!(SNP_GENERATIONS as readonly string[]).includes(g)) throw new UsageError(`${COMMAND}: --generation must be one of ${SNP_GENERATIONS.join(', ')}`);
  return g as SnpGeneration;
}

function displayReport(ctx: CliContext, v: Values, args: string[]): number {
  if (args.length !== 1) throw new UsageError(`${COMMAND} display report: one report file expected`);
  const generation = generationOption(v);
  const report = parseAttestationReport(readFileArg(COMMAND, 'report', args[0]), { generation });
  ctx.out(ctx.json ? toJson(reportToJSON(report)) : formatReport(report));
  return 0;
}

/** A certificate in CERTS_DIR under any of snpguest's names (pem or der). */
function certFromDir(dir: string, name: string): Buffer {
  for (const ext of ['pem', 'der', 'crt', 'cer']) {
    const file = path.join(dir, `${name}.${ext}`);
    if (fs.existsSync(file)) return readFileArg(COMMAND, name, file);
  }
  throw new SevArgumentError(COMMAND, `${dir} has no ${name}.pem or ${name}.der`);
}

function verifyReport(ctx: CliContext, v: Values, args: string[]): number {
  const generation = generationOption(v);
  let reportFile: string;
  let certs: { ark: Buffer; ask: Buffer; vcek: Buffer };
  if (args.length === 2) {
    const [dir, file] = args;
    reportFile = file;
    certs = { ark: certFromDir(dir, 'ark'), ask: certFromDir(dir, 'ask'), vcek: certFromDir(dir, 'vcek') };
  } else if (args.length === 1) {
    reportFile = args[0];
    const vcek = str(v, 'vcek');
    if (!vcek) throw new UsageError(`${COMMAND} verify attestation: give CERTS_DIR REPORT, or REPORT with --vcek and --cert-chain (or --ask and --ark)`);
    const chain = str(v, 'cert-chain');
    const ask = str(v, 'ask');
    const ark = str(v, 'ark');
    if (chain && (ask || ark)) throw new UsageError(`${COMMAND} verify attestation: --cert-chain and --ask/--ark exclude each other`);
    if (!chain && !(ask && ark)) throw new UsageError(`${COMMAND} verify attestation: --cert-chain, or both --ask and --ark, are needed`);
    const bundle = chain ? parseCertChainPem(readFileArg(COMMAND, '--cert-chain', chain)) : undefined;
    certs = {
      vcek: readFileArg(COMMAND, '--vcek', vcek),
      ask: bundle ? bundle.ask.der : readFileArg(COMMAND, '--ask', ask!),
      ark: bundle ? bundle.ark.der : readFileArg(COMMAND, '--ark', ark!),
    };
  } else {
    throw new UsageError(`${COMMAND} verify attestation: CERTS_DIR REPORT, or REPORT --vcek F --cert-chain F`);
  }
  const crl = str(v, 'crl');
  const result = verifyAttestation({ report: readFileArg(COMMAND, 'report', reportFile), ...certs, generation, ...(crl ? { crl: readFileArg(COMMAND, '--crl', crl) } : {}) });
  ctx.out(ctx.json ? toJson(result) : formatAttestation(result));
  return result.ok ? 0 : 1;
}

const MODES: MeasurementMode[] = ['sev', 'seves', 'snp', 'snp-svsm'];
const VMM_TYPES: SnpVmmType[] = ['qemu', 'ec2', 'krun', 'gce'];

function measure(ctx: CliContext, v: Values): number {
  const mode = str(v, 'mode') ?? 'snp';
  if (!MODES.includes(mode as MeasurementMode)) throw new UsageError(`${COMMAND} measure: --mode must be one of ${MODES.join(', ')}`);
  const ovmf = str(v, 'ovmf');
  if (!ovmf) throw new UsageError(`${COMMAND} measure: --ovmf is required`);
  const vmm = str(v, 'vmm-type');
  if (vmm !== undefined && !VMM_TYPES.includes(vmm as SnpVmmType)) throw new UsageError(`${COMMAND} measure: --vmm-type must be one of ${VMM_TYPES.join(', ')}`);
  const int = (name: string, max?: number) => {
    const text = str(v, name);
    return text === undefined ? undefined : parseIntOrHex(COMMAND, `--${name}`, text, max);
  };
  const file = (name: string) => {
    const p = str(v, name);
    return p === undefined ? undefined : readFileArg(COMMAND, `--${name}`, p);
  };
  const features = str(v, 'guest-features');
  const options: LaunchDigestOptions = {
    mode: mode as MeasurementMode,
    ovmf: readFileArg(COMMAND, '--ovmf', ovmf),
    vcpus: int('vcpus'),
    vcpuType: str(v, 'vcpu-type'),
    vcpuSig: int('vcpu-sig'),
    vcpuFamily: int('vcpu-family'),
    vcpuModel: int('vcpu-model'),
    vcpuStepping: int('vcpu-stepping'),
    kernel: file('kernel'),
    initrd: file('initrd'),
    append: str(v, 'append'),
    guestFeatures: features === undefined ? undefined : BigInt(parseGuestFeatures(features)),
    ovmfHash: str(v, 'snp-ovmf-hash'),
    vmmType: vmm as SnpVmmType | undefined,
    svsm: file('svsm'),
    varsSize: int('vars-size'),
    varsFile: str(v, 'vars-file'),
  };
  const digest = calcLaunchDigest(options);
  const format = str(v, 'output-format') ?? 'hex';
  if (format !== 'hex' && format !== 'base64') throw new UsageError(`${COMMAND} measure: --output-format must be hex or base64`);
  const text = digest.toString(format);
  ctx.out(ctx.json ? toJson({ mode, measurement: digest.toString('hex') }) : text);
  return 0;
}

/** Guest features as hex (0x…) or decimal, up to 64 bits. */
function parseGuestFeatures(text: string): bigint {
  if (!/^(0x[0-9a-f]{1,16}|[0-9]{1,20})$/i.test(text)) throw new SevArgumentError(COMMAND, `--guest-features must be a 64-bit number, got '${text}'`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new SevArgumentError(COMMAND, `--guest-features must fit in 64 bits, got '${text}'`);
  return value;
}

export const snpCommand: Command = {
  name: 'snp',
  summary: 'SEV-SNP attestation: display and verify reports, compute launch measurements',
  usage: [
    'snp display report REPORT [--generation milan|genoa|turin] [--json]',
    '       sev snp verify attestation CERTS_DIR REPORT [--generation G] [--crl CRL_DER] [--json]',
    '       sev snp verify attestation REPORT --vcek FILE (--cert-chain FILE | --ask FILE --ark FILE)',
    '       sev snp measure --ovmf FILE [--mode snp|snp-svsm|seves|sev] [--vcpus N]',
    '                       [--vcpu-type T | --vcpu-sig N | --vcpu-family N --vcpu-model N --vcpu-stepping N]',
    '                       [--kernel FILE --initrd FILE --append CMDLINE] [--guest-features N]',
    '                       [--vmm-type qemu|ec2|krun|gce] [--snp-ovmf-hash HEX]',
    '                       [--svsm FILE (--vars-size N | --vars-file FILE)] [--output-format hex|base64]',
    ...FETCH_USAGE,
  ].join('\n'),
  options: {
    ...FETCH_OPTIONS,
    generation: { type: 'string' },
    vcek: { type: 'string' },
    ask: { type: 'string' },
    ark: { type: 'string' },
    'cert-chain': { type: 'string' },
    crl: { type: 'string' },
    mode: { type: 'string' },
    ovmf: { type: 'string' },
    vcpus: { type: 'string' },
    'vcpu-type': { type: 'string' },
    'vcpu-sig': { type: 'string' },
    'vcpu-family': { type: 'string' },
    'vcpu-model': { type: 'string' },
    'vcpu-stepping': { type: 'string' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    append: { type: 'string' },
    'guest-features': { type: 'string' },
    'vmm-type': { type: 'string' },
    'snp-ovmf-hash': { type: 'string' },
    svsm: { type: 'string' },
    'vars-size': { type: 'string' },
    'vars-file': { type: 'string' },
    'output-format': { type: 'string' },
  },
  async run(ctx, { values, positionals }) {
    const [verb, noun, ...rest] = positionals;
    if (verb === 'display' && noun === 'report') return displayReport(ctx, values, rest);
    if (verb === 'verify' && noun === 'attestation') return verifyReport(ctx, values, rest);
    if (verb === 'measure') return measure(ctx, values);
    if (verb === 'fetch') return snpFetch(ctx, values, noun, rest);
    throw new UsageError(`${COMMAND}: expected 'display report', 'verify attestation', 'measure' or 'fetch', got '${positionals.join(' ')}'`);
  },
};
