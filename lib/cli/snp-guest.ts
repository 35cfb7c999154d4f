// `sev snp report|certificates|key|display key`: the guest side, inside an SEV-SNP guest, with
// snpguest's verbs, arguments and flags (its underscore spellings accepted too).
//   sev snp report ATT_REPORT_PATH REQUEST_FILE [--vmpl N] [--random] [--provider auto|sev-guest|configfs-tsm]
//   sev snp certificates pem|der CERTS_DIR [--vmpl N] [--provider ...]
//   sev snp key KEY_PATH vcek|vmrk [--vmpl N] [--guest-field-select BITS] [--guest-svn N] [--tcb-version N]
//                                  [--launch-mit-vector N] [--key-select default|vcek|vlek]
//   sev snp display key KEY_PATH
// Reports come from /dev/sev-guest or configfs-tsm (auto: the device when it opens, else configfs-tsm).
import { randomBytes, X509Certificate } from 'node:crypto';
import * as path from 'node:path';

import { SevArgumentError, SevError } from '../errors';
import { makeOutputDir, SECRET_MODE, writeOutputFiles, type OutputFile } from '../output-files';
import { parseIntOrHex, readFileArg } from '../owner/inputs';
import type { CertTableEntry } from '../snp/cert-table';
import { type KeySelect, type RootKey, SnpGuestDevice, SNP_DERIVED_KEY_SIZE } from '../snp/guest';
import { DEFAULT_TSM_REPORT_PATH, getTsmReport } from '../snp/tsm';
import { toJson, UsageError, type CliContext } from './output';

const COMMAND = 'snp';
type Values = Record<string, unknown>;
type Provider = 'auto' | 'sev-guest' | 'configfs-tsm';
const PROVIDERS: Provider[] = ['auto', 'sev-guest', 'configfs-tsm'];

export const GUEST_OPTIONS = {
  random: { type: 'boolean', short: 'r' },
  provider: { type: 'string' },
  'guest-field-select': { type: 'string', short: 'g' },
  guest_field_select: { type: 'string' },
  'guest-svn': { type: 'string', short: 's' },
  guest_svn: { type: 'string' },
  'tcb-version': { type: 'string', short: 't' },
  tcb_version: { type: 'string' },
  'launch-mit-vector': { type: 'string' },
  launch_mit_vector: { type: 'string' },
  'key-select': { type: 'string' },
} as const;

export const GUEST_USAGE = [
  '       sev snp report ATT_REPORT_PATH REQUEST_FILE [-v|--vmpl N (default 1)] [-r|--random]',
  '                      [--provider auto|sev-guest|configfs-tsm]   (inside an SNP guest; REQUEST_FILE: 64 bytes of',
  '                      report data, or with --random where the 64 random bytes used are written)',
  '       sev snp certificates pem|der CERTS_DIR [--vmpl N] [--provider P]   (the host\'s vcek/vlek, ask, ark)',
  '       sev snp key KEY_PATH vcek|vmrk [-v|--vmpl N (default 1)] [-g|--guest-field-select BITS]',
  '                      [-s|--guest-svn N] [-t|--tcb-version N] [--launch-mit-vector 0] [--key-select default|vcek|vlek]',
  '                      (BITS: binary, rightmost = bit 0: policy, image id, family id, measurement, svn, tcb, mit vector)',
  '       sev snp display key KEY_PATH',
];

const str = (v: Values, ...names: string[]): string | undefined => {
  const given = names.filter((n) => v[n] !== undefined);
  if (given.length > 1) throw new UsageError(`${COMMAND}: --${given[0]} and --${given[1]} are the same flag; give it once`);
  return given.length ? (v[given[0]] as string) : undefined;
};

function providerOption(v: Values): Provider {
  const p = (str(v, 'provider') ?? 'auto') as Provider;
  if (!PROVIDERS.includes(p)) throw new UsageError(`${COMMAND}: --provider must be one of ${PROVIDERS.join(', ')}`);
  return p;
}

function vmplOption(v: Values): number {
  const text = str(v, 'vmpl');
  if (text === undefined) return 1; // snpguest's default
  const vmpl = parseIntOrHex(COMMAND, '--vmpl', text);
  if (vmpl > 3) throw new SevArgumentError(COMMAND, `--vmpl must be 0..3, got ${vmpl}`);
  return vmpl;
}

function tsmBase(): string {
  return process.env.SEV_TSM_REPORT_PATH || DEFAULT_TSM_REPORT_PATH;
}

interface Obtained {
  provider: 'sev-guest' | 'configfs-tsm';
  raw: Buffer;
  certificates: CertTableEntry[];
}

