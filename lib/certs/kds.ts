// Where AMD's CA certificates come from: a file the user names, a local cache, or AMD's servers.
//
// URLs, as the reference tools use them:
//  - ASK‖ARK per generation: `ask_ark_<generation>.cert` under https://download.amd.com/developer/eula/sev
//    (AMDESE/sev-tool) and https://developer.amd.com/wp-content/resources (virtee/sev's provenance);
//  - a chip's CEK: https://kdsintf.amd.com/cek/id/<GET_ID bytes in hex> (sevctl, sev-tool);
//  - SEV-SNP (X.509 PEM, not this format): https://kdsintf.amd.com/vcek/v1/<Milan|Genoa|Turin>/cert_chain.
// Downloaded bytes are verified (ARK pinned, ARK self-signature, ARK → ASK) before they are cached or used.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fileErrorText, SevCertificateError } from '../errors';
import { checkArkAnchor, GENERATIONS, isGeneration, type Generation, type TrustedArk } from './anchors';
import type { CaCertificate } from './ca-cert';
import { algorithmInfo, Usage } from './constants';
import { parseAskArk } from './chain';
import { SevCertificate } from './sev-cert';
import { CaFetchError, httpGet, writeCacheFile, type HttpOptions } from './http';

export { CaFetchError, DEFAULT_TIMEOUT_MS, httpGet, proxyFor, retryAfterMs } from './http';
export type { FetchFailure, HttpOptions, RetryOptions } from './http';

/** Base URLs tried in order for `ask_ark_<generation>.cert`. */
export const ASK_ARK_BASE_URLS: readonly string[] = Object.freeze([
  'https://download.amd.com/developer/eula/sev',
  'https://developer.amd.com/wp-content/resources',
]);
/** AMD Key Distribution Service. */
export const KDS_BASE_URL = 'https://kdsintf.amd.com';
/**
 * The KDS base URL: SEV_KDS_URL when set (`sev-emu run --kds` sets it to its loopback KDS, which
 * also serves `ask_ark_<generation>.cert`), else AMD's.
 */
export function kdsBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.SEV_KDS_URL || KDS_BASE_URL;
}
/** Base URLs for `ask_ark_<generation>.cert`: SEV_KDS_URL alone when set, else AMD's. */
export function askArkBaseUrls(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  return env.SEV_KDS_URL ? [env.SEV_KDS_URL] : ASK_ARK_BASE_URLS;
}
/** `ask_ark_<generation>.cert` URLs, one per base URL. */
export function askArkUrls(generation: Generation, baseUrls: readonly string[] = askArkBaseUrls()): string[] {
  return baseUrls.map((b) => `${b.replace(/\/+$/, '')}/ask_ark_${generation}.cert`);
}

/** KDS URL of a chip's CEK; the id is GET_ID's first 64 bytes (socket 0) in upper-case hex, as sevctl sends it. */
export function cekUrl(chipId: Uint8Array, baseUrl = kdsBaseUrl()): string {
  if (!(chipId instanceof Uint8Array) || chipId.length < 64) {
    throw new SevCertificateError('CEK_FETCH', `a chip id is at least 64 bytes (GET_ID); got ${chipId?.length ?? typeof chipId}`);
  }
  return `${baseUrl.replace(/\/+$/, '')}/cek/id/${Buffer.from(chipId.subarray(0, 64)).toString('hex').toUpperCase()}`;
}

/** KDS URL of the SEV-SNP ASK+ARK (X.509 PEM) for an SNP generation. */
export function snpCertChainUrl(generation: 'milan' | 'genoa' | 'turin', baseUrl = kdsBaseUrl()): string {
  const product = generation[0].toUpperCase() + generation.slice(1);
  return `${baseUrl.replace(/\/+$/, '')}/vcek/v1/${product}/cert_chain`;
}

/** The per-user cache directory: `$XDG_CACHE_HOME/node-sev/ca`, default `~/.cache/node-sev/ca`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  // SEV_CACHE_DIR: set by `sev-emu run --kds` so the emulated CA never mixes with AMD's.
  if (env.SEV_CACHE_DIR && path.isAbsolute(env.SEV_CACHE_DIR)) return env.SEV_CACHE_DIR;
  const base = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'node-sev', 'ca');
}

/** A verified AMD CA chain (ASK and ARK) and where it came from. */
export interface AmdCaChain {
  /** AMD generation of the ARK; undefined for an explicitly trusted non-AMD ARK. */
  generation?: Generation;
  ask: CaCertificate;
  ark: CaCertificate;
  /** The ask_ark blob (ASK ‖ ARK) exactly as read. */
  bytes: Buffer;
  /** 'file:PATH', 'cache:PATH' or the URL it was downloaded from. */
  source: string;
}

