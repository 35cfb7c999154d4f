// The SNP side of the KDS client, against a KDS on loopback that serves the real Milan fixtures
// (../shared/fixtures/snp) at KDS's URLs: VCEK by chip id + TCB computed from the real report,
// cert_chain, a CRL made here with openssl (signed by a test ARK, since AMD's CRLs are not in the
// fixtures); 429 + Retry-After, HTML answered with 200, offline, the cache, a CONNECT proxy,
// timeouts; `sev snp fetch` end to end; the CRL link of verifyAttestation.
import * as assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { CaFetchError, cachedCekPath, getCek, httpGet, proxyFor, retryAfterMs, Usage } from '../../lib/certs/index';
import { SevCertificateError } from '../../lib/errors';
import {
  certChainUrl, checkSnpCrl, crlUrl, getCertChain, getCrl, getVcek, getVcekForReport, kdsCachePath, kdsHwid,
  parseAttestationReport, parseSnpCrl, vcekUrl, verifyAttestation,
} from '../../lib/snp/index';
import { fixturesDir, SEV_BIN, skipBecause } from '../helpers/env';
import { LoopbackKds, useLoopbackKds } from '../helpers/loopback-kds';

const SNP = path.join(fixturesDir(), 'snp');
const read = (...p: string[]) => fs.readFileSync(path.join(SNP, ...p));

