// AMD's Key Distribution Service for SEV-SNP, through node-sev's one HTTP client (lib/certs/http):
//   VCEK       {base}/vcek/v1/{Milan|Genoa|Turin}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..  (DER)
//              hwid: the report's chip id in hex, all 64 bytes (Milan, Genoa) or the first 8 (Turin,
//              whose query also carries fmcSPL); SPLs as two decimal digits
//   cert_chain {base}/vcek/v1/{product}/cert_chain, {base}/vlek/v1/{product}/cert_chain  (PEM: ASK or ASVK, then ARK)
//   CRL        {base}/vcek/v1/{product}/crl, {base}/vlek/v1/{product}/crl  (DER X.509 CRL)
// Everything is cached under `<cacheDir>/kds/` by the same key KDS uses (product, hwid, TCB), so a
// second verification makes no request. What is downloaded must parse as what was asked for
// before it is returned or cached: an HTML page served with 200 is an error, not a certificate.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CaFetchError, httpGet, writeCacheFile, type HttpOptions } from '../certs/http';
import { defaultCacheDir, kdsBaseUrl } from '../certs/kds';
import { SevArgumentError, SevCertificateError } from '../errors';
import {
  parseCertChainPem, parseSnpCertificate, snpRootPin, vcekExtensions, vcekHwIdLength, vcekSplNames, verifySnpChain,
  type SnpCertificate, type SnpChainOptions, type SnpTcbLevels,
} from './certs';
import { parseSnpCrl, type SnpCrl } from './crl';
import { parseAttestationReport, SNP_GENERATIONS, type AttestationReport, type SnpGeneration } from './report';

export type Endorser = 'vcek' | 'vlek';

export interface KdsOptions extends HttpOptions {
  /** KDS base URL (default: SEV_KDS_URL, else https://kdsintf.amd.com). */
  baseUrl?: string;
  /** Cache directory (default `defaultCacheDir()`); null disables the cache. */
  cacheDir?: string | null;
  /** Only the cache: never touch the network. */
  offline?: boolean;
  /** Roots to accept for a cert_chain besides AMD's pinned ARKs (e.g. the emulator's). */
  trustedArks?: SnpChainOptions['trustedArks'];
}

/** What was obtained and from where: 'cache:PATH' or the URL. */
export interface KdsResult {
  bytes: Buffer;
  source: string;
}

const CMD = 'SNP_KDS';

function product(generation: SnpGeneration): string {
  if (!SNP_GENERATIONS.includes(generation)) {
    throw new SevArgumentError(CMD, `unknown SNP generation ${String(generation)} (expected ${SNP_GENERATIONS.join(', ')})`);
  }
  return snpRootPin(generation).product;
}

const base = (url: string | undefined) => (url ?? kdsBaseUrl()).replace(/\/+$/, '');
const spl = (name: string, value: number | undefined) => {
  if (!Number.isInteger(value) || value! < 0 || value! > 255) throw new SevArgumentError(CMD, `${name} must be 0-255, got ${String(value)}`);
  return String(value).padStart(2, '0');
};

/** The hwid KDS keys a VCEK by: the chip id in lower-case hex, its first 8 bytes on Turin. */
export function kdsHwid(generation: SnpGeneration, chipId: Uint8Array): string {
  const width = vcekHwIdLength(generation);
  if (!(chipId instanceof Uint8Array) || chipId.length < width) {
    throw new SevArgumentError(CMD, `a ${generation} chip id has at least ${width} bytes; got ${chipId instanceof Uint8Array ? chipId.length : typeof chipId}`);
  }
  return Buffer.from(chipId.subarray(0, width)).toString('hex');
}

/** The VCEK URL for a chip at a TCB. */
export function vcekUrl(generation: SnpGeneration, chipId: Uint8Array, tcb: SnpTcbLevels, baseUrl?: string): string {
  const query = [
    ...(generation === 'turin' ? [`fmcSPL=${spl('fmc', tcb.fmc)}`] : []),
    `blSPL=${spl('bootloader', tcb.bootloader)}`,
    `teeSPL=${spl('tee', tcb.tee)}`,
    `snpSPL=${spl('snp', tcb.snp)}`,
    `ucodeSPL=${spl('microcode', tcb.microcode)}`,
  ].join('&');
  return `${base(baseUrl)}/vcek/v1/${product(generation)}/${kdsHwid(generation, chipId)}?${query}`;
}

/** The cert_chain URL (ASK then ARK for VCEKs, ASVK then ARK for VLEKs). */
export function certChainUrl(generation: SnpGeneration, endorser: Endorser = 'vcek', baseUrl?: string): string {
  return `${base(baseUrl)}/${endorser}/v1/${product(generation)}/cert_chain`;
}

/** The CRL URL. */
export function crlUrl(generation: SnpGeneration, endorser: Endorser = 'vcek', baseUrl?: string): string {
  return `${base(baseUrl)}/${endorser}/v1/${product(generation)}/crl`;
}

/**
 * Where a KDS URL's answer is cached: `<cacheDir>/kds/<the URL's path>`, the query (VCEK TCB)
 * folded into the file name, plus an extension (.der or .pem).
 */
export function kdsCachePath(url: string, cacheDir: string, ext: string): string {
  const u = new URL(url);
  const parts = u.pathname.split('/').filter(Boolean);
  if (parts.some((p) => p === '..' || p === '.')) throw new SevArgumentError(CMD, `unusable KDS URL ${url}`);
  const query = [...u.searchParams].map(([k, v]) => `${k}=${v}`).join(',');
  const name = `${parts.pop()}${query ? `,${query}` : ''}.${ext}`;
  return path.join(cacheDir, 'kds', ...parts, name);
}

