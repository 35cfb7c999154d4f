// The SEV-SNP ATTESTATION_REPORT (SNP ABI spec, AMD pub. 56860, "ATTESTATION_REPORT Structure"):
// parse, serialize, and show as JSON or text. 1184 (0x4A0) bytes, little-endian:
//
//   0x000 version u32        0x004 guest_svn u32      0x008 policy u64
//   0x010 family_id [16]     0x020 image_id [16]      0x030 vmpl u32     0x034 signature_algo u32
//   0x038 current_tcb u64    0x040 platform_info u64  0x048 flags (key info) u32   0x04C reserved
//   0x050 report_data [64]   0x090 measurement [48]   0x0C0 host_data [32]
//   0x0E0 id_key_digest [48] 0x110 author_key_digest [48]
//   0x140 report_id [32]     0x160 report_id_ma [32]  0x180 reported_tcb u64
//   0x188 cpuid fam/model/stepping u8 ×3 (version 3+; reserved in version 2)   …0x1A0 reserved
//   0x1A0 chip_id [64]       0x1E0 committed_tcb u64
//   0x1E8 current build/minor/major u8 ×3, reserved   0x1EC committed build/minor/major u8 ×3, reserved
//   0x1F0 launch_tcb u64
//   0x1F8 launch_mit_vector u64, 0x200 current_mit_vector u64 (version 5; reserved before)  …0x2A0 reserved
//   0x2A0 signature: r [72], s [72] (little-endian), 368 reserved bytes
//
// The signature covers 0x000–0x29F. Parsing is strict: reserved bytes must be zero (as go-sev-guest
// checks them), so a parsed report re-serializes to exactly the same bytes and a report of another
// layout is refused instead of misread.
import { SevArgumentError } from '../errors';
import { bytes, describe, integer, u64 } from '../kvm/validate';

export const REPORT_SIZE = 0x4a0;
/** Bytes 0x000–0x29F are what the report's signature covers. */
export const REPORT_SIGNED_SIZE = 0x2a0;
/** Each ECDSA component is stored little-endian, zero-padded to 72 bytes. */
export const REPORT_SIGNATURE_COMPONENT_SIZE = 72;
/**
 * Versions whose layout is known. 4 has the layout of 3: the spec revision that brought it added
 * no fields (virtee/sev and go-sev-guest read it that way too).
 */
export const SUPPORTED_REPORT_VERSIONS: readonly number[] = Object.freeze([2, 3, 4, 5]);
/** signature_algo 1: ECDSA P-384 with SHA-384, the only algorithm the spec defines. */
export const SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1;

const CMD = 'ATTESTATION_REPORT';
const SIG_OFFSET = REPORT_SIGNED_SIZE;
const R_S = REPORT_SIGNATURE_COMPONENT_SIZE;

/** The EPYC generations that produce SNP reports; they differ in how a TCB version is laid out. */
export type SnpGeneration = 'milan' | 'genoa' | 'turin';
export const SNP_GENERATIONS: readonly SnpGeneration[] = Object.freeze(['milan', 'genoa', 'turin']);

/**
 * A TCB version (a u64 of security patch levels). Milan and Genoa: bootloader byte 0, tee byte 1,
 * snp byte 6, microcode byte 7. Turin: fmc byte 0, bootloader 1, tee 2, snp 3, microcode 7.
 * `raw` is what the report holds; the other fields are read from it.
 */
export interface TcbVersion {
  raw: bigint;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin and later only. */
  fmc?: number;
}
type TcbPart = 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode';

/** Byte index of each TCB part, per layout. */
const TCB_LAYOUT: Record<'legacy' | 'turin', Partial<Record<TcbPart, number>>> = {
  legacy: { bootloader: 0, tee: 1, snp: 6, microcode: 7 },
  turin: { fmc: 0, bootloader: 1, tee: 2, snp: 3, microcode: 7 },
};
const tcbLayout = (generation: SnpGeneration) => TCB_LAYOUT[generation === 'turin' ? 'turin' : 'legacy'];