/** Options for obtaining an ASK/ARK. */
export interface CaSourceOptions extends HttpOptions {
  /** Use this ask_ark file; no cache, no network. */
  file?: string;
  /** Cache directory (default `defaultCacheDir()`); null disables the cache. */
  cacheDir?: string | null;
  /** Never touch the network. */
  offline?: boolean;
  /** Base URLs for `ask_ark_<generation>.cert` (default askArkBaseUrls()). */
  baseUrls?: readonly string[];
  /** Roots to accept besides AMD's pinned ARKs (only these, only when passed). */
  trustedArks?: readonly TrustedArk[];
}

/**
 * Checks an ask_ark blob: it parses, the ARK is pinned (or explicitly trusted), the ARK signs
 * itself and the ASK, and — when `generation` is given — it is that generation's ARK.
 */
export function verifyAskArk(blob: Uint8Array, opts: { generation?: Generation; trustedArks?: readonly TrustedArk[]; source?: string } = {}): AmdCaChain {
  const source = opts.source ?? 'memory';
  const fail = (msg: string) => new SevCertificateError('CA_CHAIN', `${source}: ${msg}`);
  const { ask, ark } = parseAskArk(blob);
  const anchor = checkArkAnchor(ark, opts.trustedArks);
  if (!anchor.trusted) throw fail(anchor.reason ?? 'untrusted ARK');
  if (opts.generation && anchor.generation && anchor.generation !== opts.generation) {
    throw fail(`this is the ${anchor.generation} ARK, not ${opts.generation}'s`);
  }
  const self = ark.verifySignature(ark);
  if (!self.ok) throw fail(`ARK self-signature: ${self.reason}`);
  const askSig = ask.verifySignature(ark);
  if (!askSig.ok) throw fail(`ASK signature: ${askSig.reason}`);
  return { generation: anchor.generation, ask, ark, bytes: Buffer.from(blob), source };
}

/** Reads and verifies an ask_ark file. */
export function loadAskArkFile(file: string, opts: { generation?: Generation; trustedArks?: readonly TrustedArk[] } = {}): AmdCaChain {
  let blob: Buffer;
  try {
    blob = fs.readFileSync(file);
  } catch (e) {
    throw new SevCertificateError('CA_CHAIN', fileErrorText('read', file, e), e);
  }
  return verifyAskArk(blob, { ...opts, source: `file:${file}` });
}

/** Path of a generation's ask_ark file in a cache directory. */
export function cachedAskArkPath(generation: Generation, cacheDir = defaultCacheDir()): string {
  return path.join(cacheDir, `ask_ark_${generation}.cert`);
}

function offlineHint(generation: Generation, cacheDir: string | null): string {
  return `without network access, get ask_ark_${generation}.cert (ASK then ARK) from AMD and pass it as a file` +
    (cacheDir ? `, or put it at ${cachedAskArkPath(generation, cacheDir)}` : '');
}

/** Downloads a generation's ask_ark blob, verifies it against the pinned ARK, then caches it. */
export async function fetchAskArk(generation: Generation, opts: CaSourceOptions = {}): Promise<AmdCaChain> {
  if (!isGeneration(generation)) throw new SevCertificateError('CA_FETCH', `unknown generation ${String(generation)}`);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const urls = askArkUrls(generation, opts.baseUrls);
  if (urls.length === 0) throw new SevCertificateError('CA_FETCH', 'no base URL to download the ASK/ARK from');
  const failures: CaFetchError[] = [];
  for (const url of urls) {
    let blob: Buffer;
    try {
      blob = await httpGet(url, opts);
    } catch (e) {
      if (!(e instanceof CaFetchError)) throw e;
      failures.push(e);
      continue;
    }
    let chain: AmdCaChain;
    try {
      chain = verifyAskArk(blob, { generation, trustedArks: opts.trustedArks, source: url });
    } catch (e) {
      failures.push(new CaFetchError(url, 'invalid', `${url} served an unusable ask_ark: ${(e as Error).message}`, { cause: e }));
      continue;
    }
    if (cacheDir) writeCacheFile(cachedAskArkPath(generation, cacheDir), blob);
    return chain;
  }
  const last = failures[failures.length - 1];
  const detail = failures.map((f) => f.message).join('; ');
  throw new CaFetchError(last.url, last.reason, `${detail}. ${offlineHint(generation, cacheDir)}`, { status: last.status, cause: last });
}

/**
 * A generation's verified ASK/ARK from, in order: `opts.file`, the cache, AMD's servers
 * (skipped with `offline`). A cached file that fails verification is ignored and replaced.
 */