/**
 * The cache-or-network core: a cached file that passes `check` is used; else (unless offline)
 * download, check, then cache. `check` throws for content that is not what was asked for.
 */
async function obtain<T>(url: string, ext: string, opts: KdsOptions, what: string, check: (bytes: Buffer) => T,
  fresh: (value: T) => boolean = () => true): Promise<KdsResult & { value: T }> {
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const file = cacheDir ? kdsCachePath(url, cacheDir, ext) : undefined;
  if (file && fs.existsSync(file)) {
    const bytes = fs.readFileSync(file);
    try {
      const value = check(bytes);
      // A stale entry (an expired CRL) is replaced when the network may be used.
      if (opts.offline || fresh(value)) return { value, bytes, source: `cache:${file}` };
    } catch (e) {
      if (!(e instanceof SevCertificateError)) throw e;
      if (opts.offline) throw new CaFetchError(url, 'invalid', `offline: the cached ${what} ${file} is unusable: ${e.message}`, { cause: e });
    }
  }
  if (opts.offline) {
    throw new CaFetchError(url, 'offline', `offline: the ${what} is not cached${file ? ` (${file})` : ''}; download ${url} elsewhere and pass it as a file`);
  }
  let bytes: Buffer;
  try {
    bytes = await httpGet(url, opts);
  } catch (e) {
    if (!(e instanceof CaFetchError)) throw e;
    throw new CaFetchError(url, e.reason, `${e.detail}. Without network access, download the ${what} from ${url} elsewhere and pass it as a file`,
      { status: e.status, cause: e });
  }
  let value: T;
  try {
    value = check(bytes);
  } catch (e) {
    if (!(e instanceof SevCertificateError)) throw e;
    throw new CaFetchError(url, 'invalid', `${url} did not serve a ${what}: ${e.message}`, { cause: e });
  }
  if (file) writeCacheFile(file, bytes);
  return { value, bytes, source: url };
}

/** A chip's VCEK at a TCB; checks that the certificate is a VCEK for exactly that hwid and TCB. */
export async function getVcek(generation: SnpGeneration, chipId: Uint8Array, tcb: SnpTcbLevels, opts: KdsOptions = {}): Promise<KdsResult & { vcek: SnpCertificate }> {
  const url = vcekUrl(generation, chipId, tcb, opts.baseUrl);
  const hwid = kdsHwid(generation, chipId);
  const r = await obtain(url, 'der', opts, `${generation} VCEK`, (bytes) => {
    const cert = parseSnpCertificate(bytes);
    const ext = vcekExtensions(cert);
    if (ext.hwId?.toString('hex') !== hwid) throw new SevCertificateError(CMD, `the certificate is for hwID ${ext.hwId?.toString('hex') ?? '(none)'}, not ${hwid}`);
    const off = vcekSplNames(generation).filter((n) => ext.tcb[n] !== tcb[n]);
    if (off.length) throw new SevCertificateError(CMD, `the certificate's TCB differs in ${off.join(', ')}`);
    return cert;
  });
  return { vcek: r.value, bytes: r.bytes, source: r.source };
}

/** The VCEK a report was signed with: its chip id and reported TCB, in the report's (or the given) generation. */
export async function getVcekForReport(report: AttestationReport | Uint8Array, opts: KdsOptions & { generation?: SnpGeneration } = {}) {
  const parsed = report instanceof Uint8Array ? parseAttestationReport(report, { generation: opts.generation }) : report;
  return getVcek(parsed.generation, parsed.chipId, parsed.reportedTcb, opts);
}

/** A generation's cert_chain (ASK or ASVK, then ARK), checked: the ARK is pinned (or trusted) and signs itself and the ASK. */
export async function getCertChain(generation: SnpGeneration, opts: KdsOptions & { endorser?: Endorser } = {}) {
  const endorser = opts.endorser ?? 'vcek';
  const url = certChainUrl(generation, endorser, opts.baseUrl);
  const r = await obtain(url, 'pem', opts, `${generation} ${endorser === 'vcek' ? 'ASK' : 'ASVK'}/ARK chain`, (bytes) => {
    const chain = parseCertChainPem(bytes);
    const report = verifySnpChain(endorser === 'vcek' ? { ark: chain.ark, ask: chain.ask } : { ark: chain.ark, asvk: chain.ask },
      { generation, trustedArks: opts.trustedArks });
    const failed = report.links.slice(0, 2).find((l) => !l.ok);
    if (failed) throw new SevCertificateError(CMD, `${failed.signer} ⟶ ${failed.subject}: ${failed.reason}`);
    return chain;
  });
  return { ...r.value, bytes: r.bytes, source: r.source };
}

/** A generation's CRL (a cached one past its nextUpdate is fetched again unless offline); parsed here, its signature is checked against the ARK by checkSnpCrl. */
export async function getCrl(generation: SnpGeneration, opts: KdsOptions & { endorser?: Endorser } = {}): Promise<KdsResult & { crl: SnpCrl }> {
  const url = crlUrl(generation, opts.endorser, opts.baseUrl);
  const r = await obtain(url, 'der', opts, `${generation} CRL`, (bytes) => {
    if (bytes[0] !== 0x30) throw new SevCertificateError(CMD, 'not DER');
    return parseSnpCrl(bytes);
  }, (crl) => !crl.nextUpdate || crl.nextUpdate > new Date());
  return { crl: r.value, bytes: r.bytes, source: r.source };
}
