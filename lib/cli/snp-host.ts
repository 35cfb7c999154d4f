// The SEV-SNP platform administrator's commands, with snphost's verbs and arguments:
//   sev snp show guests|identifier|tcb|vcek-url|version
//   sev snp commit
//   sev snp config set BOOTLOADER TEE SNP-FW MICROCODE MASK-CHIP [FMC]  |  sev snp config reset
//   sev snp vlek-load HASHSTICK-FILE            (also `vlek load`)
//   sev snp cert-table import DIR CERT-FILE     (snphost import: ark/ask/vcek/vlek → a GHCB table)
//   sev snp cert-table export pem|der CERT-FILE DIR   (snphost export)
// snphost's `ok` is `sev ok snp`; its `verify certs` and `fetch` are the same commands as snpguest's.
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SevArgumentError } from '../errors';
import { native } from '../native';
import { makeOutputDir, writeOutputFile, writeOutputFiles } from '../output-files';
import { parseIntOrHex, readFileArg } from '../owner/inputs';
import { SevPlatform } from '../platform';
import { buildCertTable, parseCertTable, type CertTableName } from '../snp/cert-table';
import { vcekUrl } from '../snp/kds';
import { decodeTcbVersion, encodeTcbVersion, generationFromCpuid, SNP_GENERATIONS, type SnpGeneration, type TcbVersion } from '../snp/report';
import { toJson, UsageError, type CliContext } from './output';

const COMMAND = 'snp';
type Values = Record<string, unknown>;