/** Reads a TCB version in the given generation's layout. */
export function decodeTcbVersion(raw: bigint, generation: SnpGeneration): TcbVersion {
  const tcb: Partial<TcbVersion> = { raw };
  for (const [part, index] of Object.entries(tcbLayout(generation)) as Array<[TcbPart, number]>) {
    tcb[part] = Number((raw >> BigInt(8 * index)) & 0xffn);
  }
  return tcb as TcbVersion;
}

/** Builds a TCB version from its parts in the given generation's layout (fmc only on Turin). */
export function encodeTcbVersion(parts: Omit<TcbVersion, 'raw'>, generation: SnpGeneration): TcbVersion {
  const command = 'encodeTcbVersion';
  const layout = tcbLayout(generation);
  if (parts.fmc !== undefined && layout.fmc === undefined) {
    throw new SevArgumentError(command, `a ${generation} TCB version has no fmc field`);
  }
  let raw = 0n;
  for (const [part, index] of Object.entries(layout) as Array<[TcbPart, number]>) {
    raw |= BigInt(integer(command, part, parts[part] ?? 0, 0, 0xff)) << BigInt(8 * index);
  }
  return decodeTcbVersion(raw, generation);
}

/** Guest policy bits (the SNP guest policy, not the SEV one). Bit 17 is reserved and set. */
const POLICY_FLAG_BITS = {
  smt: 16,
  migrateMa: 18,
  debug: 19,
  singleSocket: 20,
  cxlAllow: 21,
  memAes256Xts: 22,
  raplDis: 23,
  ciphertextHiding: 24,
  pageSwapDisable: 25,
} as const;

export type GuestPolicy = { raw: bigint; abiMinor: number; abiMajor: number } & Record<keyof typeof POLICY_FLAG_BITS, boolean>;

/** Platform info bits: the platform's configuration when the report was made. */
const PLATFORM_INFO_BITS = {
  smtEn: 0,
  tsmeEn: 1,
  eccEn: 2,
  raplDis: 3,
  ciphertextHidingEn: 4,
  aliasCheckComplete: 5,
  tioEn: 7,
} as const;

export type PlatformInfo = { raw: bigint } & Record<keyof typeof PLATFORM_INFO_BITS, boolean>;

function bitFlags<K extends string>(raw: bigint, bits: Record<K, number>): Record<K, boolean> {
  const out = {} as Record<K, boolean>;
  for (const [name, bit] of Object.entries(bits) as Array<[K, number]>) out[name] = ((raw >> BigInt(bit)) & 1n) === 1n;
  return out;
}

/** Reads the guest policy. Unknown bits stay in `raw` (the firmware checked them at launch). */
export function decodeGuestPolicy(raw: bigint): GuestPolicy {
  return { raw, abiMinor: Number(raw & 0xffn), abiMajor: Number((raw >> 8n) & 0xffn), ...bitFlags(raw, POLICY_FLAG_BITS) };
}

/** Reads platform info. Bits a later spec may define stay in `raw`. */
export function decodePlatformInfo(raw: bigint): PlatformInfo {
  return { raw, ...bitFlags(raw, PLATFORM_INFO_BITS) };
}

/** Which key signed the report: flags bits 4:2 (0 VCEK, 1 VLEK, 7 none; 2–6 reserved). */
export type SigningKey = 'vcek' | 'vlek' | 'none';
const SIGNING_KEY_CODES: Record<SigningKey, number> = { vcek: 0, vlek: 1, none: 7 };

/** The flags (key info) word: author_key_en bit 0, mask_chip_key bit 1, signing_key bits 4:2. */
function flagsOf(report: Pick<AttestationReport, 'authorKeyEn' | 'maskChipKey' | 'signingKey'>): number {
  return (report.authorKeyEn ? 1 : 0) | (report.maskChipKey ? 2 : 0) | (SIGNING_KEY_CODES[report.signingKey] << 2);
}