/** A CONNECT proxy on 127.0.0.1 that records the authorities it tunnels to. */
async function connectProxy(): Promise<{ url: string; tunnels: string[]; close: () => Promise<void> }> {
  const tunnels: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    let connected = false;
    const upstream = net.connect(Number(port), host, () => {
      connected = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => {
      if (!connected) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
}

const PSS = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48', '-sigopt', 'rsa_mgf1_md:sha384'];

/** A test ARK (RSA, RSASSA-PSS SHA-384 self-signed) and a CRL it signs revoking `serials` (hex). */
function makeCrl(dir: string, serials: string[], validity = ['-crldays', '30']): { arkPem: Buffer; crlDer: Buffer } {
  fs.mkdirSync(dir, { recursive: true });
  // A second CRL in the same directory is signed by the same test ARK.
  if (!fs.existsSync(path.join(dir, 'ark.key'))) openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ark.key', '-out', 'ark.pem', '-subj', '/CN=ARK-Test',
    '-days', '2', '-sha384', ...PSS], dir);
  const index = serials.map((s) => `R\t300101000000Z\t240101000000Z\t${s.length % 2 ? `0${s}` : s}\tunknown\t/CN=revoked-${s}\n`).join('');
  fs.writeFileSync(path.join(dir, 'index.txt'), index);
  fs.writeFileSync(path.join(dir, 'crlnumber'), '01\n');
  fs.writeFileSync(path.join(dir, 'ca.cnf'), `[ca]\ndefault_ca = test\n[test]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber\n` +
    'default_md = sha384\n');
  openssl(['ca', '-gencrl', '-config', 'ca.cnf', '-keyfile', 'ark.key', '-cert', 'ark.pem', '-md', 'sha384', ...validity, ...PSS, '-out', 'crl.pem'], dir);
  openssl(['crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der'], dir);
  return { arkPem: fs.readFileSync(path.join(dir, 'ark.pem')), crlDer: fs.readFileSync(path.join(dir, 'crl.der')) };
}

/** `sev ARGS` in a child process, asynchronously (the KDS answers from this process's event loop). */
function sevAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SEV_BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function rejectsWith(p: Promise<unknown>, reason: CaFetchError['reason'], message?: RegExp): Promise<CaFetchError> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof CaFetchError, `expected CaFetchError, got ${String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

const FAST_RETRY = { initialDelayMs: 20, maxDelayMs: 3000, maxTotalMs: 5000 };

describe('snp: KDS client (loopback KDS)', function () {
  this.timeout(60_000);
  let report: ReturnType<typeof parseAttestationReport>;
  let vcekDer: Buffer;
  let chainPem: Buffer;
  const suite = useLoopbackKds('node-sev-snp-kds-', (ctx) => {
    if (!fs.existsSync(path.join(SNP, 'milan', 'report.bin'))) skipBecause(ctx, `the SNP fixtures are not in ${SNP} (set SEV_FIXTURES)`);
    report = parseAttestationReport(read('milan', 'report.bin'));
    vcekDer = read('milan', 'vcek.der');
    chainPem = read('milan', 'cert_chain.pem');
  });
  let kds: LoopbackKds;
  let base: string;
  let tmp: string;
  let cacheDir: string;
  beforeEach(() => ({ kds, base, tmp, cacheDir } = suite));

  it('builds KDS URLs: hwid per generation, two-digit SPLs, fmcSPL on Turin', () => {
    const chip = Buffer.alloc(64);
    for (let i = 0; i < 64; i++) chip[i] = i;
    const tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: 1 };
    assert.equal(vcekUrl('milan', chip, tcb), `https://kdsintf.amd.com/vcek/v1/Milan/${chip.toString('hex')}?blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115`);
    assert.equal(vcekUrl('turin', chip, tcb, 'http://x/'), 'http://x/vcek/v1/Turin/0001020304050607?fmcSPL=01&blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115');
    assert.equal(kdsHwid('genoa', chip), chip.toString('hex'));
    assert.throws(() => vcekUrl('turin', chip, { ...tcb, fmc: undefined }), /fmc must be 0-255/);
    assert.throws(() => kdsHwid('milan', chip.subarray(0, 8)), /at least 64 bytes/);
    assert.equal(certChainUrl('genoa', 'vlek'), 'https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain');
    assert.equal(crlUrl('turin'), 'https://kdsintf.amd.com/vcek/v1/Turin/crl');
    // The cache is keyed like KDS: product, hwid and TCB.
    assert.equal(kdsCachePath(vcekUrl('milan', chip, tcb), '/c', 'der'),
      `/c/kds/vcek/v1/Milan/${chip.toString('hex')},blSPL=03,teeSPL=00,snpSPL=08,ucodeSPL=115.der`);
    assert.equal(kdsCachePath(crlUrl('milan'), '/c', 'der'), '/c/kds/vcek/v1/Milan/crl.der');
  });

  it('Retry-After: delta-seconds and HTTP dates; proxies from the environment, NO_PROXY', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(retryAfterMs('soon'), undefined);
    assert.equal(retryAfterMs(undefined), undefined);
    const env = { HTTPS_PROXY: 'http://p:3128', http_proxy: 'http://q:8080', NO_PROXY: 'internal.example, .corp, 10.0.0.1:8443' };
    assert.equal(proxyFor('https://kdsintf.amd.com/vcek', env), 'http://p:3128');
    assert.equal(proxyFor('http://kdsintf.amd.com/vcek', env), 'http://q:8080');
    assert.equal(proxyFor('https://a.internal.example/', env), undefined);
    assert.equal(proxyFor('https://x.corp/', env), undefined);
    assert.equal(proxyFor('https://10.0.0.1:8443/', env), undefined);
    assert.equal(proxyFor('https://10.0.0.1/', env), 'http://p:3128');
    assert.equal(proxyFor('https://notinternal.example/', env), 'http://p:3128');
    assert.equal(proxyFor('https://kdsintf.amd.com/', { ...env, no_proxy: '*' }), undefined);
    assert.equal(proxyFor('https://kdsintf.amd.com/', {}), undefined);
    // Loopback never goes through a proxy from the environment (as in Go's net/http).
    for (const host of ['localhost:8080', '127.0.0.1', '[::1]:443']) assert.equal(proxyFor(`https://${host}/`, env), undefined, host);
  });

  it("fetches the real Milan report's VCEK by its chip id and TCB, caches it, then makes no request", async () => {
    const url = vcekUrl('milan', report.chipId, report.reportedTcb, base);
    kds.set(url, { body: vcekDer });
    const first = await getVcekForReport(read('milan', 'report.bin'), { baseUrl: base, cacheDir });
    assert.equal(first.source, url);
    assert.deepEqual(first.bytes, vcekDer);
    assert.equal(first.vcek.commonName, 'SEV-VCEK');
    const file = kdsCachePath(url, cacheDir, 'der');
    assert.deepEqual(fs.readFileSync(file), vcekDer);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp')), []);

    const second = await getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir });
    assert.equal(second.source, `cache:${file}`);
    assert.equal(kds.requests.length, 1, 'the cache answered the second time');
    // Another TCB is another key: a request, and a refusal of a VCEK for the wrong TCB.
    const other = { ...report.reportedTcb, snp: report.reportedTcb.snp + 1 };
    kds.set(vcekUrl('milan', report.chipId, other, base), { body: vcekDer });
    await rejectsWith(getVcek('milan', report.chipId, other, { baseUrl: base, cacheDir }), 'invalid', /TCB differs in snp/);
    assert.equal(kds.requests.length, 2);
    assert.equal(fs.existsSync(kdsCachePath(vcekUrl('milan', report.chipId, other, base), cacheDir, 'der')), false);
  });

  it('the chain: cert_chain verified against the pinned Milan ARK before it is used or cached', async () => {
    kds.set(certChainUrl('milan', 'vcek', base), { body: chainPem });
    const chain = await getCertChain('milan', { baseUrl: base, cacheDir });
    assert.equal(chain.ark.commonName, 'ARK-Milan');
    assert.equal(chain.ask.commonName, 'SEV-Milan');
    assert.equal((await getCertChain('milan', { baseUrl: base, cacheDir, offline: true })).source.startsWith('cache:'), true);
    assert.equal(kds.requests.length, 1);
    // The Turin bundle served as Milan's: not the pinned Milan root.
    const other = fs.mkdtempSync(path.join(tmp, 'cache-'));
    kds.set(certChainUrl('milan', 'vcek', base), { body: read('turin', 'cert_chain.pem') });
    await rejectsWith(getCertChain('milan', { baseUrl: base, cacheDir: other }), 'invalid', /AMD's turin root, expected milan/);
    assert.equal(fs.existsSync(kdsCachePath(certChainUrl('milan', 'vcek', base), other, 'pem')), false);
  });

  it('an HTML page served with 200 is refused, never cached, never written by `sev snp fetch`', async () => {
    const html = '<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>';
    for (const url of [vcekUrl('milan', report.chipId, report.reportedTcb, base), certChainUrl('milan', 'vcek', base), crlUrl('milan', 'vcek', base)]) {
      kds.set(url, { body: html, headers: { 'content-type': 'text/html' } });
    }
    await rejectsWith(getVcekForReport(report, { baseUrl: base, cacheDir }), 'invalid', /did not serve a milan VCEK/);
    await rejectsWith(getCertChain('milan', { baseUrl: base, cacheDir }), 'invalid', /did not serve/);
    await rejectsWith(getCrl('milan', { baseUrl: base, cacheDir }), 'invalid', /did not serve a milan CRL/);
    assert.deepEqual(fs.readdirSync(cacheDir), [], 'nothing cached');

    const out = path.join(tmp, 'out-html');
    const env = { XDG_CACHE_HOME: path.join(tmp, 'xdg-html') };
    for (const args of [['vcek', path.join(SNP, 'milan', 'report.bin'), out], ['ca', '--generation', 'milan', out], ['crl', '--generation', 'milan', out]]) {
      const r = await sevAsync(['snp', 'fetch', ...args, '--kds', base], env);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /did not serve/);
    }
    assert.equal(fs.existsSync(out), false, 'no output file, not even the directory');
  });

  it('HTTP 429: waits what Retry-After says (seconds or a date), then succeeds; gives up within the budget', async () => {
    const url = vcekUrl('milan', report.chipId, report.reportedTcb, base);
    kds.set(url, { status: 429, headers: { 'retry-after': '1' } }, { body: vcekDer });
    let started = Date.now();
    const got = await getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir: null, retry: FAST_RETRY });
    assert.deepEqual(got.bytes, vcekDer);
    assert.ok(Date.now() - started >= 950, `waited ${Date.now() - started} ms for Retry-After: 1`);
    assert.equal(kds.requests.length, 2);

    kds.requests = [];
    const date = new Date(Date.now() + 2000).toUTCString(); // one-second resolution: 1-2 s from now
    kds.set(url, { status: 429, headers: { 'retry-after': date } }, { body: vcekDer });
    started = Date.now();
    await getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir: null, retry: FAST_RETRY });
    assert.ok(Date.now() - started >= 900, `waited ${Date.now() - started} ms for an HTTP-date Retry-After`);

    // Without Retry-After: exponential backoff, at most maxAttempts requests.
    kds.requests = [];
    kds.set(url, { status: 429 });
    started = Date.now();
    await rejectsWith(getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir, retry: { ...FAST_RETRY, maxAttempts: 4 } }),
      'rate-limited', /HTTP 429/);
    assert.equal(kds.requests.length, 4);
    assert.ok(Date.now() - started >= 20 + 40 + 80, 'backed off 20, 40, 80 ms');
    // A server asking for more than the longest allowed wait: give up at once rather than retry early.
    kds.requests = [];
    kds.set(url, { status: 429, headers: { 'retry-after': '3600' } });
    await rejectsWith(getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir, retry: FAST_RETRY }), 'rate-limited', /Retry-After: 3600000 ms/);
    assert.equal(kds.requests.length, 1);
    assert.deepEqual(fs.readdirSync(cacheDir), []);
  });

  it('offline: only the cache; a typed error naming the URL without it; a corrupt cache entry is not used', async () => {
    const url = vcekUrl('milan', report.chipId, report.reportedTcb, base);
    await rejectsWith(getVcekForReport(report, { baseUrl: base, cacheDir, offline: true }), 'offline', /not cached .*pass it as a file/);
    await rejectsWith(getCrl('genoa', { baseUrl: base, cacheDir, offline: true }), 'offline', /genoa CRL is not cached/);
    const file = kdsCachePath(url, cacheDir, 'der');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, vcekDer);
    assert.equal((await getVcekForReport(report, { baseUrl: base, cacheDir, offline: true })).source, `cache:${file}`);
    fs.writeFileSync(file, '<html>cached error page</html>');
    await rejectsWith(getVcekForReport(report, { baseUrl: base, cacheDir, offline: true }), 'invalid', /cached milan VCEK .* is unusable/);
    // Online, the corrupt entry is replaced by a checked download.
    kds.set(url, { body: vcekDer });
    assert.equal((await getVcekForReport(report, { baseUrl: base, cacheDir })).source, url);
    assert.deepEqual(fs.readFileSync(file), vcekDer);
    assert.equal(kds.requests.length, 1);
  });

  it('times out on a KDS that never answers', async () => {
    const url = crlUrl('milan', 'vcek', base);
    kds.set(url, 'hang');
    const started = Date.now();
    await rejectsWith(getCrl('milan', { baseUrl: base, cacheDir, timeoutMs: 300 }), 'timeout', /did not answer/);
    assert.ok(Date.now() - started < 5000);
  });

  it('goes through an HTTP CONNECT proxy (loopback targets only when named explicitly)', async () => {
    const proxy = await connectProxy();
    try {
      const url = vcekUrl('milan', report.chipId, report.reportedTcb, base);
      kds.set(url, { body: vcekDer });
      const authority = new URL(base).host;
      const got = await getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir: null, proxy: proxy.url });
      assert.deepEqual(got.bytes, vcekDer);
      assert.deepEqual(proxy.tunnels, [authority]);
      assert.equal(kds.requests.length, 1);
      await getVcek('milan', report.chipId, report.reportedTcb, { baseUrl: base, cacheDir: null, env: { HTTP_PROXY: proxy.url } });
      assert.equal(proxy.tunnels.length, 1, 'loopback from the environment: direct');
      assert.equal(kds.requests.length, 2);
      // A proxy that refuses the tunnel.
      await rejectsWith(httpGet('http://127.0.0.1:1/crl', { proxy: proxy.url }), 'offline', /proxy 127\.0\.0\.1:\d+ refused to connect to 127\.0\.0\.1:1 \(HTTP 502\)/);
      // A dead proxy is an 'offline' error naming it.
      await rejectsWith(httpGet(url, { proxy: 'http://127.0.0.1:1' }), 'offline', /through the proxy 127\.0\.0\.1:1/);
    } finally {
      await proxy.close();
    }
  });

  it('SEV CEKs are cached by chip id too', async () => {
    const chipId = Buffer.alloc(64, 0x3c);
    const cek = fs.readFileSync(path.join(fixturesDir(), 'amd', 'rome', 'cek.cert'));
    kds.routes.set(`/cek/id/${'3C'.repeat(64)}`, [{ body: cek }]);
    assert.equal((await getCek(chipId, { baseUrl: base, cacheDir })).usage, Usage.CEK);
    assert.equal((await getCek(chipId, { baseUrl: base, cacheDir, offline: true })).usage, Usage.CEK);
    assert.equal(kds.requests.length, 1);
    assert.equal(fs.statSync(cachedCekPath(chipId, cacheDir)).mode & 0o777, 0o644);
    await rejectsWith(getCek(Buffer.alloc(64, 1), { baseUrl: base, cacheDir, offline: true }), 'offline', /CEK is not cached/);
  });

  describe('CRL', () => {
    let crlDir: string;
    let arkPem: Buffer;
    let crlDer: Buffer;
    const ask = () => new X509Certificate(read('milan', 'cert_chain.pem').toString().split(/(?<=-----END CERTIFICATE-----)/)[0]);

    before(() => {
      crlDir = path.join(tmp, 'crl');
      ({ arkPem, crlDer } = makeCrl(crlDir, [ask().serialNumber, '0123456789']));
    });

    it('parses issuer, dates and revoked serials; verifies with the ARK that signed it; finds revoked serials', () => {
      const crl = parseSnpCrl(crlDer);
      assert.equal(crl.revoked.length, 2);
      assert.deepEqual(crl.revoked.map((r) => r.serial).sort(), [ask().serialNumber.replace(/^0+/, ''), '123456789'].sort());
      assert.equal(crl.revoked[0].date.toISOString(), '2024-01-01T00:00:00.000Z');
      assert.ok(crl.nextUpdate && crl.nextUpdate.getTime() - crl.thisUpdate.getTime() === 30 * 86400_000);
      const vcek = vcekDer;
      const check = checkSnpCrl(crl, arkPem, { ASK: ask().raw, VCEK: vcek });
      assert.deepEqual(check, { ok: true, revoked: ['ASK'] });
      // The real Milan ARK did not issue it; a flipped signature bit fails; an expired one is reported.
      const realArk = read('amd', 'milan', 'ark.pem');
      assert.match(checkSnpCrl(crl, realArk, {}).problem ?? '', /issued by someone else than ARK-Milan/);
      const flipped = Buffer.from(crlDer);
      flipped[flipped.length - 5] ^= 1;
      assert.match(checkSnpCrl(flipped, arkPem, {}).problem ?? '', /bad CRL signature/);
      assert.match(checkSnpCrl(crl, arkPem, {}, new Date(Date.now() + 40 * 86400_000)).problem ?? '', /expired/);
      assert.throws(() => parseSnpCrl(Buffer.from('<html></html>')), SevCertificateError);
      assert.throws(() => parseSnpCrl(crlDer.subarray(0, 100)), SevCertificateError);
      // PEM is read as well.
      assert.deepEqual(parseSnpCrl(fs.readFileSync(path.join(crlDir, 'crl.pem'))).tbs, crl.tbs);
    });

    it('verifyAttestation: a CRL adds an ARK ⟶ CRL link (here not AMD-signed: it fails, the rest still verifies)', () => {
      const { ask: askCert, ark } = { ask: ask().raw, ark: read('amd', 'milan', 'ark.pem') };
      const input = { report: read('milan', 'report.bin'), vcek: vcekDer, ask: askCert, ark };
      const plain = verifyAttestation(input);
      assert.equal(plain.ok, true);
      assert.equal(plain.links.some((l) => l.check === 'revocation'), false, 'no CRL, no link');
      const withCrl = verifyAttestation({ ...input, crl: crlDer });
      assert.equal(withCrl.ok, false);
      const link = withCrl.links[withCrl.links.length - 1];
      assert.equal(link.check, 'revocation');
      assert.match(link.reason ?? '', /issued by someone else than ARK-Milan; the ASK is revoked/);
      assert.deepEqual(withCrl.links.slice(0, -1), plain.links);
      assert.match(verifyAttestation({ ...input, crl: Buffer.from('garbage') }).links.at(-1)?.reason ?? '', /CRL not usable/);
      // With the ARK that signed it and a CRL that lists neither the ASK nor the VCEK, the link holds
      // (the chain does not: that test ARK did not sign AMD's ASK).
      const clean = makeCrl(crlDir, ['0ABC']);
      const testArk = verifyAttestation({ ...input, ark: clean.arkPem, crl: clean.crlDer });
      assert.deepEqual(testArk.links.at(-1), { signer: 'ARK', subject: 'CRL', check: 'revocation', ok: true });
      assert.equal(testArk.links[0].ok, false);
    });

    it('getCrl: fetched, cached by product, refetched once expired (unless offline)', async () => {
      const url = crlUrl('milan', 'vcek', base);
      kds.set(url, { body: crlDer, headers: { 'content-type': 'application/pkix-crl' } });
      const got = await getCrl('milan', { baseUrl: base, cacheDir });
      assert.equal(got.crl.revoked.length, 2);
      assert.equal((await getCrl('milan', { baseUrl: base, cacheDir })).source, `cache:${kdsCachePath(url, cacheDir, 'der')}`);
      assert.equal(kds.requests.length, 1);
      const expired = makeCrl(path.join(tmp, 'crl-expired'), ['01'], ['-crlsec', '1']).crlDer;
      fs.writeFileSync(kdsCachePath(url, cacheDir, 'der'), expired);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      assert.equal((await getCrl('milan', { baseUrl: base, cacheDir, offline: true })).crl.revoked.length, 1);
      assert.equal((await getCrl('milan', { baseUrl: base, cacheDir })).source, url);
      assert.equal(kds.requests.length, 2);
    });

    it('sev snp fetch ca|vcek|crl: files from KDS, then from the cache with --offline; --json', async () => {
      kds.set(vcekUrl('milan', report.chipId, report.reportedTcb, base), { body: vcekDer });
      kds.set(certChainUrl('milan', 'vcek', base), { body: chainPem });
      kds.set(crlUrl('milan', 'vcek', base), { body: crlDer });
      const env = { XDG_CACHE_HOME: path.join(tmp, 'xdg') };
      const out = path.join(tmp, 'out');
      const reportFile = path.join(SNP, 'milan', 'report.bin');
      for (const args of [['ca', '--generation', 'milan', out], ['vcek', reportFile, out], ['crl', '--generation', 'milan', out]]) {
        const r = await sevAsync(['snp', 'fetch', ...args, '--kds', base], env);
        assert.equal(r.status, 0, r.stderr);
      }
      assert.equal(kds.requests.length, 3);
      assert.deepEqual(fs.readFileSync(path.join(out, 'vcek.der')), vcekDer);
      assert.deepEqual(fs.readFileSync(path.join(out, 'crl.der')), crlDer);
      assert.match(new X509Certificate(fs.readFileSync(path.join(out, 'ark.pem'))).subject, /^CN=ARK-Milan$/m);
      assert.equal(new X509Certificate(fs.readFileSync(path.join(out, 'ask.pem'))).serialNumber, ask().serialNumber);
      // What was fetched verifies the report (snpguest's CERTS_DIR form).
      const verify = await sevAsync(['snp', 'verify', 'attestation', out, reportFile], env);
      assert.equal(verify.status, 0, verify.stdout + verify.stderr);
      // ... and with --crl, the (test-signed) CRL is checked: its link fails, naming the revoked ASK.
      const withCrl = await sevAsync(['snp', 'verify', 'attestation', out, reportFile, '--crl', path.join(out, 'crl.der')], env);
      assert.equal(withCrl.status, 1);
      assert.match(withCrl.stdout, /❌ ARK ⟶ CRL \(nothing in the chain revoked\): the CRL is issued by someone else than ARK-Milan; the ASK is revoked/);
      assert.match(withCrl.stdout, /✅ VCEK ⟶ REPORT/);

      const out2 = path.join(tmp, 'out2');
      const r = await sevAsync(['--json', 'snp', 'fetch', 'vcek', reportFile, out2, '--offline', '--kds', base], env);
      assert.equal(r.status, 0, r.stderr);
      assert.match((JSON.parse(r.stdout) as { files: { source: string }[] }).files[0].source, /^cache:/);
      assert.equal(kds.requests.length, 3, '--offline made no request');
      const none = await sevAsync(['snp', 'fetch', 'crl', '--generation', 'genoa', out2, '--offline', '--kds', base], env);
      assert.equal(none.status, 1);
      assert.match(none.stderr, /offline: the genoa CRL is not cached/);
      const usage = await sevAsync(['snp', 'fetch', 'ca', out2], env);
      assert.equal(usage.status, 2);
      assert.match(usage.stderr, /--generation milan\|genoa\|turin is required/);
    });
  });
});

