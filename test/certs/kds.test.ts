// Getting the ASK/ARK and CEK: against a local HTTP(S) server on 127.0.0.1 (this machine has
// no internet), with the base URL injected; the offline, timeout, redirect, wrong-content and
// cache paths.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  askArkUrls,
  CaCertificate,
  CaFetchError,
  cachedAskArkPath,
  cekUrl,
  defaultCacheDir,
  fetchAskArk,
  fetchCek,
  getAskArk,
  getAskArkForCek,
  loadAskArkFile,
  snpCertChainUrl,
  Usage,
  type Generation,
} from '../../lib/certs/index';
import { SevCertificateError } from '../../lib/errors';
import { LoopbackKds, useLoopbackKds } from '../helpers/loopback-kds';
import { BUILTIN_GENERATIONS, readFixture, requireFixtures } from './fixtures';

function askArkBlob(gen: Generation): Buffer {
  return Buffer.concat([readFixture('builtin', gen, 'ask.cert'), readFixture('builtin', gen, 'ark.cert')]);
}

async function rejectsWith(p: Promise<unknown>, check: (e: CaFetchError) => void): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CaFetchError, `expected CaFetchError, got ${String(e)}`);
    assert.ok(e instanceof SevCertificateError);
    check(e);
    return true;
  });
}