export async function getAskArk(generation: Generation, opts: CaSourceOptions = {}): Promise<AmdCaChain> {
  if (opts.file) return loadAskArkFile(opts.file, { generation, trustedArks: opts.trustedArks });
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (cacheDir) {
    const file = cachedAskArkPath(generation, cacheDir);
    if (fs.existsSync(file)) {
      try {
        return { ...loadAskArkFile(file, { generation, trustedArks: opts.trustedArks }), source: `cache:${file}` };
      } catch (e) {
        if (!(e instanceof SevCertificateError)) throw e;
        if (opts.offline) throw e;
      }
    }
  }
  if (opts.offline) {
    throw new CaFetchError(askArkUrls(generation, opts.baseUrls)[0], 'offline',
      `offline: the ${generation} ASK/ARK is not cached; ${offlineHint(generation, cacheDir)}`);
  }
  return fetchAskArk(generation, { ...opts, cacheDir });
}

/**
 * The verified ASK/ARK that signed `cek`. Tries `opts.generation` (or the generations whose
 * ASK signs with the CEK's signature digest: SHA-256 → Naples, SHA-384 → Rome and later)
 * and returns the first whose ASK verifies the CEK.
 */
export async function getAskArkForCek(cek: SevCertificate | Uint8Array, opts: CaSourceOptions & { generation?: Generation } = {}): Promise<AmdCaChain> {
  const cert = cek instanceof SevCertificate ? cek : SevCertificate.parse(cek);
  const slot = cert.signatures[cert.slotOf(Usage.ASK)];
  if (!slot) throw new SevCertificateError('CA_CHAIN', 'the CEK carries no ASK signature');
  const hash = algorithmInfo(slot.algorithm)?.hash;
  const candidates = opts.generation ? [opts.generation] :
    opts.file ? [undefined] : GENERATIONS.filter((g) => (g === 'naples') === (hash === 'sha256'));
  const problems: string[] = [];
  for (const generation of candidates) {
    let chain: AmdCaChain;
    try {
      chain = generation ? await getAskArk(generation, opts) : loadAskArkFile(opts.file!, { trustedArks: opts.trustedArks });
    } catch (e) {
      if (!(e instanceof SevCertificateError)) throw e;
      problems.push(e.message);
      continue;
    }
    const check = cert.verifySignature(chain.ask);
    if (check.ok) return chain;
    problems.push(`${chain.source}: the ${chain.generation ?? 'given'} ASK did not sign this CEK (${check.reason})`);
  }
  throw new SevCertificateError('CA_CHAIN', `no AMD CA chain verifies this CEK: ${problems.join('; ')}`);
}

/** Downloads a chip's CEK (SEV format) from AMD's KDS and parses it. */
export async function fetchCek(chipId: Uint8Array, opts: HttpOptions & { baseUrl?: string } = {}): Promise<SevCertificate> {
  const url = cekUrl(chipId, opts.baseUrl);
  let blob: Buffer;
  try {
    blob = await httpGet(url, opts);
  } catch (e) {
    if (e instanceof CaFetchError) {
      throw new CaFetchError(url, e.reason, `${e.detail}. Without network access, download the CEK from ${url} elsewhere and pass it as a file`, {
        status: e.status,
        cause: e,
      });
    }
    throw e;
  }
  try {
    const cert = SevCertificate.parse(blob);
    if (cert.usage !== Usage.CEK) throw new SevCertificateError('CEK_FETCH', `the certificate is a ${Usage[cert.usage]}, not a CEK`);
    return cert;
  } catch (e) {
    throw new CaFetchError(url, 'invalid', `${url} did not serve a valid CEK: ${(e as Error).message}`, { cause: e });
  }
}

/** Path of a chip's cached CEK: `<cacheDir>/kds/cek/id/<chip id hex>.cert`, keyed as KDS keys it. */
export function cachedCekPath(chipId: Uint8Array, cacheDir = defaultCacheDir()): string {
  const url = new URL(cekUrl(chipId));
  return path.join(cacheDir, 'kds', ...url.pathname.split('/').filter(Boolean)) + '.cert';
}

/**
 * A chip's CEK from the cache, else from AMD's KDS (skipped with `offline`), which is then cached.
 * A cached file that is not a CEK is ignored (and replaced when online).
 */
export async function getCek(chipId: Uint8Array, opts: HttpOptions & { baseUrl?: string; cacheDir?: string | null; offline?: boolean } = {}): Promise<SevCertificate> {
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const file = cacheDir ? cachedCekPath(chipId, cacheDir) : undefined;
  if (file && fs.existsSync(file)) {
    try {
      const cert = SevCertificate.parse(fs.readFileSync(file));
      if (cert.usage === Usage.CEK) return cert;
    } catch (e) {
      if (!(e instanceof SevCertificateError)) throw e;
    }
  }
  const url = cekUrl(chipId, opts.baseUrl);
  if (opts.offline) {
    throw new CaFetchError(url, 'offline', `offline: this chip's CEK is not cached${file ? ` at ${file}` : ''}; download it from ${url} elsewhere and pass it as a file`);
  }
  const cek = await fetchCek(chipId, opts);
  if (file) writeCacheFile(file, cek.toBuffer());
  return cek;
}