/** The host's SNP generation: --generation, else from the CPU (CPUID 1's family and model). */
function hostGeneration(v: Values): SnpGeneration {
  const given = v.generation as string | undefined;
  if (given !== undefined) {
    if (!(SNP_GENERATIONS as readonly string[]).includes(given)) throw new UsageError(`${COMMAND}: --generation must be one of ${SNP_GENERATIONS.join(', ')}`);
    return given as SnpGeneration;
  }
  const eax = native.cpuid(1, 0)[0] >>> 0;
  const baseFamily = (eax >> 8) & 0xf;
  const family = baseFamily + (baseFamily === 0xf ? (eax >> 20) & 0xff : 0);
  const model = (((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf);
  const generation = generationFromCpuid(family, model);
  if (!generation) throw new SevArgumentError(COMMAND, `this CPU (family 0x${family.toString(16)}, model 0x${model.toString(16)}) is not a known SNP generation; pass --generation`);
  return generation;
}

function tcbText(tcb: TcbVersion): string {
  const parts = [`bootloader ${tcb.bootloader}`, `tee ${tcb.tee}`, `snp ${tcb.snp}`, `microcode ${tcb.microcode}`];
  if (tcb.fmc !== undefined) parts.unshift(`fmc ${tcb.fmc}`);
  return `0x${tcb.raw.toString(16).padStart(16, '0')} (${parts.join(', ')})`;
}

function tcbJson(tcb: TcbVersion) {
  return { raw: `0x${tcb.raw.toString(16).padStart(16, '0')}`, bootloader: tcb.bootloader, tee: tcb.tee, snp: tcb.snp, microcode: tcb.microcode, ...(tcb.fmc !== undefined ? { fmc: tcb.fmc } : {}) };
}

async function withPlatform<T>(writable: boolean, fn: (p: SevPlatform) => Promise<T>): Promise<T> {
  const platform = SevPlatform.open({ writable });
  try {
    return await fn(platform);
  } finally {
    platform.close();
  }
}

export async function snpShow(ctx: CliContext, v: Values, what: string | undefined): Promise<number> {
  const status = await withPlatform(false, (p) => p.snpStatus());
  if (what === 'guests') {
    ctx.out(ctx.json ? toJson({ guests: status.guestCount }) : String(status.guestCount));
  } else if (what === 'version') {
    const version = `${status.api.major}.${status.api.minor}.${status.buildId}`;
    ctx.out(ctx.json ? toJson({ version, api: status.api, build: status.buildId }) : version);
  } else if (what === 'identifier') {
    const id = (await withPlatform(false, (p) => p.getId())).subarray(0, 64).toString('hex').toUpperCase();
    ctx.out(ctx.json ? toJson({ identifier: id }) : id);
  } else if (what === 'tcb') {
    const generation = hostGeneration(v);
    const reported = decodeTcbVersion(status.reportedTcbVersion, generation);
    const current = decodeTcbVersion(status.currentTcbVersion, generation);
    ctx.out(ctx.json
      ? toJson({ generation, reported: tcbJson(reported), platform: tcbJson(current) })
      : `Reported TCB: ${tcbText(reported)}\nPlatform TCB: ${tcbText(current)}`);
  } else if (what === 'vcek-url') {
    // The VCEK the platform signs reports with: its chip id at the reported TCB.
    const generation = hostGeneration(v);
    const id = await withPlatform(false, (p) => p.getId());
    const url = vcekUrl(generation, id, decodeTcbVersion(status.reportedTcbVersion, generation), v.kds as string | undefined);
    ctx.out(ctx.json ? toJson({ url }) : url);
  } else {
    throw new UsageError(`${COMMAND} show: expected guests, identifier, tcb, vcek-url or version`);
  }
  return 0;
}

export async function snpCommit(ctx: CliContext): Promise<number> {
  await withPlatform(true, (p) => p.snpCommit());
  if (ctx.json) ctx.out(toJson({ committed: true }));
  return 0;
}

export async function snpConfig(ctx: CliContext, v: Values, sub: string | undefined, args: string[]): Promise<number> {
  if (sub === 'reset') {
    // Reported TCB 0 (the firmware reports the current one) and no masking.
    if (args.length) throw new UsageError(`${COMMAND} config reset takes no arguments`);
    await withPlatform(true, (p) => p.snpSetConfig({ reportedTcb: 0n, maskChipId: false, maskChipKey: false }));
    if (ctx.json) ctx.out(toJson({ reportedTcb: null, maskChipId: false, maskChipKey: false }));
    return 0;
  }
  if (sub !== 'set') throw new UsageError(`${COMMAND} config: expected set or reset`);
  if (args.length < 5 || args.length > 6) throw new UsageError(`${COMMAND} config set BOOTLOADER TEE SNP-FW MICROCODE MASK-CHIP [FMC]`);
  const generation = hostGeneration(v);
  const n = (name: string, text: string, max: number) => parseIntOrHex(COMMAND, name, text, max);
  const [bootloader, tee, snp, microcode] = ['BOOTLOADER', 'TEE', 'SNP-FW', 'MICROCODE'].map((name, i) => n(name, args[i], 0xff));
  const mask = n('MASK-CHIP', args[4], 3);
  const fmc = args[5] === undefined ? undefined : n('FMC', args[5], 0xff);
  if (fmc !== undefined && generation !== 'turin') throw new UsageError(`${COMMAND} config set: FMC is a Turin TCB field; this is ${generation}`);
  const tcb = encodeTcbVersion({ bootloader, tee, snp, microcode, ...(generation === 'turin' ? { fmc: fmc ?? 0 } : {}) }, generation);
  await withPlatform(true, (p) => p.snpSetConfig({ reportedTcb: tcb.raw, maskChipId: (mask & 1) !== 0, maskChipKey: (mask & 2) !== 0 }));
  ctx.out(ctx.json ? toJson({ reportedTcb: tcbJson(tcb), maskChipId: (mask & 1) !== 0, maskChipKey: (mask & 2) !== 0 })
    : `Reported TCB set to ${tcbText(tcb)}; mask chip id ${mask & 1 ? 'on' : 'off'}, mask chip key ${mask & 2 ? 'on' : 'off'} (\`sev snp commit\` makes it permanent)`);
  return 0;
}

export async function snpVlekLoad(ctx: CliContext, args: string[]): Promise<number> {
  if (args.length !== 1) throw new UsageError(`${COMMAND} vlek-load HASHSTICK-FILE`);
  const hashstick = readFileArg(COMMAND, 'hashstick', args[0]);
  await withPlatform(true, (p) => p.snpVlekLoad(hashstick));
  if (ctx.json) ctx.out(toJson({ loaded: true }));
  return 0;
}

const TABLE_NAMES: CertTableName[] = ['vcek', 'vlek', 'ask', 'ark'];

/** A certificate file's DER (PEM or DER input), checked to be X.509. */
function derOf(file: string): Buffer {
  const bytes = readFileArg(COMMAND, path.basename(file), file);
  try {
    return new X509Certificate(bytes).raw;
  } catch {
    throw new SevArgumentError(COMMAND, `${file} is not an X.509 certificate (PEM or DER)`);
  }
}

export async function snpCertTable(ctx: CliContext, sub: string | undefined, args: string[]): Promise<number> {
  if (sub === 'import') {
    if (args.length !== 2) throw new UsageError(`${COMMAND} cert-table import DIR CERT-FILE`);
    const [dir, out] = args;
    const certs: { guid: CertTableName; data: Buffer }[] = [];
    for (const name of TABLE_NAMES) {
      const file = ['pem', 'der'].map((ext) => path.join(dir, `${name}.${ext}`)).find((f) => fs.existsSync(f));
      if (file) certs.push({ guid: name, data: derOf(file) });
    }
    if (certs.length === 0) throw new SevArgumentError(COMMAND, `${dir} has none of ${TABLE_NAMES.map((n) => `${n}.pem|der`).join(', ')}`);
    const table = buildCertTable(certs);
    writeOutputFile(COMMAND, out, table);
    ctx.out(ctx.json ? toJson({ file: out, certificates: certs.map((c) => c.guid), bytes: table.length })
      : `${out}: ${certs.map((c) => c.guid).join(', ')} (${table.length} bytes)`);
    return 0;
  }
  if (sub === 'export') {
    if (args.length !== 3 || (args[0] !== 'pem' && args[0] !== 'der')) throw new UsageError(`${COMMAND} cert-table export pem|der CERT-FILE DIR`);
    const [encoding, file, dir] = args;
    const entries = parseCertTable(readFileArg(COMMAND, 'CERT-FILE', file));
    const files = entries.filter((e) => e.name && e.name !== 'crl').map((e) => {
      const cert = new X509Certificate(e.data);
      return { path: path.join(dir, `${e.name}.${encoding}`), data: encoding === 'pem' ? Buffer.from(cert.toString()) : cert.raw };
    });
    makeOutputDir(COMMAND, dir);
    writeOutputFiles(COMMAND, files);
    ctx.out(ctx.json ? toJson({ files: files.map((f) => f.path) }) : files.map((f) => f.path).join('\n'));
    return 0;
  }
  throw new UsageError(`${COMMAND} cert-table: expected import or export`);
}
