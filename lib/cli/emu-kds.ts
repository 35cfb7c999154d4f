// The emulated AMD Key Distribution Service: `sev-emu kds`, or started by `sev-emu run --kds`.
// An HTTP server on loopback with KDS's URLs (VCEK certificate and KDS interface spec, pub.
// 57230) serving what AMD's KDS would serve for the emulated platform of one state directory:
//   GET /vcek/v1/{Milan|Genoa|Turin}/{hwid}?[fmcSPL=&]blSPL=&teeSPL=&snpSPL=&ucodeSPL=   VCEK (DER)
//   GET /vcek/v1/{product}/cert_chain    ASK then ARK (PEM)
//   GET /vcek/v1/{product}/crl           the ARK's CRL (DER)
//   GET /cek/id/{chip id hex}            the SEV CEK signed by the ASK (sevctl's `export --full`)
//   GET /ask_ark_{generation}.cert       the SEV ASK ‖ ARK (AMD's developer download)
//   GET /sev-emu/info                    JSON: generation, product, the ARK's SPKI SHA-256
// and KDS's rate limiting: above --rate-limit requests per second, 429 with Retry-After.
// The certificates come from the emulator itself (native/emu/kds_files.h): this server runs with
// the emulator preloaded and reads them under /dev/sev-emu/kds/.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createInterface } from 'node:readline';

import { arkFingerprint, parseAskArk } from '../certs';
import { encodeTcbVersion, type SnpGeneration } from '../snp/report';

const BACKEND = '/dev/sev-emu/kds';
const PRODUCTS: Record<string, SnpGeneration> = { Milan: 'milan', Genoa: 'genoa', Turin: 'turin' };

export interface KdsServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Requests per second before answering 429 (KDS throttles too); 0 = no limit. Default 20. */
  rateLimit?: number;
  /** One line per request (method, path, status). */
  log?: (line: string) => void;
}

class HttpAnswer {
  constructor(readonly status: number, readonly body: Buffer | string, readonly contentType = 'text/plain; charset=utf-8',
    readonly retryAfter?: number) {}
}

const notFound = (what: string) => new HttpAnswer(404, `${what}\n`);

