// A stand-in for AMD's servers on 127.0.0.1 (this machine has no internet): answers per path and
// query as a test sets them, counts requests; and mocha hooks giving a suite one such server, a
// temporary directory and a fresh cache directory per test.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** One answer: a status/body/headers (or a redirect), a server that never answers, or half a body. */
export type Reply =
  | { status?: number; body?: Buffer | string; headers?: Record<string, string>; location?: string }
  | 'hang'
  | { partial: Buffer };

export class LoopbackKds {
  /** By path+query; a list is consumed one reply per request, its last reply repeating. */
  routes = new Map<string, Reply | Reply[]>();
  requests: string[] = [];
  readonly server: http.Server | https.Server;
  private sockets = new Set<Socket>();

  constructor(server?: http.Server | https.Server) {
    this.server = server ?? http.createServer();
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.answer(req, res));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const key = req.url ?? '';
    this.requests.push(key);
    const route = this.routes.get(key);
    const reply = Array.isArray(route) ? (route.length > 1 ? route.shift()! : route[0]) : route ?? { status: 404, body: 'not found' };
    if (reply === 'hang') return;
    if ('partial' in reply) {
      res.writeHead(200, { 'content-length': String(reply.partial.length * 2) });
      res.write(reply.partial); // ... and never the rest
      return;
    }
    if (reply.location) res.setHeader('location', reply.location);
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/octet-stream', ...reply.headers });
    res.end(reply.body);
  }

  /** Sets the replies for a full URL (its path and query). */
  set(url: string, ...replies: Reply[]): void {
    const u = new URL(url);
    this.routes.set(u.pathname + u.search, replies);
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const proto = this.server instanceof https.Server ? 'https' : 'http';
    return `${proto}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface KdsSuite {
  kds: LoopbackKds;
  base: string;
  tmp: string;
  /** A new empty directory for each test. */
  cacheDir: string;
}

/**
 * Registers before/after/beforeEach hooks: `prepare` runs first (to skip the suite), then an HTTP
 * server on loopback starts; every test starts with no routes, no requests and an empty cache dir.
 */
export function useLoopbackKds(tmpPrefix: string, prepare: (ctx: Mocha.Context) => void = () => undefined): KdsSuite {
  const suite = {} as KdsSuite;
  before(async function () {
    prepare(this);
    suite.kds = new LoopbackKds();
    suite.base = await suite.kds.listen();
    suite.tmp = fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  });
  after(async () => {
    await suite.kds?.close();
    if (suite.tmp) fs.rmSync(suite.tmp, { recursive: true, force: true });
  });
  beforeEach(() => {
    suite.kds.routes.clear();
    suite.kds.requests = [];
    suite.cacheDir = fs.mkdtempSync(path.join(suite.tmp, 'cache-'));
  });
  return suite;
}