/** A report (with the certificate table when `ext`) from the chosen provider. */
async function obtainReport(provider: Provider, reportData: Buffer, vmpl: number, ext: boolean): Promise<Obtained> {
  let device: SnpGuestDevice | undefined;
  let deviceError: unknown;
  if (provider !== 'configfs-tsm') {
    try {
      device = SnpGuestDevice.open();
    } catch (e) {
      if (provider === 'sev-guest' || !(e instanceof SevError)) throw e;
      deviceError = e;
    }
  }
  if (device) {
    try {
      if (ext) {
        const r = await device.getExtReport({ reportData, vmpl });
        return { provider: 'sev-guest', raw: r.raw, certificates: r.certificates };
      }
      const r = await device.getReport({ reportData, vmpl });
      return { provider: 'sev-guest', raw: r.raw, certificates: [] };
    } finally {
      device.close();
    }
  }
  try {
    const r = getTsmReport({ basePath: tsmBase(), reportData, privlevel: vmpl });
    return { provider: 'configfs-tsm', raw: r.raw, certificates: r.certificates };
  } catch (e) {
    // auto with neither interface: the device's error says more about what is missing.
    if (deviceError && e instanceof SevError && e.code === 'ENOENT') {
      throw new SevError(`${(deviceError as Error).message}; and ${(e as Error).message}`, {
        command: (deviceError as SevError).command,
        errno: (deviceError as SevError).errno,
      });
    }
    throw e;
  }
}

/** snpguest's `report`: the raw report to ATT_REPORT_PATH; with --random the request data to REQUEST_FILE. */
async function report(ctx: CliContext, v: Values, args: string[]): Promise<number> {
  if (args.length !== 2) throw new UsageError(`${COMMAND} report: ATT_REPORT_PATH REQUEST_FILE expected`);
  const [reportPath, requestPath] = args;
  const vmpl = vmplOption(v);
  const provider = providerOption(v);
  let reportData: Buffer;
  if (v.random) {
    reportData = randomBytes(64);
  } else {
    reportData = readFileArg(COMMAND, 'REQUEST_FILE', requestPath);
    if (reportData.length !== 64) {
      throw new SevArgumentError(COMMAND, `REQUEST_FILE ${requestPath} must hold exactly 64 bytes of report data, it has ${reportData.length} (or use --random)`);
    }
  }
  const got = await obtainReport(provider, reportData, vmpl, false);
  const files: OutputFile[] = [{ path: reportPath, data: got.raw }];
  if (v.random) files.push({ path: requestPath, data: reportData });
  writeOutputFiles(COMMAND, files);
  if (ctx.json) {
    ctx.out(toJson({ report: reportPath, request: requestPath, provider: got.provider, vmpl, report_data: reportData.toString('hex') }));
  } else {
    ctx.out(`Attestation report (${got.raw.length} bytes, VMPL ${vmpl}, via ${got.provider}) written to ${reportPath}`);
  }
  return 0;
}

/**
 * The file name for a table entry: its GUID's name; the table has no GUID for the ASVK (the VLEK
 * chain's intermediate), so an ASK entry whose subject is an ASVK (CN SEV-VLEK-<product>) is one.
 */
function certName(e: CertTableEntry, cert: X509Certificate): string {
  if (e.name === 'ask' && /(^|\n)CN=SEV-VLEK-/.test(cert.subject)) return 'asvk';
  return e.name!;
}

/** snpguest's `certificates`: the host's certificates from an extended report, in one encoding. */
async function certificates(ctx: CliContext, v: Values, args: string[]): Promise<number> {
  if (args.length !== 2) throw new UsageError(`${COMMAND} certificates: ENCODING (pem|der) CERTS_DIR expected`);
  const encoding = args[0].toLowerCase();
  if (encoding !== 'pem' && encoding !== 'der') throw new UsageError(`${COMMAND} certificates: encoding must be pem or der, got '${args[0]}'`);
  const dir = args[1];
  const got = await obtainReport(providerOption(v), randomBytes(64), vmplOption(v), true);
  if (got.certificates.length === 0) {
    throw new SevError(`${COMMAND} certificates: the host provided no certificates (none are loaded for this guest)`, { command: COMMAND });
  }
  const files: OutputFile[] = [];
  const written: Record<string, string> = {};
  const skipped: string[] = [];
  for (const entry of got.certificates) {
    if (!entry.name || entry.name === 'crl') {
      skipped.push(entry.name ?? entry.guid);
      continue;
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(entry.data);
    } catch (e) {
      throw new SevArgumentError(COMMAND, `the host's ${entry.name.toUpperCase()} entry is not a certificate (${(e as Error).message})`);
    }
    const name = certName(entry, cert);
    const file = path.join(dir, `${name}.${encoding}`);
    files.push({ path: file, data: encoding === 'der' ? cert.raw : cert.toString() });
    written[name] = file;
  }
  makeOutputDir(COMMAND, dir);
  writeOutputFiles(COMMAND, files);
  if (ctx.json) ctx.out(toJson({ provider: got.provider, certificates: written, skipped }));
  else ctx.out(Object.entries(written).map(([n, f]) => `${n.toUpperCase().padEnd(4)} → ${f}`).join('\n'));
  return 0;
}

