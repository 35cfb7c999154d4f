// Ownership end to end through the CLI, as an administrator would script it:
// generate → provision → show flags → export --full → verify → reset. Destructive: runs on the
// emulator, or on hardware with SEV_TEST_DESTRUCTIVE=1.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevCertificate, splitChainFile, Usage } from '../../lib/certs';
import { SevError } from '../../lib/errors';
import { SevPlatform } from '../../lib/platform';
import { createOca, provision, readOca, writeOca } from '../../lib/platform/ownership';
import { destructiveAllowed, emulated, requireSevDevice, run, sev, SEV_BIN, SEV_EMU_BIN, skipBecause } from '../helpers/env';

describe('ownership (generate, provision, verify, reset)', function () {
  let dir: string;
  let platform: SevPlatform;
  /** Flags that make the emulator's CA acceptable to verify/export (explicit trust). */
  let caFlags: string[] = [];

  before(function () {
    requireSevDevice(this);
    if (!destructiveAllowed) skipBecause(this, 'ownership changes the platform: set SEV_TEST_DESTRUCTIVE=1 on hardware');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-owner-'));
    platform = SevPlatform.open();
    if (emulated) {
      const ca = path.join(dir, 'emu_ask_ark.cert');
      const r = run(process.execPath, [SEV_EMU_BIN, 'ca', ca]);
      assert.equal(r.status, 0, r.stderr);
      caFlags = ['--ca', ca, '--trust-ark', ca];
    }
  });
  after(() => {
    platform?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await platform.factoryReset();
  });

  it('generate → provision → owned → export --full → verify (OCA in the chain) → reset', async () => {
    const cert = path.join(dir, 'oca.cert');
    const key = path.join(dir, 'oca.key');
    let r = sev(['generate', cert, key]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.statSync(key).mode & 0o777, 0o600, 'private key mode 0600');
    assert.match(fs.readFileSync(key, 'utf8'), /BEGIN PRIVATE KEY/);
    assert.equal(fs.statSync(cert).size, 2084);

    assert.deepEqual(sev(['show', 'flags']).stdout.split('\n').filter((l) => l === 'owned'), []);
    r = sev(['provision', cert, key]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(sev(['show', 'flags']).stdout.split('\n').includes('owned'));
    assert.equal((await platform.status()).owned, true);

    const out = path.join(dir, 'full.cert');
    r = sev(['export', '--full', ...caFlags, out, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const chain = splitChainFile(fs.readFileSync(out));
    assert.ok(chain.ask && chain.ark);
    assert.deepEqual(chain.oca, fs.readFileSync(cert), 'the exported OCA is ours');
    const pek = SevCertificate.parse(chain.pek);
    assert.ok(pek.verifySignature(SevCertificate.parse(chain.oca)).ok, 'our OCA signed the PEK');

    r = sev(['verify', '--sev', out, ...caFlags, '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.links.length, 7);
    assert.ok(report.links.every((l: { ok: boolean }) => l.ok));
    r = sev(['verify', ...caFlags]);
    assert.equal(r.status, 0, r.stdout + r.stderr);

    r = sev(['reset']);
    assert.equal(r.status, 0, r.stderr);
    const s = await platform.status();
    assert.equal(s.owned, false);
    const after = await platform.pdhCertExport();
    assert.notDeepEqual(after.oca, fs.readFileSync(cert), 'self-owned again: a firmware OCA');
    assert.equal(SevCertificate.parse(after.oca).usage, Usage.OCA);
  });

  it('without trusting the emulator CA, verify of an emulated chain fails and names the anchor', function () {
    if (!emulated) skipBecause(this, 'needs the emulator\'s (untrusted) CA');
    const out = path.join(dir, 'full2.cert');
    assert.equal(sev(['export', '--full', ...caFlags, out]).status, 0);
    const r = sev(['verify', '--sev', out, '--json']);
    assert.equal(r.status, 1);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, false);
    assert.equal(report.anchor.ok, false);
  });

  it('a second owner is refused with ALREADY_OWNED; the first stays', async () => {
    const first = createOca();
    await provision(platform, first);
    const second = createOca();
    await assert.rejects(provision(platform, second), (e: SevError) => e instanceof SevError && e.firmwareStatusName === 'ALREADY_OWNED');
    assert.deepEqual((await platform.pdhCertExport()).oca, first.cert.toBuffer());
  });

  it('the firmware rejects a PEK not signed by the given OCA, and a non-OCA certificate', async () => {
    const a = createOca();
    const b = createOca();
    const csr = SevCertificate.parse(await platform.pekCsr());
    const signedByA = csr.signedBy({ privateKey: a.privateKey, usage: Usage.OCA }, 0);
    await assert.rejects(platform.pekCertImport(signedByA.toBuffer(), b.cert.toBuffer()), (e: SevError) =>
      ['INVALID_CERTIFICATE', 'BAD_SIGNATURE'].includes(e.firmwareStatusName ?? ''));
    const pdh = (await platform.pdhCertExport()).pdh;
    await assert.rejects(platform.pekCertImport(signedByA.toBuffer(), pdh), (e: SevError) => e.firmwareStatusName === 'INVALID_CERTIFICATE');
    assert.equal((await platform.status()).owned, false);
  });

  it('PEK_GEN makes an owned platform self-owned again', async () => {
    await provision(platform, createOca());
    assert.equal((await platform.status()).owned, true);
    await platform.pekGen();
    assert.equal((await platform.status()).owned, false);
  });

  it('provision with a key that does not match the certificate fails before touching the platform', () => {
    const a = createOca();
    const b = createOca();
    const cert = path.join(dir, 'a.cert');
    const key = path.join(dir, 'b.key');
    writeOca(a, cert, path.join(dir, 'a.key'));
    writeOca(b, path.join(dir, 'b.cert'), key);
    assert.throws(() => readOca(cert, key), /does not belong/);
    const r = sev(['provision', cert, key, '--json']);
    assert.equal(r.status, 1);
    assert.match(JSON.parse(r.stdout).error.message, /does not belong/);
  });

  it('concurrent provisioning from 4 processes leaves exactly one owner', async () => {
    const pairs = [0, 1, 2, 3].map((i) => {
      const cert = path.join(dir, `c${i}.cert`);
      const key = path.join(dir, `c${i}.key`);
      writeOca(createOca(), cert, key);
      return { cert, key };
    });
    const results = await Promise.all(
      pairs.map(
        (p) =>
          new Promise<{ code: number | null; out: string }>((resolve) => {
            const child = spawn(process.execPath, [SEV_BIN, 'provision', p.cert, p.key, '--json'], { env: process.env });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.on('close', (code) => resolve({ code, out }));
          }),
      ),
    );
    const winners = results.filter((r) => r.code === 0);
    assert.equal(winners.length, 1, JSON.stringify(results));
    for (const loser of results.filter((r) => r.code !== 0)) {
      assert.equal(JSON.parse(loser.out).error.firmwareStatus, 'ALREADY_OWNED');
    }
    const winner = pairs[results.indexOf(winners[0])];
    assert.deepEqual((await platform.pdhCertExport()).oca, fs.readFileSync(winner.cert));
  });
});
