// How commands write their outputs (lib/output-files.ts): secrets are 0600 from the moment the
// file exists, an existing file's mode or a symlink at the target is never reused or followed,
// two outputs on one path are refused before anything is written, and a failure leaves nothing.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevCertificate, Usage } from '../../lib/certs/index';
import { SECRET_MODE, writeOutputFiles } from '../../lib/output-files';
import { SevArgumentError } from '../../lib/errors';
import { SEV_BIN, sev, skipBecause } from '../helpers/env';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('output files: secrets, symlinks, partial writes', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-out-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sev generate: the key is 0600 even over an existing 0644 file; the same path twice is refused, writing nothing', () => {
    const key = path.join(dir, 'oca.key');
    fs.writeFileSync(key, 'old', { mode: 0o644 });
    fs.chmodSync(key, 0o644);
    const r = sev(['generate', path.join(dir, 'oca.cert'), key]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(mode(key), 0o600);
    assert.match(fs.readFileSync(key, 'utf8'), /BEGIN PRIVATE KEY/);

    const same = path.join(dir, 'same');
    const twice = sev(['generate', same, same]);
    assert.notEqual(twice.status, 0);
    assert.match(twice.stderr, /two outputs would be written to/);
    assert.equal(fs.existsSync(same), false, 'nothing written');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  });

  it('sev session: TEK/TIK replace a symlink instead of writing through it, and are 0600', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pdh = path.join(dir, 'pdh.cert');
    fs.writeFileSync(pdh, SevCertificate.create({ usage: Usage.PDH, publicKey }).toBuffer());
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'keep me', { mode: 0o644 });
    fs.symlinkSync(victim, path.join(dir, 'vm_tek.bin'));
    const r = sev(['session', '--name', path.join(dir, 'vm'), pdh, '0x1']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me', 'the symlink\'s target is untouched');
    assert.equal(fs.lstatSync(path.join(dir, 'vm_tek.bin')).isSymbolicLink(), false);
    for (const f of ['vm_tek.bin', 'vm_tik.bin']) {
      assert.equal(mode(path.join(dir, f)), 0o600, f);
      assert.equal(fs.statSync(path.join(dir, f)).size, 16, f);
    }
  });

  it('a failure part-way leaves every target as it was and no temporary files', () => {
    const a = path.join(dir, 'a');
    fs.writeFileSync(a, 'before');
    const blocked = path.join(dir, 'no-such-dir', 'b');
    assert.throws(() => writeOutputFiles('test', [{ path: a, data: 'after', mode: SECRET_MODE }, { path: blocked, data: 'x' }]), SevArgumentError);
    assert.equal(fs.readFileSync(a, 'utf8'), 'before');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a']);
    assert.throws(() => writeOutputFiles('test', [{ path: dir, data: 'x' }]), /is a directory/);
  });

  it('another user reading the key path while sev generate replaces a world-readable file there never reads a key', async function () {
    if (process.geteuid?.() !== 0) skipBecause(this, 'needs root to run the poller as another uid (65534)');
    fs.chmodSync(dir, 0o777); // the poller may look into the directory
    const key = path.join(dir, 'oca.key');
    const poller = spawn(process.execPath, ['-e', `
      const fs = require('fs'); let opened = 0, tries = 0; const end = Date.now() + 1e9;
      process.on('SIGTERM', () => { console.log(JSON.stringify({ opened, tries })); process.exit(0); });
      (function loop() { for (let i = 0; i < 200; i++) { tries++; try { if (fs.readFileSync(${JSON.stringify(key)}, 'utf8').includes('PRIVATE KEY')) opened++; } catch {} } setImmediate(loop); })();
    `], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    poller.stdout.on('data', (d) => (out += d));
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 5; i++) {
      // A stale, world-readable file at the path: the key must never be written into it.
      fs.writeFileSync(key, 'stale');
      fs.chmodSync(key, 0o644);
      const r = await new Promise<number | null>((resolve) => spawn(process.execPath, [SEV_BIN, 'generate', path.join(dir, 'oca.cert'), key]).on('exit', resolve));
      assert.equal(r, 0);
      fs.rmSync(key);
    }
    poller.kill('SIGTERM');
    await new Promise((r) => poller.on('exit', r));
    const { opened, tries } = JSON.parse(out) as { opened: number; tries: number };
    assert.ok(tries > 1000, `the poller ran (${tries} tries)`);
    assert.equal(opened, 0, 'another uid never read a private key');
  });
});