/** snpguest's --guest_field_select: a binary string (rightmost bit = bit 0), or 0x-hex. */
function parseGuestFieldSelect(text: string): bigint {
  const t = text.trim();
  if (/^[01]{1,64}$/.test(t)) return BigInt(`0b${t}`);
  if (/^0b[01]{1,64}$/i.test(t) || /^0x[0-9a-f]{1,16}$/i.test(t)) return BigInt(t.toLowerCase());
  throw new SevArgumentError(COMMAND, `--guest-field-select must be bits like 100001 (rightmost = guest policy) or 0x-hex, got '${text}'`);
}

function parseU64(flag: string, text: string): bigint {
  if (!/^(0x[0-9a-f]{1,16}|[0-9]{1,20})$/i.test(text.trim())) throw new SevArgumentError(COMMAND, `${flag} must be a 64-bit number, got '${text}'`);
  const value = BigInt(text.trim());
  if (value >= 1n << 64n) throw new SevArgumentError(COMMAND, `${flag} must fit in 64 bits, got '${text}'`);
  return value;
}

/** snpguest's `key`: a derived key (32 bytes, mode 0600) in KEY_PATH. */
async function key(ctx: CliContext, v: Values, args: string[]): Promise<number> {
  if (args.length !== 2) throw new UsageError(`${COMMAND} key: KEY_PATH vcek|vmrk expected`);
  const [keyPath, root] = args;
  const rootKey = root.toLowerCase();
  if (rootKey !== 'vcek' && rootKey !== 'vmrk') throw new UsageError(`${COMMAND} key: the root key must be vcek or vmrk, got '${root}'`);
  const gfs = str(v, 'guest-field-select', 'guest_field_select');
  const svn = str(v, 'guest-svn', 'guest_svn');
  const tcb = str(v, 'tcb-version', 'tcb_version');
  const mit = str(v, 'launch-mit-vector', 'launch_mit_vector');
  const keySelect = str(v, 'key-select');
  if (keySelect !== undefined && !['default', 'vcek', 'vlek'].includes(keySelect)) throw new UsageError(`${COMMAND} key: --key-select must be default, vcek or vlek`);
  const request = {
    rootKey: rootKey as RootKey,
    keySelect: keySelect as KeySelect | undefined,
    vmpl: vmplOption(v),
    guestFieldSelect: gfs === undefined ? 0n : parseGuestFieldSelect(gfs),
    guestSvn: svn === undefined ? 0 : parseIntOrHex(COMMAND, '--guest-svn', svn),
    tcbVersion: tcb === undefined ? 0n : parseU64('--tcb-version', tcb),
    launchMitVector: mit === undefined ? 0n : parseU64('--launch-mit-vector', mit),
  };
  const device = SnpGuestDevice.open();
  let derived: Buffer;
  try {
    derived = await device.getDerivedKey(request);
  } finally {
    device.close();
  }
  try {
    writeOutputFiles(COMMAND, [{ path: keyPath, data: derived, mode: SECRET_MODE }]);
  } finally {
    derived.fill(0);
  }
  if (ctx.json) {
    ctx.out(toJson({ key: keyPath, root_key: rootKey, vmpl: request.vmpl, guest_field_select: `0x${request.guestFieldSelect.toString(16)}`, guest_svn: request.guestSvn, tcb_version: `0x${request.tcbVersion.toString(16)}` }));
  } else {
    ctx.out(`Derived key (${SNP_DERIVED_KEY_SIZE} bytes, from the ${rootKey.toUpperCase()}) written to ${keyPath}`);
  }
  return 0;
}

/** snpguest's `display key`: the key's bytes in hex, 16 to a line, space-separated (its hexdump). */
function displayKey(ctx: CliContext, args: string[]): number {
  if (args.length !== 1) throw new UsageError(`${COMMAND} display key: one key file expected`);
  const bytes = readFileArg(COMMAND, 'KEY_PATH', args[0]);
  if (bytes.length !== SNP_DERIVED_KEY_SIZE) throw new SevArgumentError(COMMAND, `${args[0]} holds ${bytes.length} bytes, a derived key is ${SNP_DERIVED_KEY_SIZE}`);
  if (ctx.json) {
    ctx.out(toJson({ key: bytes.toString('hex') }));
  } else {
    const lines: string[] = [];
    for (let i = 0; i < bytes.length; i += 16) lines.push([...bytes.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, '0')).join(' '));
    ctx.out(lines.join('\n'));
  }
  return 0;
}

/** Dispatches the guest verbs; undefined when `verb` is not one of them. */
export function snpGuest(ctx: CliContext, v: Values, positionals: string[]): Promise<number> | undefined {
  const [verb, ...rest] = positionals;
  if (verb === 'report') return report(ctx, v, rest);
  if (verb === 'certificates') return certificates(ctx, v, rest);
  if (verb === 'key') return key(ctx, v, rest);
  if (verb === 'display' && rest[0] === 'key') return Promise.resolve(displayKey(ctx, rest.slice(1)));
  return undefined;
}
