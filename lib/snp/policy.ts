// Policy checks on an SNP attestation report, in the manner of go-sev-guest's `validate` package
// and its `check` tool's Policy message: expected values for the report's fields, minimum TCB,
// firmware and guest SVN, and required or forbidden guest policy and platform info bits. Nothing
// here verifies signatures (that is lib/snp/verify); these checks say whether a genuine report
// describes the guest and platform the caller accepts.
//
// A policy is an object (camelCase keys, for the API) or a JSON file (the same keys in snake_case,
// as go-sev-guest's check.proto spells them). Every key is optional: only what is given is
// checked. An unknown key is an error naming it, so a typo cannot make a check silently absent.
import { parseDocument, visit } from 'yaml';

import { SevArgumentError } from '../errors';
import { describe } from '../kvm/validate';
import { parseIntOrHex } from '../owner/inputs';
import {
  decodeGuestPolicy, decodePlatformInfo, decodeTcbVersion,
  type AttestationReport, type FirmwareVersion, type GuestPolicy, type PlatformInfo, type SigningKey, type TcbVersion,
} from './report';

const CMD = 'SNP_POLICY';

/** Bytes as a Buffer/Uint8Array or as hex text (with or without 0x). */
export type BytesInput = Uint8Array | string;
/** TCB parts by name. */
export type TcbParts = Partial<Record<TcbPart, number>>;
type TcbPart = 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode';
/**
 * A minimum TCB: parts by name (`{ snp: 8, microcode: 115 }`, or as text `snp=8,microcode=115`),
 * or the 64-bit TCB_VERSION value (bigint, number or hex text), read in the report's layout.
 */
export type TcbMinimum = TcbParts | bigint | number | string;

type GuestPolicyFlag = Exclude<keyof GuestPolicy, 'raw' | 'abiMajor' | 'abiMinor'>;
type PlatformInfoFlag = Exclude<keyof PlatformInfo, 'raw'>;
/** true: the bit must be set; false: it must be clear. */
export type GuestPolicyRule = Partial<Record<GuestPolicyFlag, boolean>> & {
  /** The guest policy's ABI version must be at least this ("major.minor"). */
  abiMinimum?: string | AbiVersion;
};
export type PlatformInfoRule = Partial<Record<PlatformInfoFlag, boolean>>;
export interface AbiVersion {
  major: number;
  minor: number;
}

/** What a report must satisfy. A byte field given as a list accepts any of its values. */
export interface ReportPolicy {
  measurement?: BytesInput | BytesInput[];
  hostData?: BytesInput | BytesInput[];
  reportData?: BytesInput | BytesInput[];
  familyId?: BytesInput | BytesInput[];
  imageId?: BytesInput | BytesInput[];
  reportId?: BytesInput | BytesInput[];
  reportIdMa?: BytesInput | BytesInput[];
  chipId?: BytesInput | BytesInput[];
  idKeyDigest?: BytesInput | BytesInput[];
  /** Also requires author_key_en: a digest that the report does not claim is no match. */
  authorKeyDigest?: BytesInput | BytesInput[];
  /** true: the report must carry an author key digest (AUTHOR_KEY_EN); false: it must not. */
  authorKeyEn?: boolean;
  minimumGuestSvn?: number | string;
  /** Minimum for the current, reported and committed TCB (go-sev-guest's minimum_tcb). */
  minimumTcb?: TcbMinimum;
  /** Minimum for the launch TCB. */
  minimumLaunchTcb?: TcbMinimum;
  /**
   * false: the committed TCB and firmware version must equal the current ones; true: they may be
   * lower (provisional firmware). Unchecked when absent.
   */
  permitProvisionalFirmware?: boolean;
  guestPolicy?: GuestPolicyRule;
  platformInfo?: PlatformInfoRule;
  /** The exact VMPL. */
  vmpl?: number | string;
  /** The highest acceptable VMPL. */
  maximumVmpl?: number | string;
  /** Minimum firmware build, current and committed. */
  minimumBuild?: number | string;
  /** Minimum firmware API version "major.minor", current and committed. */
  minimumVersion?: string | AbiVersion;
  /** The key that must have signed the report (one of, if a list). */
  signingKey?: SigningKey | SigningKey[];
}