/** A file the emulator serves under /dev/sev-emu/kds, or null when it answers ENOENT. */
function backend(rel: string): Buffer | null {
  try {
    return fs.readFileSync(`${BACKEND}/${rel}`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

interface PlatformInfo {
  generation: string;
  product: string;
  arkFingerprint: string;
}

function platformInfo(): PlatformInfo {
  const info = backend('info');
  if (!info) throw new Error(`${BACKEND} is not there: run this server under sev-emu with SEV_EMU_KDS_BACKEND=1`);
  const fields = Object.fromEntries(info.toString('utf8').trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  const askArk = backend('ask_ark');
  if (!askArk) throw new Error('the emulator has no ask_ark');
  return { generation: fields.generation, product: fields.product, arkFingerprint: arkFingerprint(parseAskArk(askArk).ark) };
}

function vcek(product: string, hwid: string, query: URLSearchParams): HttpAnswer {
  const generation = PRODUCTS[product];
  if (!generation) return notFound(`unknown product ${product}`);
  if (!/^[0-9a-fA-F]+$/.test(hwid) || hwid.length !== (generation === 'turin' ? 16 : 128)) {
    return new HttpAnswer(400, `hwid must be ${generation === 'turin' ? 16 : 128} hex digits for ${product}\n`);
  }
  const names = { bootloader: 'blSPL', tee: 'teeSPL', snp: 'snpSPL', microcode: 'ucodeSPL', ...(generation === 'turin' ? { fmc: 'fmcSPL' } : {}) };
  const parts: Record<string, number> = {};
  for (const [part, param] of Object.entries(names)) {
    const value = query.get(param);
    if (value === null || !/^\d{1,3}$/.test(value) || Number(value) > 255) return new HttpAnswer(400, `${param} must be 0-255\n`);
    parts[part] = Number(value);
  }
  const tcb = encodeTcbVersion(parts as unknown as Parameters<typeof encodeTcbVersion>[0], generation);
  const der = backend(`vcek/${product}/${hwid.toLowerCase()}/${tcb.raw.toString(16)}`);
  return der ? new HttpAnswer(200, der, 'application/pkix-cert') : notFound(`no ${product} chip ${hwid}`);
}

function route(url: URL, info: PlatformInfo): HttpAnswer {
  const parts = url.pathname.split('/').filter(Boolean);
  if (url.pathname === '/sev-emu/info') return new HttpAnswer(200, JSON.stringify(info) + '\n', 'application/json');
  const askArk = /^\/ask_ark_([a-z]+)\.cert$/.exec(url.pathname);
  if (askArk) {
    if (askArk[1] !== info.generation) return notFound(`this emulated platform is ${info.generation}`);
    return new HttpAnswer(200, backend('ask_ark')!, 'application/octet-stream');
  }
  if (parts.length === 3 && parts[0] === 'cek' && parts[1] === 'id') {
    const cek = /^[0-9a-fA-F]{128}$/.test(parts[2]) ? backend(`cek/${parts[2]}`) : null;
    return cek ? new HttpAnswer(200, cek, 'application/octet-stream') : notFound(`no chip ${parts[2]}`);
  }
  if (parts.length === 4 && (parts[0] === 'vcek' || parts[0] === 'vlek') && parts[1] === 'v1') {
    const [endorser, , product, leaf] = parts;
    if (!PRODUCTS[product]) return notFound(`unknown product ${product}`);
    if (endorser === 'vlek') return notFound('the emulated platform has no VLEK (no ASVK chain)');
    if (leaf === 'cert_chain') {
      const pem = backend(`cert_chain/${product}`);
      return pem ? new HttpAnswer(200, pem, 'application/x-pem-file') : notFound(`this emulated platform is ${info.generation}`);
    }
    if (leaf === 'crl') {
      const crl = backend(`crl/${product}`);
      return crl ? new HttpAnswer(200, crl, 'application/pkix-crl') : notFound(`this emulated platform is ${info.generation}`);
    }
    return vcek(product, leaf, url.searchParams);
  }
  return notFound(`no such KDS resource ${url.pathname}`);
}

/** A token bucket: `perSecond` requests a second, bursts up to the same number. */
function rateLimiter(perSecond: number) {
  let tokens = perSecond;
  let last = Date.now();
  return (): number => {
    if (perSecond <= 0) return 0;
    const now = Date.now();
    tokens = Math.min(perSecond, tokens + ((now - last) / 1000) * perSecond);
    last = now;
    if (tokens >= 1) {
      tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - tokens) / perSecond)); // seconds until a token is back
  };
}

/** Serves the emulated KDS in this process (which must run under the emulator). */
export function serveKds(opts: KdsServerOptions = {}): Promise<{ server: http.Server; url: string; info: PlatformInfo }> {
  const info = platformInfo();
  const limited = rateLimiter(opts.rateLimit ?? 20);
  const server = http.createServer((req, res) => {
    const answer = ((): HttpAnswer => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return new HttpAnswer(405, 'GET only\n');
      const wait = limited();
      if (wait) return new HttpAnswer(429, 'Too Many Requests\n', undefined, wait);
      try {
        return route(new URL(req.url ?? '/', 'http://kds'), info);
      } catch (e) {
        return new HttpAnswer(500, `${(e as Error).message}\n`);
      }
    })();
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': answer.contentType, 'Content-Length': Buffer.byteLength(answer.body) };
    if (answer.retryAfter !== undefined) headers['Retry-After'] = String(answer.retryAfter);
    res.writeHead(answer.status, headers);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
    opts.log?.(`${req.method} ${req.url} ${answer.status}`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const a = server.address() as { address: string; port: number };
      resolve({ server, url: `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`, info });
    });
  });
}

/** A KDS server child process running under the emulator environment `env` (LD_PRELOAD, SEV_EMU_STATE). */
export interface KdsChild {
  url: string;
  info: PlatformInfo;
  child: ChildProcess;
  stop(): Promise<void>;
}

export function startKdsChild(env: NodeJS.ProcessEnv, opts: { port?: number; rateLimit?: number; host?: string; log?: boolean } = {}): Promise<KdsChild> {
  const args = [__filename, '--serve', '--port', String(opts.port ?? 0), '--host', opts.host ?? '127.0.0.1'];
  if (opts.rateLimit !== undefined) args.push('--rate-limit', String(opts.rateLimit));
  if (opts.log) args.push('--log');
  const child = spawn(process.execPath, args, { env: { ...env, SEV_EMU_KDS_BACKEND: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const onExit = (code: number | null) => reject(new Error(`the emulated KDS exited (${code}) before listening`));
    child.once('exit', onExit);
    child.once('error', reject);
    lines.once('line', (line) => {
      child.off('exit', onExit);
      const ready = JSON.parse(line) as { url: string; info: PlatformInfo };
      lines.on('line', (l) => process.stderr.write(`${l}\n`));
      const stop = () => new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      });
      resolve({ url: ready.url, info: ready.info, child, stop });
    });
  });
}

// The child: `node emu-kds.js --serve --port N --host H [--rate-limit N] [--log]`; its first
// stdout line is JSON { url, info }.
if (require.main === module) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const log = process.argv.includes('--log') ? (l: string) => process.stdout.write(`kds: ${l}\n`) : undefined;
  const rate = arg('--rate-limit');
  serveKds({ host: arg('--host'), port: Number(arg('--port') ?? 0), rateLimit: rate === undefined ? undefined : Number(rate), log })
    .then(({ url, info }) => {
      process.stdout.write(JSON.stringify({ url, info }) + '\n');
      process.on('SIGTERM', () => process.exit(0));
    })
    .catch((e) => {
      process.stderr.write(`sev-emu kds: ${(e as Error).message}\n`);
      process.exit(1);
    });
}

