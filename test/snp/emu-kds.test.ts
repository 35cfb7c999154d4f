// The emulated AMD KDS (lib/cli/emu-kds.ts over native/emu/kds_files): the project's own KDS
// client fetches from it as from AMD's — VCEKs for any TCB of the platform's chip, the
// cert_chain, the CRL, the SEV CEK and ask_ark — and every answer verifies against the state
// directory's emulated ARK, which nothing trusts unless told to. Turin's VCEK (8-byte hwID, FMC
// SPL) from a Turin platform; 404/400/405 and 429 with Retry-After as KDS answers them.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { arkFingerprint, CaFetchError, fetchAskArk, getCek, httpGet, Usage } from '../../lib/certs/index';
import { startKdsChild, type KdsChild } from '../../lib/cli/emu-kds';
import { SevPlatform } from '../../lib/platform';
import { checkSnpCrl, getCertChain, getCrl, getVcek, vcekExtensions, verifySnpChain } from '../../lib/snp/index';
import { emulated, SEV_BIN, SEV_EMU_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

/** GET_ID of the platform in `state` (created with `generation`), through `sev show identifier`. */
function chipIdOf(state: string, generation: string): Buffer {
  const r = spawnSync(process.execPath, [SEV_EMU_BIN, 'run', '--state', state, '--generation', generation, '--', process.execPath, SEV_BIN, 'show', 'identifier', '--json'],
    { encoding: 'utf8', env: { ...process.env, LD_PRELOAD: '', SEV_EMU_STATE: '' } });
  assert.equal(r.status, 0, r.stderr);
  return Buffer.from((JSON.parse(r.stdout) as { identifier: string }).identifier, 'hex');
}

describe('snp: the emulated KDS (sev-emu kds)', function () {
  this.timeout(120_000);
  let kds: KdsChild;
  let chipId: Buffer;
  let cacheDir: string;

  before(async function () {
    if (!emulated) skipBecause(this, 'the emulated KDS serves the emulator\'s platform: emulator only');
    const platform = SevPlatform.open();
    try {
      chipId = (await platform.getId()).subarray(0, 64);
    } finally {
      platform.close();
    }
    kds = await startKdsChild(process.env, { rateLimit: 0 });
  });
  after(async () => kds?.stop());
  beforeEach(() => {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'emu-kds-cache-'));
  });
  afterEach(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

  const trusted = () => ({ baseUrl: kds.url, trustedArks: [kds.info.arkFingerprint], cacheDir });

  it('says which platform it serves and the fingerprint of its ARK', () => {
    assert.equal(kds.info.generation, 'milan');
    assert.equal(kds.info.product, 'Milan');
    assert.match(kds.info.arkFingerprint, /^[0-9a-f]{64}$/);
  });

  it('serves a cert_chain that verifies only when its ARK is trusted explicitly', async () => {
    const chain = await getCertChain('milan', trusted());
    assert.equal(chain.ark.commonName, 'ARK-Milan');
    assert.equal(chain.ask.commonName, 'SEV-Milan');
    await assert.rejects(getCertChain('milan', { baseUrl: kds.url, cacheDir: null }), /not a pinned AMD SNP root/);
  });

  it('serves a VCEK for any TCB of this chip, with the TCB and hwID in its extensions, chained to the ARK', async () => {
    const chain = await getCertChain('milan', trusted());
    for (const tcb of [{ bootloader: 3, tee: 0, snp: 22, microcode: 213 }, { bootloader: 9, tee: 1, snp: 8, microcode: 115 }]) {
      const { vcek, bytes } = await getVcek('milan', chipId, tcb, trusted());
      const ext = vcekExtensions(bytes);
      assert.deepEqual(ext.tcb, tcb);
      assert.deepEqual(ext.hwId, chipId);
      assert.equal(ext.productName, 'Milan-B0');
      const report = verifySnpChain({ ark: chain.ark.der, ask: chain.ask.der, vcek: vcek.der }, { trustedArks: [kds.info.arkFingerprint] });
      assert.ok(report.ok, JSON.stringify(report.links));
    }
    // The same TCB again gives the same certificate (KDS issues one per chip and TCB).
    const a = await getVcek('milan', chipId, { bootloader: 1, tee: 2, snp: 3, microcode: 4 }, { ...trusted(), cacheDir: null });
    const b = await getVcek('milan', chipId, { bootloader: 1, tee: 2, snp: 3, microcode: 4 }, { ...trusted(), cacheDir: null });
    assert.deepEqual(a.bytes, b.bytes);
  });

  it('a cached VCEK is not fetched again', async () => {
    const tcb = { bootloader: 3, tee: 0, snp: 22, microcode: 213 };
    const first = await getVcek('milan', chipId, tcb, trusted());
    assert.ok(first.source.startsWith(kds.url), first.source);
    const second = await getVcek('milan', chipId, tcb, { ...trusted(), offline: true });
    assert.ok(second.source.startsWith('cache:'), second.source);
  });

  it('serves the ARK\'s CRL, signed by the ARK, revoking nothing', async () => {
    const chain = await getCertChain('milan', trusted());
    const { crl } = await getCrl('milan', trusted());
    const { vcek } = await getVcek('milan', chipId, { bootloader: 3, tee: 0, snp: 22, microcode: 213 }, trusted());
    const check = checkSnpCrl(crl, chain.ark.der, { ASK: chain.ask.der, VCEK: vcek.der });
    assert.ok(check.ok, JSON.stringify(check));
  });

  it('serves the SEV CEK (ASK-signed) and ask_ark for export --full', async () => {
    const cek = await getCek(chipId, { baseUrl: kds.url, cacheDir });
    assert.ok(cek.signatures.some((s) => s.usage === Usage.ASK));
    const askArk = await fetchAskArk('milan', { baseUrls: [kds.url], trustedArks: [kds.info.arkFingerprint], cacheDir: null });
    assert.equal(arkFingerprint(askArk.ark), kds.info.arkFingerprint, 'one ARK key for SEV and SNP, as AMD has');
    assert.equal(askArk.source, `${kds.url}/ask_ark_milan.cert`);
  });

  it('answers 404 for another chip or product, 400 for a malformed TCB, 405 for other methods', async () => {
    const other = Buffer.alloc(64, 0x11);
    await assert.rejects(getVcek('milan', other, { bootloader: 1, tee: 1, snp: 1, microcode: 1 }, { ...trusted(), cacheDir: null }),
      (e: unknown) => e instanceof CaFetchError && e.status === 404);
    await assert.rejects(getCertChain('genoa', { ...trusted(), cacheDir: null }), (e: unknown) => e instanceof CaFetchError && e.status === 404);
    const hwid = chipId.toString('hex');
    const bad = await fetch(`${kds.url}/vcek/v1/Milan/${hwid}?blSPL=3&teeSPL=0&snpSPL=300&ucodeSPL=1`);
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /snpSPL/);
    const post = await fetch(`${kds.url}/vcek/v1/Milan/cert_chain`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal((await fetch(`${kds.url}/vlek/v1/Milan/cert_chain`)).status, 404);
  });

  it('rate-limits with 429 and Retry-After, which the client waits out', async () => {
    const limited = await startKdsChild(process.env, { rateLimit: 1 });
    try {
      const url = `${limited.url}/vcek/v1/Milan/cert_chain`;
      const answers = await Promise.all([fetch(url), fetch(url), fetch(url)]);
      const throttled = answers.find((r) => r.status === 429);
      assert.ok(throttled, `statuses ${answers.map((r) => r.status).join(', ')}`);
      assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
      // The client retries after Retry-After.
      const body = await httpGet(url, { timeoutMs: 10_000 });
      assert.match(body.toString(), /BEGIN CERTIFICATE/);
    } finally {
      await limited.stop();
    }
  });

  it('a Turin platform: 8-byte hwID and the FMC SPL', async function () {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), 'emu-kds-turin-'));
    let turin: KdsChild | undefined;
    try {
      const id = chipIdOf(state, 'turin');
      turin = await startKdsChild({ ...process.env, SEV_EMU_STATE: state });
      assert.equal(turin.info.product, 'Turin');
      const opts = { baseUrl: turin.url, trustedArks: [turin.info.arkFingerprint], cacheDir: null };
      const tcb = { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 72 };
      const { bytes } = await getVcek('turin', id, tcb, opts);
      const ext = vcekExtensions(bytes);
      assert.deepEqual(ext.tcb, tcb);
      assert.deepEqual(ext.hwId, id.subarray(0, 8));
      assert.equal(ext.productName, 'Turin');
    } finally {
      await turin?.stop();
      fs.rmSync(state, { recursive: true, force: true });
    }
  });
});