describe('snp: KDS client over HTTPS through a CONNECT proxy', function () {
  this.timeout(60_000);
  let tmp: string;

  before(function () {
    if (!fs.existsSync(path.join(SNP, 'milan', 'cert_chain.pem'))) skipBecause(this, `the SNP fixtures are not in ${SNP} (set SEV_FIXTURES)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-sev-snp-tls-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('TLS runs end to end inside the tunnel and is checked against the given root', async () => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'key.pem', '-out', 'cert.pem'], tmp);
    const cert = fs.readFileSync(path.join(tmp, 'cert.pem'));
    const kds = new LoopbackKds(https.createServer({ key: fs.readFileSync(path.join(tmp, 'key.pem')), cert }));
    const base = await kds.listen();
    const proxy = await connectProxy();
    try {
      kds.set(certChainUrl('milan', 'vcek', base), { body: read('milan', 'cert_chain.pem') });
      const env = { proxy: proxy.url };
      const chain = await getCertChain('milan', { baseUrl: base, cacheDir: null, ...env, ca: cert });
      assert.equal(chain.ark.commonName, 'ARK-Milan');
      assert.deepEqual(proxy.tunnels, [new URL(base).host]);
      await rejectsWith(getCertChain('milan', { baseUrl: base, cacheDir: null, ...env }), 'tls');
      assert.equal(proxy.tunnels.length, 2);
      assert.equal(kds.requests.length, 1, 'the request without the root never reached the server');
    } finally {
      await proxy.close();
      await kds.close();
    }
  });
});
