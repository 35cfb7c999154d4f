// The one HTTP client of node-sev, used for AMD's CA files (SEV) and AMD's Key Distribution
// Service (SEV CEKs, SNP VCEKs, chains and CRLs): GET with a deadline, a size limit, a few
// redirects, HTTP 429 with Retry-After and bounded exponential backoff, and a proxy from the usual
// environment variables (an HTTP CONNECT tunnel, for http and https targets alike).
// It returns bytes only for a 200 answer; deciding whether those bytes are a certificate is the
// caller's job (an HTML error page served with 200 must be refused there).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type Socket } from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';

import { SevCertificateError } from '../errors';
import { writeOutputFiles } from '../output-files';

/** Default deadline of one request (each attempt). */
export const DEFAULT_TIMEOUT_MS = 10_000;

const MAX_BYTES = 1 << 20;
const MAX_REDIRECTS = 3;

/** Why a download failed. */
export type FetchFailure = 'offline' | 'timeout' | 'tls' | 'http' | 'too-large' | 'invalid' | 'rate-limited';

/** A certificate that could not be obtained; `url` names what was tried, the message says how to pass a file instead. */
export class CaFetchError extends SevCertificateError {
  readonly url: string;
  readonly reason: FetchFailure;
  readonly status?: number;
  /** The message without the command prefix, for wrapping. */
  readonly detail: string;

  constructor(url: string, reason: FetchFailure, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super('CA_FETCH', message, opts.cause);
    this.name = 'CaFetchError';
    this.detail = message;
    this.url = url;
    this.reason = reason;
    this.status = opts.status;
  }
}

/** How HTTP 429 (Too Many Requests) is retried. */
export interface RetryOptions {
  /** Requests in all, the first included (default 5). */
  maxAttempts?: number;
  /** First backoff, doubled on each retry (default 1000 ms). */
  initialDelayMs?: number;
  /** Longest single wait, whatever Retry-After asks (default 30 000 ms). */
  maxDelayMs?: number;
  /** Total time spent waiting before giving up (default 120 000 ms). */
  maxTotalMs?: number;
}

/** Network options. */
export interface HttpOptions {
  /** Deadline of each request in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Largest body accepted (default 1 MiB). */
  maxBytes?: number;
  /** Extra TLS roots, e.g. a test server's self-signed certificate. */
  ca?: string | Buffer;
  /** Retries of rate-limited (429) requests. */
  retry?: RetryOptions;
  /** A proxy URL (http://host:port), or null for none; default: from `env`. */
  proxy?: string | null;
  /** Where HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * The proxy for `url` from the environment, curl's rules: https_proxy/HTTPS_PROXY for https URLs,
 * http_proxy/HTTP_PROXY for http ones; none for a host listed in no_proxy/NO_PROXY (comma-separated
 * names, each also matching its subdomains, an optional :port, or `*`). Like Go's net/http, never
 * for localhost and loopback addresses (pass `proxy` explicitly for those).
 */
export function proxyFor(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const target = new URL(url);
  const proxy = target.protocol === 'https:' ? env.https_proxy || env.HTTPS_PROXY : env.http_proxy || env.HTTP_PROXY;
  if (!proxy) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '::1') return undefined;
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  for (const raw of (env.no_proxy || env.NO_PROXY || '').split(',')) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return undefined;
    const m = /^(.*?)(?::(\d+))?$/.exec(entry)!;
    const name = m[1].replace(/^\*?\./, '').replace(/^\[|\]$/g, '');
    if (m[2] && m[2] !== port) continue;
    if (host === name || host.endsWith(`.${name}`)) return undefined;
  }
  return proxy;
}

/** Milliseconds a Retry-After header asks for (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  return Number.isNaN(when) ? undefined : Math.max(0, when - now);
}

/** GET `url`: follows a few redirects (never from https to http), retries 429 within the retry budget. */
export async function httpGet(url: string, opts: HttpOptions = {}): Promise<Buffer> {
  const retry = opts.retry ?? {};
  const maxAttempts = Math.max(1, retry.maxAttempts ?? 5);
  const maxDelay = retry.maxDelayMs ?? 30_000;
  const maxTotal = retry.maxTotalMs ?? 120_000;
  let backoff = retry.initialDelayMs ?? 1000;
  let waited = 0;
  for (let attempt = 1; ; attempt++) {
    const res = await getFollowingRedirects(url, opts);
    if (res.status === 200) return res.body;
    if (res.status !== 429) throw new CaFetchError(url, 'http', `${url} answered HTTP ${res.status}`, { status: res.status });
    // Rate limited: wait the backoff (capped at maxDelay), or longer when Retry-After asks; a
    // server asking for more than maxDelay or the remaining budget is not retried early.
    const asked = retryAfterMs(res.retryAfter);
    const delay = Math.max(Math.min(backoff, maxDelay), asked ?? 0);
    if (attempt >= maxAttempts || delay > maxDelay || waited + delay > maxTotal) {
      const wants = asked === undefined ? '' : ` (Retry-After: ${asked} ms)`;
      throw new CaFetchError(url, 'rate-limited',
        `${url} answered HTTP 429 (too many requests)${wants} ${attempt} time(s); gave up after waiting ${waited} ms`, { status: 429 });
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    waited += delay;
    backoff *= 2;
  }
}

type Answer = { status: number; body: Buffer; location?: string; retryAfter?: string };

async function getFollowingRedirects(url: string, opts: HttpOptions): Promise<Answer> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await getOnce(current, url, opts);
    if (res.status < 300 || res.status >= 400 || !res.location) return res;
    if (hop >= MAX_REDIRECTS) throw new CaFetchError(url, 'http', `${url}: too many redirects`);
    const next = new URL(res.location, current);
    if (new URL(current).protocol === 'https:' && next.protocol !== 'https:') {
      throw new CaFetchError(url, 'http', `${url}: refusing a redirect from https to ${next.protocol}`);
    }
    current = next.toString();
  }
}