export interface FirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

/** CPUID family (base + extended), model (extended:base) and stepping; version 3 and later. */
export interface ReportCpuid {
  family: number;
  model: number;
  stepping: number;
}

/** Where the TCB layout came from: the caller, the report's CPUID fields, or the Milan default. */
export type GenerationSource = 'option' | 'cpuid' | 'default';

export interface AttestationReport {
  version: number;
  guestSvn: number;
  policy: GuestPolicy;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: TcbVersion;
  platformInfo: PlatformInfo;
  /** flags bit 0: the author key digest is present. */
  authorKeyEn: boolean;
  /** flags bit 1: MaskChipKey (chip id zeroed, report not signed with the chip key). */
  maskChipKey: boolean;
  signingKey: SigningKey;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: TcbVersion;
  /** Version 3 and later; undefined in version 2. */
  cpuid?: ReportCpuid;
  chipId: Buffer;
  committedTcb: TcbVersion;
  currentVersion: FirmwareVersion;
  committedVersion: FirmwareVersion;
  launchTcb: TcbVersion;
  /** Version 5 and later; undefined before. */
  launchMitigationVector?: bigint;
  currentMitigationVector?: bigint;
  /** r and s as stored: 72 bytes each, little-endian, zero-padded. */
  signature: { r: Buffer; s: Buffer };
  /** The signed part, bytes 0x000–0x29F. */
  signedBytes: Buffer;
  /** The whole report (a copy of the input). */
  raw: Buffer;
  /** The generation whose TCB layout was used. */
  generation: SnpGeneration;
  generationSource: GenerationSource;
}

export interface ParseReportOptions {
  /**
   * The generation that made the report, for its TCB layout. Version 3+ reports say it in their
   * CPUID fields (a contradicting value is refused); version 2 reports do not, and are read as
   * Milan (the same layout as Genoa) unless this says otherwise.
   */
  generation?: SnpGeneration;
}

/**
 * The generation of a CPUID family/model (as virtee/sev numbers them); else undefined. Later
 * family 0x1A parts (Venice) are not named here: pass the generation for their reports.
 */
export function generationFromCpuid(family: number, model: number): SnpGeneration | undefined {
  if (family === 0x19 && model <= 0x0f) return 'milan';
  if (family === 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf))) return 'genoa';
  if (family === 0x1a && model <= 0x11) return 'turin';
  return undefined;
}

/** Fixed-size byte fields, in report order. */
const BYTE_FIELDS = [
  ['familyId', 0x010, 16],
  ['imageId', 0x020, 16],
  ['reportData', 0x050, 64],
  ['measurement', 0x090, 48],
  ['hostData', 0x0c0, 32],
  ['idKeyDigest', 0x0e0, 48],
  ['authorKeyDigest', 0x110, 48],
  ['reportId', 0x140, 32],
  ['reportIdMa', 0x160, 32],
  ['chipId', 0x1a0, 64],
] as const;
type ByteField = (typeof BYTE_FIELDS)[number][0];

const TCB_FIELDS = [
  ['currentTcb', 0x038],
  ['reportedTcb', 0x180],
  ['committedTcb', 0x1e0],
  ['launchTcb', 0x1f0],
] as const;

const VERSION_FIELDS = [
  ['currentVersion', 0x1e8],
  ['committedVersion', 0x1ec],
] as const;

