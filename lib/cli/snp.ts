// `sev snp …`: SEV-SNP attestation on the owner's side, with snpguest's verbs and flags where it
// has them (`display report`, `verify attestation`) and sev-snp-measure's for `measure`.
//   sev snp display report REPORT [--generation G]
//   sev snp verify attestation CERTS_DIR REPORT   (ark/ask/vcek .pem or .der in CERTS_DIR)
//   sev snp verify attestation REPORT --vcek F (--cert-chain F | --ask F --ark F)
//     … [--policy FILE] [--measurement HEX …]: go-sev-guest-style policy checks (lib/snp/policy)
//   sev snp measure --mode snp --ovmf F --vcpus N --vcpu-type T [--kernel F --initrd F --append S] ...
//     … [--explain EXPECTED]: the parts measured in order with their digests, and which variation
//     of the options (vCPUs, type, VMM, INIT2 VMSA, features, command line) gives EXPECTED
//   sev snp generate id-block --id-key F --auth-key F --measurement HEX [...] [--id-block-out F --id-auth-out F]
//   sev snp generate key-digest KEY.pem
//   sev snp report|certificates|key|display key …: the guest side (lib/cli/snp-guest.ts)
import type { KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SevArgumentError } from '../errors';
import { writeOutputFiles } from '../output-files';
import { digestFileArg } from '../owner/file-digest';
import { decodeBase64Strict, MAX_FIRMWARE_FILE_BYTES, parseIntOrHex, readFileArg } from '../owner/inputs';
import { formatSnpLinks, parseCertChainPem, verifySnpChain } from '../snp/certs';
import { createIdBlock, loadSnpKey, snpKeyDigest } from '../snp/id-block';
import { explainLaunchDigest } from '../snp/explain';
import { calcLaunchDigest, calcSnpOvmfHash, type LaunchDigestOptions, type MeasurementMode } from '../snp/measurement';
import { formatPolicyResult, parsePolicyText, parseReportPolicy, validateReport, type PolicyResult, type ReportPolicy } from '../snp/policy';
import { formatReport, parseAttestationReport, reportToJSON, SNP_GENERATIONS, type SnpGeneration } from '../snp/report';
import { formatAttestation, verifyAttestation } from '../snp/verify';
import type { SnpVmmType } from '../snp/vmsa';
import { toJson, UsageError, type CliContext } from './output';
import type { Command } from './sev';
import { explanationToJSON, formatExplanation } from './snp-explain';
import { FETCH_OPTIONS, FETCH_USAGE, snpFetch } from './snp-fetch';
import { GUEST_OPTIONS, GUEST_USAGE, snpGuest } from './snp-guest';
import { snpCertTable, snpCommit, snpConfig, snpShow, snpVlekLoad } from './snp-host';
import { snpOk } from './snp-ok';
import { trustedArkFingerprints } from './trust';

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

/** `verify certs CERTS_DIR` (snpguest): ARK → ARK → ASK → VCEK (or ASVK → VLEK), no report. */
function verifyCerts(ctx: CliContext, v: Values, args: string[]): number {
  if (args.length !== 1) throw new UsageError(`${COMMAND} verify certs: expected CERTS_DIR`);
  const dir = args[0];
  const has = (name: string) => ['pem', 'der', 'crt', 'cer'].some((ext) => fs.existsSync(path.join(dir, `${name}.${ext}`)));
  const vlek = !has('vcek') && has('vlek');
  const input = vlek
    ? { ark: certFromDir(dir, 'ark'), asvk: certFromDir(dir, has('asvk') ? 'asvk' : 'ask'), vlek: certFromDir(dir, 'vlek') }
    : { ark: certFromDir(dir, 'ark'), ask: certFromDir(dir, 'ask'), vcek: certFromDir(dir, 'vcek') };
  const result = verifySnpChain(input, { generation: generationOption(v), trustedArks: trustedArkFingerprints(v) });
  if (ctx.json) {
    const { endorsementCert, ...rest } = result;
    ctx.out(toJson({ ...rest, endorsementSubject: endorsementCert?.commonName }));
  } else {
    ctx.out(`${result.ok ? '✅' : '❌'} SEV-SNP certificate chain (${result.generation ?? 'unknown generation'}, ${result.endorsement})`);
    ctx.out(formatSnpLinks(result.links));
  }
  return result.ok ? 0 : 1;
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
  const reportBytes = readFileArg(COMMAND, 'report', reportFile);
  const policy = policyOption(v); // read before verifying: a bad policy is an error, not a verdict
  const crl = str(v, 'crl');
  const trustedArks = trustedArkFingerprints(v);
  const result = verifyAttestation({ report: reportBytes, ...certs, generation, trustedArks, ...(crl ? { crl: readFileArg(COMMAND, '--crl', crl) } : {}) });
  const checks = policy && checkPolicy(reportBytes, result.generation ?? generation, policy);
  if (!checks) {
    ctx.out(ctx.json ? toJson(result) : formatAttestation(result));
    return result.ok ? 0 : 1;
  }
  const ok = result.ok && checks.ok;
  ctx.out(ctx.json ? toJson({ ...result, ok, policy: checks }) : `${formatAttestation(result)}\n${formatPolicyResult(checks)}`);
  return ok ? 0 : 1;
}