describe('certs: AMD CA sources (local server)', function () {
  this.timeout(20_000);
  const suite = useLoopbackKds('node-sev-certs-', requireFixtures);
  let amd: LoopbackKds;
  let base: string;
  let cacheDir: string;
  let tmp: string;
  beforeEach(() => ({ kds: amd, base, cacheDir, tmp } = suite));

  it('builds the URLs the reference tools use', () => {
    assert.deepEqual(askArkUrls('rome'), [
      'https://download.amd.com/developer/eula/sev/ask_ark_rome.cert',
      'https://developer.amd.com/wp-content/resources/ask_ark_rome.cert',
    ]);
    const id = Buffer.alloc(128, 0xab);
    id[0] = 0x01;
    assert.equal(cekUrl(id), `https://kdsintf.amd.com/cek/id/01${'AB'.repeat(63)}`);
    assert.throws(() => cekUrl(Buffer.alloc(16)), SevCertificateError);
    assert.equal(snpCertChainUrl('genoa'), 'https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/node-sev/ca');
    assert.equal(defaultCacheDir({}), path.join(os.homedir(), '.cache', 'node-sev', 'ca'));
  });

  it('downloads, verifies against the pinned ARK, caches, then serves from the cache', async () => {
    amd.routes.set('/sev/ask_ark_rome.cert', { body: askArkBlob('rome') });
    const opts = { baseUrls: [`${base}/sev`], cacheDir };
    const fetched = await getAskArk('rome', opts);
    assert.equal(fetched.generation, 'rome');
    assert.equal(fetched.source, `${base}/sev/ask_ark_rome.cert`);
    assert.equal(fetched.ask.usage, Usage.ASK);
    assert.deepEqual(fs.readFileSync(cachedAskArkPath('rome', cacheDir)), askArkBlob('rome'));

    const cached = await getAskArk('rome', { ...opts, offline: true });
    assert.equal(cached.source, `cache:${cachedAskArkPath('rome', cacheDir)}`);
    assert.equal(amd.requests.length, 1, 'the second call did not touch the network');
  });

  it('falls back to the next base URL and follows redirects', async () => {
    amd.routes.set('/moved/ask_ark_naples.cert', { status: 302, location: '/real/naples.cert' });
    amd.routes.set('/real/naples.cert', { body: askArkBlob('naples') });
    const chain = await fetchAskArk('naples', { baseUrls: [`${base}/missing`, `${base}/moved`], cacheDir: null });
    assert.equal(chain.generation, 'naples');
    assert.deepEqual(amd.requests, ['/missing/ask_ark_naples.cert', '/moved/ask_ark_naples.cert', '/real/naples.cert']);
  });

  it('rejects wrong content and does not cache it: another generation, a foreign ARK, garbage', async () => {
    amd.routes.set('/a/ask_ark_rome.cert', { body: askArkBlob('milan') });
    await rejectsWith(fetchAskArk('rome', { baseUrls: [`${base}/a`], cacheDir }), (e) => {
      assert.equal(e.reason, 'invalid');
      assert.match(e.message, /milan ARK, not rome's/);
    });

    const arkKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ark = CaCertificate.create({ usage: Usage.ARK, publicKey: arkKey.publicKey }).signedBy(arkKey.privateKey);
    const ask = CaCertificate.create({ usage: Usage.ASK, publicKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, certifyingId: ark.keyId })
      .signedBy(arkKey.privateKey);
    const foreign = Buffer.concat([ask.toBuffer(), ark.toBuffer()]);
    amd.routes.set('/b/ask_ark_rome.cert', { body: foreign });
    await rejectsWith(fetchAskArk('rome', { baseUrls: [`${base}/b`], cacheDir }), (e) => assert.match(e.message, /not a pinned AMD ARK/));
    // ... unless the caller trusts that ARK explicitly.
    const trusted = await fetchAskArk('rome', { baseUrls: [`${base}/b`], cacheDir: null, trustedArks: [ark] });
    assert.equal(trusted.generation, undefined);

    amd.routes.set('/c/ask_ark_rome.cert', { body: Buffer.from('<html>maintenance</html>') });
    await rejectsWith(fetchAskArk('rome', { baseUrls: [`${base}/c`], cacheDir }), (e) => assert.equal(e.reason, 'invalid'));
    assert.equal(fs.existsSync(cachedAskArkPath('rome', cacheDir)), false);
  });

  it('offline: a typed error naming the URL and how to pass the file instead', async () => {
    await rejectsWith(getAskArk('genoa', { cacheDir, offline: true }), (e) => {
      assert.equal(e.reason, 'offline');
      assert.equal(e.url, 'https://download.amd.com/developer/eula/sev/ask_ark_genoa.cert');
      assert.match(e.message, /pass it as a file/);
      assert.match(e.message, new RegExp(cachedAskArkPath('genoa', cacheDir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    });
    // A closed port stands in for "no network".
    const closed = new LoopbackKds();
    const deadBase = await closed.listen();
    await closed.close();
    await rejectsWith(fetchAskArk('genoa', { baseUrls: [deadBase], cacheDir }), (e) => {
      assert.equal(e.reason, 'offline');
      assert.equal(e.url, `${deadBase}/ask_ark_genoa.cert`);
      assert.match(e.message, /ECONNREFUSED/);
      assert.match(e.message, /ask_ark_genoa\.cert \(ASK then ARK\) from AMD and pass it as a file/);
    });
  });

  it('times out on a server that never answers', async () => {
    amd.routes.set('/slow/ask_ark_turin.cert', 'hang');
    const started = Date.now();
    await rejectsWith(fetchAskArk('turin', { baseUrls: [`${base}/slow`], cacheDir, timeoutMs: 200 }), (e) => {
      assert.equal(e.reason, 'timeout');
      assert.match(e.message, /did not answer/);
    });
    assert.ok(Date.now() - started < 5000);
    amd.routes.set('/stall/ask_ark_turin.cert', { partial: askArkBlob('turin').subarray(0, 100) });
    await rejectsWith(fetchAskArk('turin', { baseUrls: [`${base}/stall`], cacheDir, timeoutMs: 200 }), (e) => assert.equal(e.reason, 'timeout'));
  });

  it('HTTP errors and oversized answers are typed errors', async () => {
    amd.routes.set('/e/ask_ark_milan.cert', { status: 503 });
    await rejectsWith(fetchAskArk('milan', { baseUrls: [`${base}/e`], cacheDir }), (e) => {
      assert.equal(e.reason, 'http');
      assert.equal(e.status, 503);
    });
    amd.routes.set('/big/ask_ark_milan.cert', { body: Buffer.alloc(4096) });
    await rejectsWith(fetchAskArk('milan', { baseUrls: [`${base}/big`], cacheDir, maxBytes: 1024 }), (e) => assert.equal(e.reason, 'too-large'));
  });

  it('a tampered cache file is ignored and replaced by a verified download', async () => {
    const file = cachedAskArkPath('milan', cacheDir);
    const tampered = askArkBlob('milan');
    tampered[100] ^= 1;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, tampered);
    await assert.rejects(getAskArk('milan', { cacheDir, offline: true }), SevCertificateError);
    amd.routes.set('/ask_ark_milan.cert', { body: askArkBlob('milan') });
    const chain = await getAskArk('milan', { baseUrls: [base], cacheDir });
    assert.equal(chain.source, `${base}/ask_ark_milan.cert`);
    assert.deepEqual(fs.readFileSync(file), askArkBlob('milan'));
  });

  it('finds the generation whose ASK signed a CEK; reads user files', async () => {
    for (const gen of BUILTIN_GENERATIONS) fs.writeFileSync(cachedAskArkPath(gen, cacheDir), askArkBlob(gen));
    for (const gen of ['naples', 'rome'] as const) {
      const chain = await getAskArkForCek(readFixture(gen, 'cek.cert'), { cacheDir, offline: true });
      assert.equal(chain.generation, gen);
    }
    const userFile = path.join(tmp, 'ask_ark_user.cert');
    fs.writeFileSync(userFile, askArkBlob('rome'));
    assert.equal(loadAskArkFile(userFile).generation, 'rome');
    assert.equal((await getAskArkForCek(readFixture('rome', 'cek.cert'), { file: userFile })).source, `file:${userFile}`);
    await assert.rejects(getAskArkForCek(readFixture('naples', 'cek.cert'), { file: userFile }), /no AMD CA chain verifies this CEK/);
    assert.throws(() => loadAskArkFile(path.join(tmp, 'nope.cert')), /cannot read/);
    assert.equal(amd.requests.length, 0);
  });

  it('fetches a CEK by chip id from the KDS path', async () => {
    const chipId = Buffer.alloc(64, 0x5a);
    amd.routes.set(`/cek/id/${'5A'.repeat(64)}`, { body: readFixture('rome', 'cek.cert') });
    const cek = await fetchCek(chipId, { baseUrl: base });
    assert.equal(cek.usage, Usage.CEK);
    amd.routes.set(`/cek/id/${'5A'.repeat(64)}`, { body: readFixture('rome', 'pek.cert') });
    await rejectsWith(fetchCek(chipId, { baseUrl: base }), (e) => assert.match(e.message, /not a CEK/));
    await rejectsWith(fetchCek(Buffer.alloc(64), { baseUrl: base }), (e) => {
      assert.equal(e.status, 404);
      assert.match(e.message, /pass it as a file/);
    });
  });
});

describe('certs: AMD CA sources over HTTPS (local server)', function () {
  this.timeout(20_000);
  let amd: LoopbackKds | undefined;
  let tmp: string;
  let certPem: Buffer;

  before(async function () {
    requireFixtures(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-sev-tls-'));
    const key = path.join(tmp, 'key.pem');
    const cert = path.join(tmp, 'cert.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
    if (r.status !== 0) {
      const why = `the openssl command could not make a test TLS certificate (${r.error?.message ?? r.stderr})`;
      if (process.env.CI) throw new Error(why);
      console.warn(`      skipped: ${why}`);
      this.skip();
    }
    certPem = fs.readFileSync(cert);
    amd = new LoopbackKds(https.createServer({ key: fs.readFileSync(key), cert: certPem }));
  });
  after(async () => {
    await amd?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('downloads over TLS with an injected root, and refuses an unknown certificate', async () => {
    const base = await amd!.listen();
    amd!.routes.set('/ask_ark_turin.cert', { body: askArkBlob('turin') });
    const chain = await fetchAskArk('turin', { baseUrls: [base], cacheDir: null, ca: certPem });
    assert.equal(chain.generation, 'turin');
    await rejectsWith(fetchAskArk('turin', { baseUrls: [base], cacheDir: null }), (e) => assert.equal(e.reason, 'tls'));
  });
});