/** Reserved ranges [start, end) of a report version; they must be zero. */
function reservedRanges(version: number): Array<[number, number]> {
  return [
    [0x04c, 0x050],
    [version >= 3 ? 0x18b : 0x188, 0x1a0],
    [0x1eb, 0x1ec],
    [0x1ef, 0x1f0],
    [version >= 5 ? 0x208 : 0x1f8, SIG_OFFSET],
    [SIG_OFFSET + 2 * R_S, REPORT_SIZE],
  ];
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

function checkVersion(command: string, version: number): void {
  if (!SUPPORTED_REPORT_VERSIONS.includes(version)) {
    throw new SevArgumentError(
      command,
      `report version ${version} is not supported (known versions: ${SUPPORTED_REPORT_VERSIONS.join(', ')})`,
    );
  }
}

function checkGeneration(command: string, generation: unknown): SnpGeneration {
  if (!SNP_GENERATIONS.includes(generation as SnpGeneration)) {
    throw new SevArgumentError(command, `generation must be one of ${SNP_GENERATIONS.join(', ')}, got ${describe(generation)}`);
  }
  return generation as SnpGeneration;
}

/**
 * Which generation's TCB layout a report uses: the caller's, else the CPUID fields' (version 3+),
 * else Milan for version 2. A caller's choice that contradicts the CPUID fields is refused.
 */
function resolveGeneration(
  command: string,
  cpuid: ReportCpuid | undefined,
  given: SnpGeneration | undefined,
): { generation: SnpGeneration; source: GenerationSource } {
  if (!cpuid) return given ? { generation: given, source: 'option' } : { generation: 'milan', source: 'default' };
  const found = generationFromCpuid(cpuid.family, cpuid.model);
  const fms = `CPUID family ${hex(cpuid.family)} model ${hex(cpuid.model)}`;
  if (given && found && given !== found) {
    throw new SevArgumentError(command, `generation ${given} contradicts the report's ${fms} (${found})`);
  }
  if (given) return { generation: given, source: 'option' };
  if (found) return { generation: found, source: 'cpuid' };
  throw new SevArgumentError(command, `the report's ${fms} is no known SNP generation; pass the generation to read its TCB versions`);
}

/** Parses a 1184-byte ATTESTATION_REPORT. Every failure is a SevArgumentError naming the problem. */
export function parseAttestationReport(input: Uint8Array, options: ParseReportOptions = {}): AttestationReport {
  bytes(CMD, 'report', input);
  if (input.length !== REPORT_SIZE) {
    throw new SevArgumentError(CMD, `an attestation report is ${REPORT_SIZE} (0x4a0) bytes, got ${input.length}`);
  }
  const given = options.generation === undefined ? undefined : checkGeneration(CMD, options.generation);
  const raw = Buffer.from(input); // a copy: later changes to the input do not reach the parsed report
  const version = raw.readUInt32LE(0x000);
  checkVersion(CMD, version);
  for (const [start, end] of reservedRanges(version)) {
    const at = raw.subarray(start, end).findIndex((b) => b !== 0);
    if (at >= 0) {
      throw new SevArgumentError(CMD, `reserved byte ${hex(start + at)} (range ${hex(start)}–${hex(end - 1)}) of a version ${version} report is ${hex(raw[start + at])}, not zero`);
    }
  }

  const flags = raw.readUInt32LE(0x048);
  if (flags >>> 5 !== 0) throw new SevArgumentError(CMD, `flags ${hex(flags)} has reserved bits 31:5 set`);
  const signingKeyCode = (flags >>> 2) & 7;
  const signingKey = (Object.keys(SIGNING_KEY_CODES) as SigningKey[]).find((k) => SIGNING_KEY_CODES[k] === signingKeyCode);
  if (!signingKey) throw new SevArgumentError(CMD, `flags signing_key ${signingKeyCode} is reserved (0 VCEK, 1 VLEK, 7 none)`);

  const cpuid = version >= 3 ? { family: raw[0x188], model: raw[0x189], stepping: raw[0x18a] } : undefined;
  const { generation, source } = resolveGeneration(CMD, cpuid, given);

  const fields = {} as Record<ByteField, Buffer>;
  // Fields are copies, so editing one (to build another report) leaves raw and signedBytes as parsed.
  const copy = (start: number, end: number) => Buffer.from(raw.subarray(start, end));
  for (const [name, offset, size] of BYTE_FIELDS) fields[name] = copy(offset, offset + size);
  const tcbs = {} as Record<(typeof TCB_FIELDS)[number][0], TcbVersion>;
  for (const [name, offset] of TCB_FIELDS) tcbs[name] = decodeTcbVersion(raw.readBigUInt64LE(offset), generation);
  const versions = {} as Record<(typeof VERSION_FIELDS)[number][0], FirmwareVersion>;
  for (const [name, offset] of VERSION_FIELDS) versions[name] = { build: raw[offset], minor: raw[offset + 1], major: raw[offset + 2] };

  return {
    version,
    guestSvn: raw.readUInt32LE(0x004),
    policy: decodeGuestPolicy(raw.readBigUInt64LE(0x008)),
    vmpl: raw.readUInt32LE(0x030),
    signatureAlgo: raw.readUInt32LE(0x034),
    platformInfo: decodePlatformInfo(raw.readBigUInt64LE(0x040)),
    authorKeyEn: (flags & 1) === 1,
    maskChipKey: (flags & 2) === 2,
    signingKey,
    ...fields,
    ...tcbs,
    ...versions,
    cpuid,
    launchMitigationVector: version >= 5 ? raw.readBigUInt64LE(0x1f8) : undefined,
    currentMitigationVector: version >= 5 ? raw.readBigUInt64LE(0x200) : undefined,
    signature: { r: copy(SIG_OFFSET, SIG_OFFSET + R_S), s: copy(SIG_OFFSET + R_S, SIG_OFFSET + 2 * R_S) },
    signedBytes: raw.subarray(0, REPORT_SIGNED_SIZE),
    raw,
    generation,
    generationSource: source,
  };
}

/**
 * A decoded field must agree with its `raw` value, which is what gets written: a changed field
 * with a stale raw would otherwise be lost silently. Build new values with the decode/encode helpers.
 */
function checkAgrees(command: string, name: string, given: object, decoded: object, helper: string): void {
  const keys = new Set([...Object.keys(given), ...Object.keys(decoded)]);
  for (const key of keys) {
    const a = (given as Record<string, unknown>)[key];
    const b = (decoded as Record<string, unknown>)[key];
    if (key !== 'raw' && a !== b) {
      throw new SevArgumentError(command, `${name}.${key} is ${String(a)} but ${name}.raw says ${String(b)}; build ${name} with ${helper}`);
    }
  }
}

function fixedBytes(command: string, name: string, value: unknown, size: number): Uint8Array {
  const b = bytes(command, name, value);
  if (b.length !== size) throw new SevArgumentError(command, `${name} must be ${size} bytes, got ${b.length}`);
  return b;
}

/**
 * The 1184 bytes of a report object: the inverse of parseAttestationReport. `raw` and
 * `signedBytes` are not read; every other field is, and must fit its version's layout.
 */
export function serializeReport(report: AttestationReport): Buffer {
  const command = 'serializeReport';
  if (typeof report !== 'object' || report === null) throw new SevArgumentError(command, `expected a parsed report, got ${describe(report)}`);
  const { version } = report;
  checkVersion(command, version);
  const generation = checkGeneration(command, report.generation);
  const out = Buffer.alloc(REPORT_SIZE);

  out.writeUInt32LE(version, 0x000);
  out.writeUInt32LE(integer(command, 'guestSvn', report.guestSvn, 0, 0xffffffff), 0x004);
  out.writeBigUInt64LE(u64(command, 'policy.raw', report.policy?.raw), 0x008);
  checkAgrees(command, 'policy', report.policy, decodeGuestPolicy(report.policy.raw), 'decodeGuestPolicy');
  out.writeUInt32LE(integer(command, 'vmpl', report.vmpl, 0, 0xffffffff), 0x030);
  out.writeUInt32LE(integer(command, 'signatureAlgo', report.signatureAlgo, 0, 0xffffffff), 0x034);
  out.writeBigUInt64LE(u64(command, 'platformInfo.raw', report.platformInfo?.raw), 0x040);
  checkAgrees(command, 'platformInfo', report.platformInfo, decodePlatformInfo(report.platformInfo.raw), 'decodePlatformInfo');

  if (!Object.hasOwn(SIGNING_KEY_CODES, report.signingKey)) {
    throw new SevArgumentError(command, `signingKey must be vcek, vlek or none, got ${describe(report.signingKey)}`);
  }
  out.writeUInt32LE(flagsOf(report), 0x048);

  for (const [name, offset, size] of BYTE_FIELDS) out.set(fixedBytes(command, name, report[name], size), offset);

  if (version >= 3) {
    if (!report.cpuid) throw new SevArgumentError(command, `a version ${version} report needs cpuid (family, model, stepping)`);
    const { family, model, stepping } = report.cpuid;
    out[0x188] = integer(command, 'cpuid.family', family, 0, 0xff);
    out[0x189] = integer(command, 'cpuid.model', model, 0, 0xff);
    out[0x18a] = integer(command, 'cpuid.stepping', stepping, 0, 0xff);
  } else if (report.cpuid) {
    throw new SevArgumentError(command, 'cpuid is only in version 3 and later reports');
  }
  // The TCB layout must be the one a parser would pick for these CPUID fields.
  resolveGeneration(command, report.cpuid, generation);

  for (const [name, offset] of TCB_FIELDS) {
    const tcb = report[name];
    out.writeBigUInt64LE(u64(command, `${name}.raw`, tcb?.raw), offset);
    checkAgrees(command, name, tcb, decodeTcbVersion(tcb.raw, generation), `encodeTcbVersion(parts, '${generation}')`);
  }
  for (const [name, offset] of VERSION_FIELDS) {
    const v = report[name];
    if (typeof v !== 'object' || v === null) throw new SevArgumentError(command, `${name} must be { major, minor, build }`);
    out[offset] = integer(command, `${name}.build`, v.build, 0, 0xff);
    out[offset + 1] = integer(command, `${name}.minor`, v.minor, 0, 0xff);
    out[offset + 2] = integer(command, `${name}.major`, v.major, 0, 0xff);
  }

  const vectors = [report.launchMitigationVector, report.currentMitigationVector];
  if (version >= 5) {
    out.writeBigUInt64LE(u64(command, 'launchMitigationVector', vectors[0]), 0x1f8);
    out.writeBigUInt64LE(u64(command, 'currentMitigationVector', vectors[1]), 0x200);
  } else if (vectors.some((v) => v !== undefined)) {
    throw new SevArgumentError(command, 'the mitigation vectors are only in version 5 and later reports');
  }

  out.set(fixedBytes(command, 'signature.r', report.signature?.r, R_S), SIG_OFFSET);
  out.set(fixedBytes(command, 'signature.s', report.signature?.s, R_S), SIG_OFFSET + R_S);
  return out;
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** camelCase → the spec's snake_case, for JSON keys (memAes256Xts → mem_aes_256_xts). */
const snake = (name: string) => name.replace(/[A-Z]|\d+/g, (c) => `_${c.toLowerCase()}`);

function snakeKeys(obj: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => k !== 'raw').map(([k, v]) => [snake(k), v]));
}