/** One check: the report field, what the policy expects and what the report holds. */
export interface PolicyCheck {
  field: string;
  ok: boolean;
  expected: string;
  actual: string;
}

export interface PolicyResult {
  ok: boolean;
  /** Every check the policy asked for, passed or not, in a fixed order. */
  checks: PolicyCheck[];
  /** The checks that failed. */
  failures: Array<Omit<PolicyCheck, 'ok'>>;
}

/** Byte fields and their sizes, in report order. */
const BYTE_FIELDS = {
  familyId: 16,
  imageId: 16,
  reportData: 64,
  measurement: 48,
  hostData: 32,
  idKeyDigest: 48,
  authorKeyDigest: 48,
  reportId: 32,
  reportIdMa: 32,
  chipId: 64,
} as const;
type ByteField = keyof typeof BYTE_FIELDS;

const TCB_PARTS: readonly TcbPart[] = ['fmc', 'bootloader', 'tee', 'snp', 'microcode'];
const SIGNING_KEYS: readonly SigningKey[] = ['vcek', 'vlek', 'none'];
const GUEST_POLICY_FLAGS = flagNames(decodeGuestPolicy(0n)) as GuestPolicyFlag[];
const PLATFORM_INFO_FLAGS = flagNames(decodePlatformInfo(0n)) as PlatformInfoFlag[];

const OTHER_KEYS = [
  'authorKeyEn', 'minimumGuestSvn', 'minimumTcb', 'minimumLaunchTcb', 'permitProvisionalFirmware',
  'guestPolicy', 'platformInfo', 'vmpl', 'maximumVmpl', 'minimumBuild', 'minimumVersion', 'signingKey',
] as const;
const POLICY_KEYS: readonly string[] = [...Object.keys(BYTE_FIELDS), ...OTHER_KEYS];

function flagNames(decoded: object): string[] {
  return Object.entries(decoded).filter(([, v]) => typeof v === 'boolean').map(([k]) => k);
}

/** memAes256Xts → mem_aes_256_xts: how a policy file spells a key. */
const snake = (name: string) => name.replace(/[A-Z]|\d+/g, (c) => `_${c.toLowerCase()}`);

/** How keys are spelled: the API's camelCase or a policy file's snake_case. */
type KeyStyle = 'camel' | 'snake';
const spell = (style: KeyStyle, name: string) => (style === 'snake' ? snake(name) : name);

/** Reads an object's keys as `known` spelled in `style`; any other key is an error naming it. */
function knownKeys(style: KeyStyle, where: string, value: unknown, known: readonly string[]): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new SevArgumentError(CMD, `${where} must be an object, got ${describe(value)}`);
  }
  const bySpelling = new Map(known.map((k) => [spell(style, k), k]));
  const out = new Map<string, unknown>();
  for (const [key, v] of Object.entries(value)) {
    const name = bySpelling.get(key);
    if (name === undefined) {
      throw new SevArgumentError(CMD, `unknown key '${key}' in ${where} (known: ${[...bySpelling.keys()].join(', ')})`);
    }
    if (v !== undefined) out.set(name, v);
  }
  return out;
}

/** Hex text (0x optional) or bytes, exactly `size` bytes. */
function parseBytes(name: string, value: unknown, size: number): Buffer {
  let b: Buffer;
  if (value instanceof Uint8Array) b = Buffer.from(value);
  else if (typeof value === 'string') {
    const text = value.trim().replace(/^0x/i, '');
    if (!/^([0-9a-f]{2})*$/i.test(text)) throw new SevArgumentError(CMD, `${name}: '${value}' is not hex (an even number of hex digits, 0x optional)`);
    b = Buffer.from(text, 'hex');
  } else {
    throw new SevArgumentError(CMD, `${name} must be hex text or bytes, got ${describe(value)}`);
  }
  if (b.length !== size) throw new SevArgumentError(CMD, `${name} must be ${size} bytes (${2 * size} hex digits), got ${b.length}`);
  return b;
}