/** Flags that set a policy key (go-sev-guest `check` names, kebab-case); they override --policy's keys. */
const POLICY_FLAGS: Record<string, string> = {
  measurement: 'measurement',
  'host-data': 'host_data',
  'report-data': 'report_data',
  'family-id': 'family_id',
  'image-id': 'image_id',
  'chip-id': 'chip_id',
  'minimum-guest-svn': 'minimum_guest_svn',
  'minimum-tcb': 'minimum_tcb',
  'minimum-launch-tcb': 'minimum_launch_tcb',
  'min-build': 'minimum_build',
  'min-version': 'minimum_version',
  vmpl: 'vmpl',
};

/** The policy of --policy FILE (JSON or YAML) and the policy flags, or undefined when none is given. */
function policyOption(v: Values): ReportPolicy | undefined {
  const file = str(v, 'policy');
  let json: Record<string, unknown> = {};
  if (file !== undefined) {
    const text = readFileArg(COMMAND, '--policy', file).toString('utf8');
    parseReportPolicy(text); // the file alone first, so that its errors are about its own keys
    json = parsePolicyText(text) as Record<string, unknown>;
  }
  const flags = Object.keys(POLICY_FLAGS).filter((flag) => v[flag] !== undefined);
  for (const flag of flags) json[POLICY_FLAGS[flag]] = v[flag];
  return file === undefined && flags.length === 0 ? undefined : parseReportPolicy(json);
}

/** The policy checks on the report, read in the chain's TCB layout; a malformed report is one failed check. */
function checkPolicy(reportBytes: Buffer, generation: SnpGeneration | undefined, policy: ReportPolicy): PolicyResult {
  try {
    return validateReport(parseAttestationReport(reportBytes, { generation }), policy);
  } catch (e) {
    if (!(e instanceof SevArgumentError)) throw e;
    const failure = { field: 'report', expected: 'a well-formed attestation report', actual: e.message };
    return { ok: false, checks: [{ ...failure, ok: false }], failures: [failure] };
  }
}

const MODES: MeasurementMode[] = ['sev', 'seves', 'snp', 'snp-svsm'];
const VMM_TYPES: SnpVmmType[] = ['qemu', 'ec2', 'krun', 'gce'];