function tcbJson(tcb: TcbVersion): Record<string, number> {
  const { raw: _raw, ...parts } = tcb;
  return parts;
}

/**
 * The report as JSON-ready data with every field, named as the spec names them (snake_case, like
 * snpguest and go-sev-guest print them): byte fields and u64 values as hex strings, small counters
 * as numbers, each bit field both as its hex value and decoded (`<name>_fields`).
 */
export function reportToJSON(report: AttestationReport): Record<string, unknown> {
  const json: Record<string, unknown> = {
    version: report.version,
    guest_svn: report.guestSvn,
    policy: hex(report.policy.raw),
    policy_fields: snakeKeys(report.policy),
    family_id: hexOf(report.familyId),
    image_id: hexOf(report.imageId),
    vmpl: report.vmpl,
    signature_algo: report.signatureAlgo,
    current_tcb: hex(report.currentTcb.raw),
    current_tcb_fields: tcbJson(report.currentTcb),
    platform_info: hex(report.platformInfo.raw),
    platform_info_fields: snakeKeys(report.platformInfo),
    flags: hex(flagsOf(report)),
    flags_fields: { author_key_en: report.authorKeyEn, mask_chip_key: report.maskChipKey, signing_key: report.signingKey },
    report_data: hexOf(report.reportData),
    measurement: hexOf(report.measurement),
    host_data: hexOf(report.hostData),
    id_key_digest: hexOf(report.idKeyDigest),
    author_key_digest: hexOf(report.authorKeyDigest),
    report_id: hexOf(report.reportId),
    report_id_ma: hexOf(report.reportIdMa),
    reported_tcb: hex(report.reportedTcb.raw),
    reported_tcb_fields: tcbJson(report.reportedTcb),
  };
  if (report.cpuid) {
    json.cpuid_fam_id = hex(report.cpuid.family);
    json.cpuid_mod_id = hex(report.cpuid.model);
    json.cpuid_step = hex(report.cpuid.stepping);
  }
  Object.assign(json, {
    chip_id: hexOf(report.chipId),
    committed_tcb: hex(report.committedTcb.raw),
    committed_tcb_fields: tcbJson(report.committedTcb),
    current_build: report.currentVersion.build,
    current_minor: report.currentVersion.minor,
    current_major: report.currentVersion.major,
    committed_build: report.committedVersion.build,
    committed_minor: report.committedVersion.minor,
    committed_major: report.committedVersion.major,
    launch_tcb: hex(report.launchTcb.raw),
    launch_tcb_fields: tcbJson(report.launchTcb),
  });
  if (report.launchMitigationVector !== undefined) json.launch_mit_vector = hex(report.launchMitigationVector);
  if (report.currentMitigationVector !== undefined) json.current_mit_vector = hex(report.currentMitigationVector);
  json.signature = { r: hexOf(report.signature.r), s: hexOf(report.signature.s), byte_order: 'little-endian' };
  json.generation = report.generation;
  json.generation_source = report.generationSource;
  return json;
}