function parseBytesList(name: string, value: unknown, size: number): Buffer[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new SevArgumentError(CMD, `${name}: an empty list would accept nothing`);
  return list.map((v, i) => parseBytes(Array.isArray(value) ? `${name}[${i}]` : name, v, size));
}

/** A number, or decimal / 0x-hex text, in 0..max. */
function parseUint(name: string, value: unknown, max: number): number {
  if (typeof value === 'string') return parseIntOrHex(CMD, name, value, max);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new SevArgumentError(CMD, `${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  }
  return value;
}

function parseBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new SevArgumentError(CMD, `${name} must be true or false, got ${describe(value)}`);
  return value;
}

/** "major.minor" (each 0–255) or { major, minor }. */
function parseVersion(name: string, value: unknown): AbiVersion {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as Partial<AbiVersion>;
    return { major: parseUint(`${name}.major`, v.major, 0xff), minor: parseUint(`${name}.minor`, v.minor, 0xff) };
  }
  const m = typeof value === 'string' ? /^\s*(\d{1,3})\.(\d{1,3})\s*$/.exec(value) : null;
  if (!m) throw new SevArgumentError(CMD, `${name} must be "major.minor", got ${describe(value)}`);
  return { major: parseUint(`${name} major`, Number(m[1]), 0xff), minor: parseUint(`${name} minor`, Number(m[2]), 0xff) };
}

/** Parts by name (object or `part=value,…` text), else a 64-bit TCB_VERSION value. */
function parseTcb(style: KeyStyle, name: string, value: unknown): TcbParts | bigint {
  if (typeof value === 'string' && value.includes('=')) {
    const parts: Record<string, string> = {};
    for (const item of value.split(',')) {
      const [key, v, extra] = item.split('=').map((s) => s.trim());
      if (v === undefined || extra !== undefined) throw new SevArgumentError(CMD, `${name}: '${item}' is not part=value`);
      parts[key] = v;
    }
    value = parts;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const parts: TcbParts = {};
    for (const [part, v] of knownKeys(style, name, value, TCB_PARTS)) parts[part as TcbPart] = parseUint(`${name}.${part}`, v, 0xff);
    return parts;
  }
  if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^\s*(0x[0-9a-f]{1,16}|[0-9]{1,20})\s*$/i.test(value) && BigInt(value.trim()) < 1n << 64n) return BigInt(value.trim());
  throw new SevArgumentError(CMD, `${name} must be TCB parts (e.g. { "snp": 8 }, or "snp=8,microcode=115") or a 64-bit TCB version, got ${describe(value)}`);
}

function parseFlags(style: KeyStyle, name: string, value: unknown, flags: readonly string[], extra: readonly string[] = []): Map<string, unknown> {
  const entries = knownKeys(style, name, value, [...flags, ...extra]);
  for (const [flag, v] of entries) if (flags.includes(flag)) parseBool(`${name}.${spell(style, flag)}`, v);
  return entries;
}

function parseSigningKeys(name: string, value: unknown): SigningKey[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new SevArgumentError(CMD, `${name}: an empty list would accept nothing`);
  for (const v of list) {
    if (!SIGNING_KEYS.includes(v as SigningKey)) throw new SevArgumentError(CMD, `${name} must be ${SIGNING_KEYS.join(', ')} (or a list of them), got ${describe(v)}`);
  }
  return list as SigningKey[];
}

/** A policy with every value checked and in one form (Buffers, numbers, parts). */
interface Rules {
  bytes: Partial<Record<ByteField, Buffer[]>>;
  authorKeyEn?: boolean;
  minimumGuestSvn?: number;
  minimumTcb?: TcbParts | bigint;
  minimumLaunchTcb?: TcbParts | bigint;
  permitProvisionalFirmware?: boolean;
  guestPolicy: Partial<Record<GuestPolicyFlag, boolean>>;
  abiMinimum?: AbiVersion;
  platformInfo: Partial<Record<PlatformInfoFlag, boolean>>;
  vmpl?: number;
  maximumVmpl?: number;
  minimumBuild?: number;
  minimumVersion?: AbiVersion;
  signingKey?: SigningKey[];
}

function parseRules(style: KeyStyle, input: unknown, where: string): Rules {
  const rules: Rules = { bytes: {}, guestPolicy: {}, platformInfo: {} };
  const n = (key: string) => spell(style, key);
  for (const [key, value] of knownKeys(style, where, input, POLICY_KEYS)) {
    if (Object.hasOwn(BYTE_FIELDS, key)) {
      rules.bytes[key as ByteField] = parseBytesList(n(key), value, BYTE_FIELDS[key as ByteField]);
      continue;
    }
    switch (key as (typeof OTHER_KEYS)[number]) {
      case 'authorKeyEn': rules.authorKeyEn = parseBool(n(key), value); break;
      case 'permitProvisionalFirmware': rules.permitProvisionalFirmware = parseBool(n(key), value); break;
      case 'minimumGuestSvn': rules.minimumGuestSvn = parseUint(n(key), value, 0xffffffff); break;
      case 'vmpl': rules.vmpl = parseUint(n(key), value, 3); break;
      case 'maximumVmpl': rules.maximumVmpl = parseUint(n(key), value, 3); break;
      case 'minimumBuild': rules.minimumBuild = parseUint(n(key), value, 0xff); break;
      case 'minimumVersion': rules.minimumVersion = parseVersion(n(key), value); break;
      case 'minimumTcb': rules.minimumTcb = parseTcb(style, n(key), value); break;
      case 'minimumLaunchTcb': rules.minimumLaunchTcb = parseTcb(style, n(key), value); break;
      case 'signingKey': rules.signingKey = parseSigningKeys(n(key), value); break;
      case 'guestPolicy':
        for (const [flag, v] of parseFlags(style, n(key), value, GUEST_POLICY_FLAGS, ['abiMinimum'])) {
          if (flag === 'abiMinimum') rules.abiMinimum = parseVersion(`${n(key)}.${n(flag)}`, v);
          else rules.guestPolicy[flag as GuestPolicyFlag] = v as boolean;
        }
        break;
      case 'platformInfo':
        for (const [flag, v] of parseFlags(style, n(key), value, PLATFORM_INFO_FLAGS)) rules.platformInfo[flag as PlatformInfoFlag] = v as boolean;
        break;
    }
  }
  return rules;
}

/** The rules back as a ReportPolicy object (the API's form), for parseReportPolicy's result. */
function rulesToPolicy(rules: Rules): ReportPolicy {
  const policy: ReportPolicy = { ...rules.bytes };
  const { bytes: _bytes, guestPolicy, abiMinimum, platformInfo, ...rest } = rules;
  Object.assign(policy, rest);
  if (Object.keys(guestPolicy).length > 0 || abiMinimum) policy.guestPolicy = { ...guestPolicy, ...(abiMinimum ? { abiMinimum } : {}) };
  if (Object.keys(platformInfo).length > 0) policy.platformInfo = { ...platformInfo };
  return policy;
}

/**
 * Reads a policy file's content (JSON text, or the object it parses to): go-sev-guest's Policy
 * names in snake_case (`measurement`, `host_data`, `minimum_tcb`, `guest_policy: { debug: false }`,
 * `platform_info: { smt_en: false }`, …). Returns the policy in the API's form; throws a
 * SevArgumentError naming the key for unknown keys, bad hex, wrong lengths and out-of-range values.
 */
export function parseReportPolicy(json: string | object): ReportPolicy {
  const value: unknown = typeof json === 'string' ? parsePolicyText(json) : json;
  return rulesToPolicy(parseRules('snake', value, 'the policy'));
}

/**
 * A policy document's text: JSON (an object, `{…}`), else YAML. YAML numbers are kept as the text
 * they were written as, so a hex value of decimal digits (a measurement starting 0123…) stays hex
 * and a 64-bit TCB loses no bits; every numeric key takes decimal or 0x text.
 */
export function parsePolicyText(text: string): unknown {
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SevArgumentError(CMD, `the policy is not JSON: ${(e as Error).message}`);
    }
  }
  const doc = parseDocument(text, { schema: 'core', intAsBigInt: true });
  if (doc.errors.length > 0) throw new SevArgumentError(CMD, `the policy is neither JSON nor YAML: ${doc.errors[0].message.split('\n')[0]}`);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'number' || typeof node.value === 'bigint') node.value = node.source ?? String(node.value);
    },
  });
  return doc.toJS();
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const setClear = (v: boolean) => (v ? 'set' : 'clear');
const versionText = (v: AbiVersion) => `${v.major}.${v.minor}`;
const versionValue = (v: AbiVersion) => (v.major << 8) | v.minor;
const fullVersion = (v: FirmwareVersion) => `${v.major}.${v.minor} build ${v.build}`;

/** The report's TCBs by the names the spec gives them. */
function reportTcbs(report: AttestationReport): Record<string, TcbVersion> {
  return {
    current_tcb: report.currentTcb,
    reported_tcb: report.reportedTcb,
    committed_tcb: report.committedTcb,
    launch_tcb: report.launchTcb,
  };
}

/** Minimum parts as given, or a TCB_VERSION read in the report's layout (every part it has). */
function minimumParts(minimum: TcbParts | bigint, report: AttestationReport): TcbParts {
  if (typeof minimum !== 'bigint') return minimum;
  const { raw: _raw, ...parts } = decodeTcbVersion(minimum, report.generation);
  return parts;
}

/**
 * Checks a parsed report against a policy (an object in the API's form, or what parseReportPolicy
 * returned). Bad policy values throw a SevArgumentError; a report that does not satisfy the policy
 * does not throw: each check is listed with the field, the expected and the actual value.
 */
export function validateReport(report: AttestationReport, policy: ReportPolicy): PolicyResult {
  if (typeof report !== 'object' || report === null || !(report.raw instanceof Uint8Array)) {
    throw new SevArgumentError(CMD, `expected a parsed attestation report (parseAttestationReport), got ${describe(report)}`);
  }
  const rules = parseRules('camel', policy, 'the policy');
  const checks: PolicyCheck[] = [];
  const add = (field: string, ok: boolean, expected: string, actual: string) => checks.push({ field, ok, expected, actual });
  const atLeast = (field: string, actual: number, minimum: number) => add(field, actual >= minimum, `≥ ${minimum}`, String(actual));

  if (rules.minimumGuestSvn !== undefined) atLeast('guest_svn', report.guestSvn, rules.minimumGuestSvn);

  for (const [flag, want] of Object.entries(rules.guestPolicy) as Array<[GuestPolicyFlag, boolean]>) {
    add(`policy.${snake(flag)}`, report.policy[flag] === want, setClear(want), setClear(report.policy[flag]));
  }
  if (rules.abiMinimum) {
    const actual = { major: report.policy.abiMajor, minor: report.policy.abiMinor };
    add('policy.abi', versionValue(actual) >= versionValue(rules.abiMinimum), `≥ ${versionText(rules.abiMinimum)}`, versionText(actual));
  }

  for (const [field, allowed] of Object.entries(rules.bytes) as Array<[ByteField, Buffer[]]>) {
    const actual = report[field];
    let ok = allowed.some((b) => b.equals(actual));
    let actualText = hex(actual);
    if (field === 'authorKeyDigest' && !report.authorKeyEn) {
      ok = false;
      actualText = `${actualText} (author_key_en is clear)`;
    }
    const expected = allowed.length === 1 ? hex(allowed[0]) : `one of ${allowed.map(hex).join(', ')}`;
    add(snake(field), ok, expected, actualText);
  }
  if (rules.authorKeyEn !== undefined) add('author_key_en', report.authorKeyEn === rules.authorKeyEn, setClear(rules.authorKeyEn), setClear(report.authorKeyEn));

  if (rules.vmpl !== undefined) add('vmpl', report.vmpl === rules.vmpl, `= ${rules.vmpl}`, String(report.vmpl));
  if (rules.maximumVmpl !== undefined) add('vmpl', report.vmpl <= rules.maximumVmpl, `≤ ${rules.maximumVmpl}`, String(report.vmpl));

  const tcbs = reportTcbs(report);
  const tcbMinimum = (names: string[], minimum: TcbParts | bigint) => {
    const parts = minimumParts(minimum, report);
    for (const name of names) {
      for (const part of TCB_PARTS) {
        const want = parts[part];
        if (want === undefined) continue;
        const have = tcbs[name][part];
        if (have === undefined) add(`${name}.${part}`, false, `≥ ${want}`, `none (a ${report.generation} TCB has no ${part})`);
        else atLeast(`${name}.${part}`, have, want);
      }
    }
  };
  if (rules.minimumTcb !== undefined) tcbMinimum(['current_tcb', 'reported_tcb', 'committed_tcb'], rules.minimumTcb);
  if (rules.minimumLaunchTcb !== undefined) tcbMinimum(['launch_tcb'], rules.minimumLaunchTcb);

  if (rules.permitProvisionalFirmware !== undefined) provisionalChecks(report, rules.permitProvisionalFirmware, add);

  for (const [flag, want] of Object.entries(rules.platformInfo) as Array<[PlatformInfoFlag, boolean]>) {
    add(`platform_info.${snake(flag)}`, report.platformInfo[flag] === want, setClear(want), setClear(report.platformInfo[flag]));
  }

  for (const [name, version] of [['current', report.currentVersion], ['committed', report.committedVersion]] as const) {
    if (rules.minimumBuild !== undefined) atLeast(`${name}_build`, version.build, rules.minimumBuild);
    if (rules.minimumVersion) {
      const ok = versionValue(version) >= versionValue(rules.minimumVersion);
      add(`${name}_version`, ok, `≥ ${versionText(rules.minimumVersion)}`, versionText(version));
    }
  }

  if (rules.signingKey) add('signing_key', rules.signingKey.includes(report.signingKey), rules.signingKey.join(' or '), report.signingKey);

  const failures = checks.filter((c) => !c.ok).map(({ field, expected, actual }) => ({ field, expected, actual }));
  return { ok: failures.length === 0, checks, failures };
}

/**
 * go-sev-guest's provisional firmware rule: committed TCB and version equal the current ones, or
 * (when provisional firmware is permitted) are not above them.
 */
function provisionalChecks(report: AttestationReport, permit: boolean, add: (field: string, ok: boolean, expected: string, actual: string) => void): void {
  const current = report.currentTcb;
  const committed = report.committedTcb;
  const cur = report.currentVersion;
  const com = report.committedVersion;
  if (!permit) {
    add('committed_tcb', committed.raw === current.raw, `= current_tcb 0x${current.raw.toString(16)}`, `0x${committed.raw.toString(16)}`);
    const same = com.major === cur.major && com.minor === cur.minor && com.build === cur.build;
    add('committed_version', same, `= current_version ${fullVersion(cur)}`, fullVersion(com));
    return;
  }
  for (const part of TCB_PARTS) {
    const c = committed[part];
    if (c !== undefined) add(`committed_tcb.${part}`, c <= current[part]!, `≤ current_tcb.${part} ${current[part]}`, String(c));
  }
  const order = (v: FirmwareVersion) => (v.major << 16) | (v.minor << 8) | v.build;
  add('committed_version', order(com) <= order(cur), `≤ current_version ${fullVersion(cur)}`, fullVersion(com));
}

/** One ✅/❌ line per check, like the chain's links; failures say expected and actual. */
export function formatPolicyResult(result: PolicyResult): string {
  const head = `${result.ok ? '✅' : '❌'} Policy (${result.checks.length} checks, ${result.failures.length} failed)`;
  const lines = result.checks.map((c) => (c.ok ? `✅ ${c.field}: ${c.actual} (expected ${c.expected})` : `❌ ${c.field}: expected ${c.expected}, got ${c.actual}`));
  return [head, ...lines].join('\n');
}
