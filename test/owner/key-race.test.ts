// Issue 15's key file race: another user polling the output paths while `sev generate` and
// `sev session` write never opens a key. The poller runs as `nobody` and, as fast as it can, lists
// the directory and tries to open every entry and every known output name (the keys, the TEK and
// TIK, and the public outputs beside them), temporary names included. Secrets are created 0600
// from the start (lib/output-files.ts), so every open of a key must fail; opens of the public
// outputs must succeed, which proves the poller really ran and could see the files.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevCertificate, Usage } from '../../lib/certs/index';
import { sev, skipBecause } from '../helpers/env';

const RUNS = 50;
const NOBODY = 65534;

/** A command prefix that runs as another uid, or why there is none here. */
function asOtherUser(): string[] | string {
  if (process.getuid?.() !== 0) return 'not root: cannot start a poller as another user';
  const candidates = [
    ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'],
    ['runuser', '-u', 'nobody', '--'],
  ];
  for (const prefix of candidates) {
    const r = spawnSync(prefix[0], [...prefix.slice(1), 'id', '-u'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === String(NOBODY)) return prefix;
  }
  return 'neither setpriv nor runuser can run a command as nobody';
}

/**
 * The poller (as nobody): loops until SIGTERM, then prints its counts as JSON. Names are keys when
 * they are, or are the temporary file of, oca.key, vm_tek.bin or vm_tik.bin.
 */
const POLLER = `
const fs = require('fs'), path = require('path');
const dir = process.argv[1];
const known = ['oca.key', 'oca.cert', 'vm_tek.bin', 'vm_tik.bin', 'vm_godh.b64', 'vm_session.b64', 'pdh.cert'];
const isKey = (n) => /^\\.?(oca\\.key|vm_tek\\.bin|vm_tik\\.bin)(\\.sev-\\d+-[0-9a-f]+\\.tmp)?$/.test(n);
const c = { attempts: 0, keyAttempts: 0, keyDenied: 0, keyOpens: 0, keyOpenNames: [], publicOpens: 0, listings: 0, tempsSeen: 0 };
let stop = false;
process.on('SIGTERM', () => { stop = true; });
function tryOpen(name) {
  const key = isKey(name);
  c.attempts++;
  if (key) c.keyAttempts++;
  let fd;
  try {
    fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (e) {
    if (key && e.code === 'EACCES') c.keyDenied++;
    return;
  }
  fs.closeSync(fd);
  if (key) { c.keyOpens++; if (c.keyOpenNames.length < 10) c.keyOpenNames.push(name); } else c.publicOpens++;
}
function loop() {
  for (let i = 0; i < 200; i++) {
    for (const n of known) tryOpen(n);
    let names = [];
    try { names = fs.readdirSync(dir); c.listings++; } catch {}
    for (const n of names) if (n.endsWith('.tmp')) { c.tempsSeen++; tryOpen(n); }
  }
  if (stop) { process.stdout.write(JSON.stringify(c) + '\\n'); return; }
  setImmediate(loop); // lets SIGTERM in
}
process.stdout.write('ready\\n');
loop();
`;

describe('key files: another user polling the outputs never opens a key', function () {
  this.timeout(600_000);
  let dir: string;
  let prefix: string[];

  before(function () {
    const who = asOtherUser();
    if (typeof who === 'string') skipBecause(this, who);
    prefix = who;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-key-race-'));
    // The poller can list the directory and open anything its mode lets it open.
    fs.chmodSync(dir, 0o755);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`sev generate and sev session, ${RUNS} times each`, async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pdh = path.join(dir, 'pdh.cert');
    fs.writeFileSync(pdh, SevCertificate.create({ usage: Usage.PDH, publicKey }).toBuffer(), { mode: 0o644 });

    const poller = spawn(prefix[0], [...prefix.slice(1), process.execPath, '-e', POLLER, dir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    poller.stdout.on('data', (d) => (out += d));
    poller.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => poller.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (out.startsWith('ready')) {
          clearInterval(t);
          resolve();
        } else if (poller.exitCode !== null) {
          clearInterval(t);
          reject(new Error(`the poller did not start: ${err}`));
        }
      }, 20);
    });

    for (let i = 0; i < RUNS; i++) {
      const g = sev(['generate', path.join(dir, 'oca.cert'), path.join(dir, 'oca.key')]);
      assert.equal(g.status, 0, g.stderr);
      const s = sev(['session', '--name', path.join(dir, 'vm'), pdh, '0x1']);
      assert.equal(s.status, 0, s.stderr);
    }

    poller.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    const counts = JSON.parse(out.split('\n')[1]) as Record<string, number>;
    console.log(`      poller (uid ${NOBODY}): ${JSON.stringify(counts)}`);
    assert.equal(counts.keyOpens, 0, `the poller opened a key: ${JSON.stringify(counts)}`);
    // It really polled: it listed the directory, opened the public outputs, and was refused the keys.
    assert.ok(counts.attempts > 0 && counts.listings > 0, JSON.stringify(counts));
    assert.ok(counts.publicOpens > 0, `no public output opened: ${JSON.stringify(counts)}`);
    assert.ok(counts.keyDenied > 0, `never found a key file to be refused: ${JSON.stringify(counts)}`);
  });
});