/** Bytes as rows of 16 hex pairs, each row indented. */
function hexBlock(b: Uint8Array, indent = '  '): string {
  const rows: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    rows.push(indent + [...b.subarray(i, i + 16)].map((x) => x.toString(16).padStart(2, '0')).join(' '));
  }
  return rows.join('\n');
}

const GENERATION_SOURCE_TEXT: Record<GenerationSource, string> = {
  option: 'as given',
  cpuid: "from the report's CPUID fields",
  default: 'assumed: version 2 reports do not name the CPU',
};

const yesNo = (v: boolean) => (v ? 'yes' : 'no');
/** `Label:` padded so values line up in one column; `sub` is the same, indented under a heading. */
const line = (label: string, value: unknown) => `${`${label}:`.padEnd(32)}${value}`;
const sub = (label: string, value: unknown) => `  ${`${label}:`.padEnd(30)}${value}`;

const POLICY_LABELS: Record<keyof typeof POLICY_FLAG_BITS, string> = {
  smt: 'SMT Allowed',
  migrateMa: 'Migrate MA Allowed',
  debug: 'Debug Allowed',
  singleSocket: 'Single Socket Required',
  cxlAllow: 'CXL Allowed',
  memAes256Xts: 'AES-256-XTS Required',
  raplDis: 'RAPL Disabled',
  ciphertextHiding: 'Ciphertext Hiding Required',
  pageSwapDisable: 'Page Swap Disabled',
};