/** `generate ovmf-hash --ovmf F`: the SNP launch digest after OVMF's pages, what --snp-ovmf-hash takes. */
function generateOvmfHash(ctx: CliContext, v: Values): number {
  const ovmf = str(v, 'ovmf');
  if (!ovmf) throw new UsageError(`${COMMAND} generate ovmf-hash: --ovmf is required`);
  const format = str(v, 'output-format') ?? 'hex';
  if (format !== 'hex' && format !== 'base64') throw new UsageError(`${COMMAND} generate ovmf-hash: --output-format must be hex or base64`);
  const hash = calcSnpOvmfHash(readFileArg(COMMAND, '--ovmf', ovmf, MAX_FIRMWARE_FILE_BYTES)).toString(format);
  ctx.out(ctx.json ? toJson({ ovmf_hash: hash }) : hash);
  return 0;
}

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
  const firmware = (name: string) => {
    const p = str(v, name);
    return p === undefined ? undefined : readFileArg(COMMAND, `--${name}`, p, MAX_FIRMWARE_FILE_BYTES);
  };
  // The kernel and initrd are measured through their SHA-256 only: streamed once, never held in memory.
  const streamed = (name: string) => {
    const p = str(v, name);
    return p === undefined ? undefined : digestFileArg(COMMAND, `--${name}`, p);
  };
  const features = str(v, 'guest-features');
  const vmsaInit = str(v, 'vmsa-init');
  if (vmsaInit !== undefined && vmsaInit !== 'init2' && vmsaInit !== 'legacy') throw new UsageError(`${COMMAND} measure: --vmsa-init must be init2 or legacy`);
  const format = str(v, 'output-format') ?? 'hex';
  if (format !== 'hex' && format !== 'base64') throw new UsageError(`${COMMAND} measure: --output-format must be hex or base64`);
  const options: LaunchDigestOptions = {
    mode: mode as MeasurementMode,
    ovmf: firmware('ovmf')!,
    vcpus: int('vcpus'),
    vcpuType: str(v, 'vcpu-type'),
    vcpuSig: int('vcpu-sig'),
    vcpuFamily: int('vcpu-family'),
    vcpuModel: int('vcpu-model'),
    vcpuStepping: int('vcpu-stepping'),
    kernel: streamed('kernel'),
    initrd: streamed('initrd'),
    append: str(v, 'append'),
    guestFeatures: features === undefined ? undefined : parseU64('--guest-features', features),
    ovmfHash: str(v, 'snp-ovmf-hash'),
    vmmType: vmm as SnpVmmType | undefined,
    x87Init: vmsaInit === undefined ? undefined : vmsaInit === 'init2',
    svsm: firmware('svsm'),
    varsSize: int('vars-size'),
    varsFile: str(v, 'vars-file'),
  };
  const expected = str(v, 'explain');
  if (expected !== undefined) {
    const size = mode === 'sev' || mode === 'seves' ? 32 : 48;
    const explanation = explainLaunchDigest(options, parseBytes('--explain', expected, size, true));
    const measurement = explanation.trace.digest.toString(format);
    ctx.out(ctx.json ? toJson(explanationToJSON(explanation, measurement)) : formatExplanation(explanation));
    return explanation.match ? 0 : 1;
  }
  const digest = calcLaunchDigest(options);
  const text = digest.toString(format);
  ctx.out(ctx.json ? toJson({ mode, measurement: digest.toString('hex') }) : text);
  return 0;
}