describe('sev-emu run --kds: sev export --full, then sev verify, with no CA file', function () {
  this.timeout(120_000);

  it('the ASK/ARK come from the loopback KDS and verify because sev-emu named its ARK', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emu-kds-export-'));
    try {
      const chain = path.join(dir, 'full.cert');
      const script = `"${process.execPath}" "${SEV_BIN}" export --full "${chain}" --json && "${process.execPath}" "${SEV_BIN}" verify --sev "${chain}"`;
      const r = underFreshEmulator(['--kds'], ['sh', '-c', script]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const exported = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('\n}\n') + 2)) as { ca: { source: string } };
      assert.match(exported.ca.source, /^http:\/\/127\.0\.0\.1:\d+\/ask_ark_milan\.cert$/);
      assert.match(r.stdout, /ASK ⟶ CEK/);
      assert.equal(fs.statSync(chain).size, 4 * 2084 + 2 * 1600);
      // Without --kds nothing trusts the emulated ARK (and nothing is fetched from AMD offline).
      const plain = underFreshEmulator([], ['sh', '-c', `"${process.execPath}" "${SEV_BIN}" verify --sev "${chain}" --offline`]);
      assert.notEqual(plain.status, 0, plain.stdout);
      assert.match(plain.stdout + plain.stderr, /not .*trusted|not a pinned|untrusted/i);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sev-emu run --guest --kds: reports through /dev/sev-guest and configfs-tsm verify via the loopback KDS', function () {
  this.timeout(120_000);

  it('fetch ca and vcek from the KDS, then verify both reports, with the measurement the guest was launched with', function () {
    if (!emulated) skipBecause(this, 'needs sev-emu');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emu-guest-kds-'));
    try {
      const measurement = 'ab'.repeat(48);
      const sev = `"${process.execPath}" "${SEV_BIN}"`;
      const script = [
        `${sev} snp report r1.bin req1 --random --provider sev-guest`,
        `${sev} snp report r2.bin req2 --random --provider configfs-tsm`,
        `${sev} snp fetch ca --generation milan certs`,
        `${sev} snp fetch vcek r1.bin certs`,
        `${sev} snp verify attestation certs r1.bin --measurement ${measurement}`,
        `${sev} snp verify attestation certs r2.bin --measurement ${measurement} --report-data $(od -An -tx1 -v req2 | tr -d ' \\n')`,
      ].join(' && ');
      const r = underFreshEmulator(['--guest', '--kds', '--guest-measurement', measurement], ['sh', '-c', `cd "${dir}" && ${script}`]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal((r.stdout.match(/✅ SEV-SNP attestation \(milan, signed by the VCEK\)/g) ?? []).length, 2, r.stdout);
      assert.match(r.stdout, /ask\.pem \(from http:\/\/127\.0\.0\.1:\d+\/vcek\/v1\/Milan\/cert_chain\)/);
      // Another measurement is a failed policy check, naming the field.
      const bad = underFreshEmulator(['--guest', '--kds'], ['sh', '-c',
        `cd "${dir}" && ${sev} snp report r3.bin req3 --random && ${sev} snp fetch vcek r3.bin certs3 && ${sev} snp fetch ca --generation milan certs3 && ${sev} snp verify attestation certs3 r3.bin --measurement ${measurement}`]);
      assert.equal(bad.status, 1, bad.stdout + bad.stderr);
      assert.match(bad.stdout, /measurement/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