const PLATFORM_INFO_LABELS: Record<keyof typeof PLATFORM_INFO_BITS, string> = {
  smtEn: 'SMT Enabled',
  tsmeEn: 'TSME Enabled',
  eccEn: 'ECC Enabled',
  raplDis: 'RAPL Disabled',
  ciphertextHidingEn: 'Ciphertext Hiding Enabled',
  aliasCheckComplete: 'Alias Check Complete',
  tioEn: 'SEV-TIO Enabled',
};

function flagLines<K extends string>(flags: Record<K, boolean>, labels: Record<K, string>): string[] {
  return (Object.entries(labels) as Array<[K, string]>).map(([key, label]) => sub(label, yesNo(flags[key])));
}

function tcbText(title: string, tcb: TcbVersion): string[] {
  const lines = [`${title} (${hex(tcb.raw)}):`];
  if (tcb.fmc !== undefined) lines.push(sub('FMC', tcb.fmc));
  lines.push(sub('Boot Loader', tcb.bootloader), sub('TEE', tcb.tee), sub('SNP', tcb.snp), sub('Microcode', tcb.microcode));
  return lines;
}

const versionText = (v: FirmwareVersion) => `${v.major}.${v.minor}.${v.build}`;

/** A human-readable listing of every field, in report order (in the manner of `snpguest display report`). */
export function formatReport(report: AttestationReport): string {
  const { policy: p, platformInfo: pi } = report;
  const bytesField = (label: string, b: Buffer) => [`${label}:`, hexBlock(b)];
  const lines: string[] = [
    'Attestation Report',
    line('Version', report.version),
    line('Guest SVN', report.guestSvn),
    `Guest Policy (${hex(p.raw)}):`,
    sub('ABI Major', p.abiMajor),
    sub('ABI Minor', p.abiMinor),
    ...flagLines(p, POLICY_LABELS),
    ...bytesField('Family ID', report.familyId),
    ...bytesField('Image ID', report.imageId),
    line('VMPL', report.vmpl),
    line('Signature Algorithm', `${report.signatureAlgo} (${report.signatureAlgo === SIGNATURE_ALGO_ECDSA_P384_SHA384 ? 'ECDSA P-384 with SHA-384' : 'unknown'})`),
    ...tcbText('Current TCB', report.currentTcb),
    `Platform Info (${hex(pi.raw)}):`,
    ...flagLines(pi, PLATFORM_INFO_LABELS),
    'Key Information:',
    sub('Author Key Enabled', yesNo(report.authorKeyEn)),
    sub('Mask Chip Key', yesNo(report.maskChipKey)),
    sub('Signing Key', report.signingKey.toUpperCase()),
    ...bytesField('Report Data', report.reportData),
    ...bytesField('Measurement', report.measurement),
    ...bytesField('Host Data', report.hostData),
    ...bytesField('ID Key Digest', report.idKeyDigest),
    ...bytesField('Author Key Digest', report.authorKeyDigest),
    ...bytesField('Report ID', report.reportId),
    ...bytesField('Report ID Migration Agent', report.reportIdMa),
    ...tcbText('Reported TCB', report.reportedTcb),
  ];
  if (report.cpuid) {
    lines.push(
      line('CPUID Family ID', hex(report.cpuid.family)),
      line('CPUID Model ID', hex(report.cpuid.model)),
      line('CPUID Stepping', hex(report.cpuid.stepping)),
    );
  }
  lines.push(
    ...bytesField('Chip ID', report.chipId),
    ...tcbText('Committed TCB', report.committedTcb),
    line('Current Version', versionText(report.currentVersion)),
    line('Committed Version', versionText(report.committedVersion)),
    ...tcbText('Launch TCB', report.launchTcb),
  );
  if (report.launchMitigationVector !== undefined) lines.push(line('Launch Mitigation Vector', hex(report.launchMitigationVector)));
  if (report.currentMitigationVector !== undefined) lines.push(line('Current Mitigation Vector', hex(report.currentMitigationVector)));
  lines.push(
    'Signature (little-endian, as stored):',
    '  R:',
    hexBlock(report.signature.r, '    '),
    '  S:',
    hexBlock(report.signature.s, '    '),
    line('TCB Layout', `${report.generation} (${GENERATION_SOURCE_TEXT[report.generationSource]})`),
  );
  return lines.join('\n');
}