/** A u64 flag (guest features, policy) as hex (0x…) or decimal. */
function parseU64(flag: string, text: string): bigint {
  if (!/^(0x[0-9a-f]{1,16}|[0-9]{1,20})$/i.test(text)) throw new SevArgumentError(COMMAND, `${flag} must be a 64-bit number, got '${text}'`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new SevArgumentError(COMMAND, `${flag} must fit in 64 bits, got '${text}'`);
  return value;
}

/** `size` bytes given as hex (an optional 0x) or, for the measurement as sev-snp-measure prints it, base64. */
function parseBytes(flag: string, text: string, size: number, base64 = false): Buffer {
  const hex = text.replace(/^0x/i, '');
  if (hex.length === size * 2 && /^[0-9a-f]+$/i.test(hex)) return Buffer.from(hex, 'hex');
  // Text of hex digits only is hex of the wrong size, not base64 (64 hex digits, a SHA-256 digest,
  // would otherwise decode as 48 bytes of base64).
  const decoded = base64 && !/^(0x)?[0-9a-f]+$/i.test(text) ? decodeBase64Strict(text) : null;
  if (decoded?.length === size) return decoded;
  throw new SevArgumentError(COMMAND, `${flag} must be ${size} bytes as ${size * 2} hex digits${base64 ? ' or base64' : ''}, got '${text}'`);
}

function keyFile(flag: string, file: string | undefined): KeyObject {
  if (!file) throw new UsageError(`${COMMAND} generate id-block: ${flag} FILE is required`);
  return loadSnpKey(readFileArg(COMMAND, flag, file), `${flag} ${file}`, 'private');
}

/** snpguest's `generate id-block`: the ID block and ID_AUTH in base64 (QEMU's id-block= and id-auth=). */
function generateIdBlock(ctx: CliContext, v: Values, args: string[]): number {
  const verb = `${COMMAND} generate id-block`;
  if (args.length !== 0) throw new UsageError(`${verb}: unexpected argument '${args[0]}'`);
  // --measurement is a list for `verify attestation` (any of several); an ID block has one.
  const measurements = (v.measurement as string[] | undefined) ?? [];
  if (measurements.length !== 1) throw new UsageError(`${verb}: one --measurement HEX is required`);
  const measurement = measurements[0];
  const blockOut = str(v, 'id-block-out');
  const authOut = str(v, 'id-auth-out');
  if ((blockOut === undefined) !== (authOut === undefined)) throw new UsageError(`${verb}: --id-block-out and --id-auth-out go together`);
  const familyId = str(v, 'family-id');
  const imageId = str(v, 'image-id');
  const svn = str(v, 'svn');
  const policy = str(v, 'guest-policy');
  const result = createIdBlock({
    launchDigest: parseBytes('--measurement', measurement, 48, true),
    familyId: familyId === undefined ? undefined : parseBytes('--family-id', familyId, 16),
    imageId: imageId === undefined ? undefined : parseBytes('--image-id', imageId, 16),
    guestSvn: svn === undefined ? undefined : parseIntOrHex(COMMAND, '--svn', svn),
    policy: policy === undefined ? undefined : parseU64('--guest-policy', policy),
    idKey: keyFile('--id-key', str(v, 'id-key')),
    authorKey: keyFile('--auth-key', str(v, 'auth-key')),
  });
  const idBlock = result.idBlock.toString('base64');
  const idAuth = result.idAuth.toString('base64');
  // Like snpguest, the files hold the base64 text QEMU takes.
  if (blockOut && authOut) writeOutputFiles(COMMAND, [{ path: blockOut, data: idBlock }, { path: authOut, data: idAuth }]);
  if (ctx.json) {
    ctx.out(toJson({
      id_block: idBlock,
      id_auth: idAuth,
      id_key_digest: result.idKeyDigest.toString('hex'),
      author_key_digest: result.authorKeyDigest.toString('hex'),
    }));
  } else if (!blockOut) {
    ctx.out(`ID-BLOCK:\n${idBlock}\nAUTH-BLOCK:\n${idAuth}`);
  }
  return 0;
}

/** snpguest's `generate key-digest`: SHA-384 of the key's SNP public key, as in a report's id/author_key_digest. */
function generateKeyDigest(ctx: CliContext, args: string[]): number {
  if (args.length !== 1) throw new UsageError(`${COMMAND} generate key-digest: one PEM key file expected`);
  const key = loadSnpKey(readFileArg(COMMAND, 'key', args[0]), args[0]);
  const digest = snpKeyDigest(key).toString('hex');
  ctx.out(ctx.json ? toJson({ key_digest: digest }) : digest);
  return 0;
}

export const snpCommand: Command = {
  name: 'snp',
  usage: [
    'snp display report REPORT [--generation milan|genoa|turin] [--json]',
    '       sev snp verify attestation CERTS_DIR REPORT [--generation G] [--crl CRL_DER] [--trust-ark FILE|SHA256] [--json]',
    '       sev snp verify attestation REPORT --vcek FILE (--cert-chain FILE | --ask FILE --ark FILE)',
    '       sev snp verify certs CERTS_DIR [--generation G] [--trust-ark FILE|SHA256] [--json]   (ARK → ASK → VCEK)',
    '         policy checks (either form): [--policy FILE (JSON or YAML)] [--measurement HEX]... [--host-data HEX]',
    '         [--report-data HEX] [--family-id HEX] [--image-id HEX] [--chip-id HEX]... [--vmpl N]',
    '         [--minimum-guest-svn N] [--minimum-tcb bootloader=N,tee=N,snp=N,microcode=N | 0xTCB]',
    '         [--minimum-launch-tcb ...] [--min-build N] [--min-version MAJOR.MINOR]',
    '       sev snp measure --ovmf FILE [--mode snp|snp-svsm|seves|sev] [--vcpus N]',
    '                       [--vcpu-type T | --vcpu-sig N | --vcpu-family N --vcpu-model N --vcpu-stepping N]',
    '                       [--kernel FILE --initrd FILE --append CMDLINE] [--guest-features N]',
    '                       [--vmm-type qemu|ec2|krun|gce] [--vmsa-init init2|legacy] [--snp-ovmf-hash HEX]',
    '                       [--svsm FILE (--vars-size N | --vars-file FILE)] [--output-format hex|base64]',
    '                       (also spelled `sev snp generate measurement`, as snpguest does)',
    '       sev snp generate ovmf-hash --ovmf FILE [--output-format hex|base64]   (for --snp-ovmf-hash)',
    '                       [--explain EXPECTED_HEX|BASE64]   (on a mismatch: what was measured, in order,',
    '                        and which variation of these options gives EXPECTED; exit 1 when it differs)',
    '       sev snp generate id-block --id-key PEM --auth-key PEM --measurement HEX|BASE64',
    '                       [--family-id HEX] [--image-id HEX] [--svn N] [--guest-policy N (default 0x30000)]',
    '                       [--id-block-out FILE --id-auth-out FILE]   (base64, as QEMU takes them)',
    '       sev snp generate key-digest PEM',
    '       sev snp ok     (inside a guest: SEV/SEV-ES/SNP active per SEV_STATUS, /dev/sev-guest, configfs-tsm)',
    '     on the host (snphost\'s verbs; its `ok` is `sev ok snp`):',
    '       sev snp show guests|identifier|tcb|vcek-url|version [--generation G]',
    '       sev snp commit',
    '       sev snp config set BOOTLOADER TEE SNP-FW MICROCODE MASK-CHIP [FMC]   (reported TCB; MASK-CHIP bit 0 chip id, bit 1 chip key)',
    '       sev snp config reset',
    '       sev snp vlek-load HASHSTICK-FILE',
    '       sev snp cert-table import DIR CERT-FILE | export pem|der CERT-FILE DIR   (the GHCB certificate table a VMM gives guests)',
    ...FETCH_USAGE,
    ...GUEST_USAGE,
  ].join('\n'),
  options: {
    ...FETCH_OPTIONS,
    ...GUEST_OPTIONS,
    'trust-ark': { type: 'string', multiple: true },
    generation: { type: 'string' },
    vcek: { type: 'string' },
    ask: { type: 'string' },
    ark: { type: 'string' },
    'cert-chain': { type: 'string' },
    policy: { type: 'string' },
    measurement: { type: 'string', multiple: true },
    'host-data': { type: 'string' },
    'report-data': { type: 'string' },
    'family-id': { type: 'string' },
    'image-id': { type: 'string' },
    'chip-id': { type: 'string', multiple: true },
    'minimum-guest-svn': { type: 'string' },
    'minimum-tcb': { type: 'string' },
    'minimum-launch-tcb': { type: 'string' },
    'min-build': { type: 'string' },
    'min-version': { type: 'string' },
    vmpl: { type: 'string', short: 'v' },
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
    'vmsa-init': { type: 'string' },
    explain: { type: 'string' },
    'snp-ovmf-hash': { type: 'string' },
    svsm: { type: 'string' },
    'vars-size': { type: 'string' },
    'vars-file': { type: 'string' },
    'output-format': { type: 'string' },
    'id-key': { type: 'string' },
    'auth-key': { type: 'string' },
    svn: { type: 'string' },
    'guest-policy': { type: 'string' },
    'id-block-out': { type: 'string' },
    'id-auth-out': { type: 'string' },
  },
  async run(ctx, { values, positionals }) {
    const [verb, noun, ...rest] = positionals;
    if (verb === 'display' && noun === 'report') return displayReport(ctx, values, rest);
    const guest = snpGuest(ctx, values, positionals);
    if (guest) return guest;
    if (verb === 'verify' && noun === 'attestation') return verifyReport(ctx, values, rest);
    if (verb === 'verify' && noun === 'certs') return verifyCerts(ctx, values, rest);
    // snpguest spells these `generate measurement` (same flags) and `generate ovmf-hash`.
    if (verb === 'measure' || (verb === 'generate' && noun === 'measurement')) return measure(ctx, values);
    if (verb === 'generate' && noun === 'ovmf-hash') return generateOvmfHash(ctx, values);
    if (verb === 'generate' && noun === 'id-block') return generateIdBlock(ctx, values, rest);
    if (verb === 'generate' && noun === 'key-digest') return generateKeyDigest(ctx, rest);
    if (verb === 'fetch') return snpFetch(ctx, values, noun, rest);
    if (verb === 'ok' && noun === undefined) return snpOk(ctx);
    // The platform side (snphost's verbs).
    if (verb === 'show') return snpShow(ctx, values, noun);
    if (verb === 'commit' && noun === undefined) return snpCommit(ctx);
    if (verb === 'config') return snpConfig(ctx, values, noun, rest);
    if (verb === 'vlek-load') return snpVlekLoad(ctx, positionals.slice(1));
    if (verb === 'vlek' && noun === 'load') return snpVlekLoad(ctx, rest);
    if (verb === 'cert-table') return snpCertTable(ctx, noun, rest);
    throw new UsageError(`${COMMAND}: expected 'report', 'certificates', 'key', 'display report|key', 'verify attestation|certs', 'measure', 'generate id-block', 'generate key-digest|measurement|ovmf-hash', 'fetch', 'ok', 'show', 'commit', 'config', 'vlek-load' or 'cert-table', got '${positionals.join(' ')}'`);
  },
};