function networkError(original: string, url: string, e: NodeJS.ErrnoException, timedOut: boolean): CaFetchError {
  if (timedOut) return new CaFetchError(original, 'timeout', `${url} did not answer within the time limit`, { cause: e });
  if (/CERT|TLS|SSL/.test(e.code ?? '')) {
    return new CaFetchError(original, 'tls', `${url}: the server's TLS certificate is not acceptable (${e.code})`, { cause: e });
  }
  return new CaFetchError(original, 'offline', `cannot reach ${url} (${e.code ?? e.message})`, { cause: e });
}

/** One request within one deadline (tunnel, TLS, headers and body included). Bodies are read only for 200. */
function getOnce(url: string, original: string, opts: HttpOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (e) {
      reject(new CaFetchError(original, 'invalid', `not a URL: ${url}`, { cause: e }));
      return;
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      reject(new CaFetchError(original, 'invalid', `${url}: only http and https URLs are supported`));
      return;
    }
    const proxy = opts.proxy === undefined ? proxyFor(url, opts.env) : opts.proxy ?? undefined;
    const maxBytes = opts.maxBytes ?? MAX_BYTES;
    let timedOut = false;
    let settled = false;
    let req: http.ClientRequest | undefined;
    let tunnel: http.ClientRequest | undefined;
    // Every way out goes through here exactly once: stop the timer, drop the connections.
    const finish = (outcome: Answer | CaFetchError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome instanceof CaFetchError) {
        req?.destroy();
        tunnel?.destroy();
        reject(outcome);
      } else {
        resolve(outcome);
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      finish(networkError(original, url, Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }), true));
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);

    const send = (socket?: Socket) => {
      if (settled) {
        socket?.destroy();
        return;
      }
      const tlsOptions = opts.ca ? { ca: opts.ca } : {};
      const options: https.RequestOptions = { ...tlsOptions, headers: { accept: 'application/octet-stream, application/x-pem-file, */*' } };
      if (socket) {
        // Through the tunnel: TLS (for https) runs end to end inside it.
        options.createConnection = () =>
          parsed.protocol === 'https:'
            ? tls.connect({ socket, host: parsed.hostname, ...(isIP(parsed.hostname) ? {} : { servername: parsed.hostname }), ...tlsOptions })
            : socket;
      }
      const client = parsed.protocol === 'https:' ? https : http;
      req = client.get(parsed, options, (res) => {
        const status = res.statusCode ?? 0;
        const retryAfter = res.headers['retry-after'];
        if (status !== 200) {
          res.resume();
          finish({ status, body: Buffer.alloc(0), location: res.headers.location, retryAfter });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) finish(new CaFetchError(original, 'too-large', `${url}: the response exceeds ${maxBytes} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => finish({ status, body: Buffer.concat(chunks) }));
        res.on('error', (e: NodeJS.ErrnoException) => finish(networkError(original, url, e, timedOut)));
        res.on('close', () => {
          if (!res.complete) finish(networkError(original, url, Object.assign(new Error('connection closed mid-response'), { code: 'ECONNRESET' }), timedOut));
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => finish(networkError(original, url, e, timedOut)));
    };

    if (!proxy) {
      send();
      return;
    }
    let proxyUrl: URL;
    try {
      proxyUrl = new URL(proxy.includes('://') ? proxy : `http://${proxy}`);
    } catch (e) {
      finish(new CaFetchError(original, 'invalid', `the proxy ${proxy} is not a URL`, { cause: e }));
      return;
    }
    if (proxyUrl.protocol !== 'http:') {
      finish(new CaFetchError(original, 'invalid', `the proxy ${proxy}: only http:// proxies are supported`));
      return;
    }
    const authority = `${parsed.hostname}:${parsed.port || (parsed.protocol === 'https:' ? 443 : 80)}`;
    const headers: http.OutgoingHttpHeaders = { host: authority };
    if (proxyUrl.username) {
      const credentials = `${decodeURIComponent(proxyUrl.username)}:${decodeURIComponent(proxyUrl.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    tunnel = http.request({ host: proxyUrl.hostname, port: proxyUrl.port || 80, method: 'CONNECT', path: authority, headers });
    tunnel.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        finish(new CaFetchError(original, 'offline', `the proxy ${proxyUrl.host} refused to connect to ${authority} (HTTP ${res.statusCode})`,
          { status: res.statusCode }));
        return;
      }
      send(socket);
    });
    tunnel.on('error', (e: NodeJS.ErrnoException) => {
      finish(networkError(original, `${url} (through the proxy ${proxyUrl.host})`, e, timedOut));
    });
    tunnel.end();
  });
}

/**
 * Stores a downloaded certificate in the cache (creating its directory), as every output is
 * written (lib/output-files): readers see the old file or the whole new one. Best effort: a
 * cache that cannot be written costs a download next time, nothing more.
 */
export function writeCacheFile(file: string, data: Uint8Array): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // A cache entry is verified when read and fetched again when missing: no fsync (it costs
    // more than the fetch on loopback), but still temp + rename, so never half a file.
    writeOutputFiles('kds-cache', [{ path: file, data, durable: false }]);
  } catch {
    /* not cached */
  }
}
