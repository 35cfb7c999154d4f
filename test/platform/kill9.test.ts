// Processes killed with SIGKILL in the middle of mixed commands on one emulated platform: the NV
// state is never corrupt, and no temporary file outlives the next command — the emulator's
// (NAME.tmp.PID.TID, staged NAME.new) in the state directory, and the CLI's
// (.NAME.sev-PID-RANDOM.tmp) beside its outputs. SEV_KILL9_ROUNDS sets the number of kills
// (default 200; `npm run fuzz` is where longer stress runs belong).
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { emulated, ROOT, SEV_BIN, skipBecause } from '../helpers/env';

const KILLS = Number(process.env.SEV_KILL9_ROUNDS ?? 200);
const LANES = 3;
const LIB = JSON.stringify(path.join(ROOT, 'dist', 'lib', 'index.js'));

describe('emulator: kill -9 during mixed commands on one platform', function () {
  this.timeout(180_000);
  let root: string;
  let state: string;
  let out: string;

  before(function () {
    if (!emulated) skipBecause(this, 'the NV state directory is the emulator\'s');
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-kill9-'));
    state = path.join(root, 'state');
    out = path.join(root, 'out');
    fs.mkdirSync(out);
  });
  after(() => root && fs.rmSync(root, { recursive: true, force: true }));

  // This process's emulator (LD_PRELOAD from sev-emu run) on a state directory of its own.
  const env = () => ({ ...process.env, SEV_EMU_STATE: state });
  const sev = (args: string[]) => [process.execPath, SEV_BIN, ...args];
  // A loop of NV-changing commands: many commits per process, so kills land inside them.
  const churn = [process.execPath, '-e', `const p = require(${LIB}).SevPlatform.open();
    for (;;) { for (const f of ['pdhGenSync', 'pekGenSync', 'pdhGenSync']) { try { p[f](); } catch {} } }`];
  const commands = (): string[][] => [
    churn,
    churn,
    sev(['rotate']),
    sev(['reset']),
    sev(['export', path.join(out, 'chain.cert')]),
    sev(['generate', path.join(out, 'oca.cert'), path.join(out, 'oca.key')]),
    sev(['provision', path.join(out, 'oca.cert'), path.join(out, 'oca.key')]),
    sev(['session', '--name', path.join(out, 'guest'), path.join(out, 'chain.cert'), '1']),
  ];

  /** The platform answers, and its PDH/PEK/OCA links verify (the CEK→ASK→ARK part is fixed). */
  function checkIntact(when: string): void {
    const r = spawnSync(process.execPath, ['-e', `const lib = require(${LIB}); const p = lib.SevPlatform.open();
      p.statusSync(); const e = p.pdhCertExportSync();
      const r = lib.verifyChain({ pdh: e.pdh, pek: e.pek, oca: e.oca, cek: e.cek });
      const bad = r.links.filter((l) => l.subject !== 'CEK' && l.signer !== 'ARK' && l.subject !== 'ASK' && !l.ok);
      console.log(JSON.stringify(bad.map((l) => l.subject + '<-' + l.signer + ': ' + l.reason)));`], { env: env(), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${when}: the platform does not answer: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), [], `${when}: the chain does not verify`);
  }

  const stateTemps = () => fs.readdirSync(state).filter((f) => /\.tmp\.\d+\.\d+$|\.new$/.test(f) || f === 'commit.journal');
  const outTemps = () => fs.readdirSync(out).filter((f) => f.endsWith('.tmp'));

  it('the next command removes the temporary files of dead processes, and keeps a live one\'s', () => {
    checkIntact('fresh');
    const dead = spawnSync('true').pid!;
    const live = process.pid;
    const planted = {
      stateDead: [`pdh.pem.tmp.${dead}.${dead}`, 'pek.cert.new', 'oca.pem.new'],
      outDead: [`.chain.cert.sev-${dead}-0123456789ab.tmp`, `.oca.key.sev-${dead}-a1b2c3d4e5f6.tmp`],
      outLive: [`.chain.cert.sev-${live}-0123456789ab.tmp`],
      outOther: ['.chain.cert.sev-x-0123456789ab.tmp', 'notes.tmp'],
    };
    for (const f of planted.stateDead) fs.writeFileSync(path.join(state, f), 'partial');
    for (const f of [...planted.outDead, ...planted.outLive, ...planted.outOther]) fs.writeFileSync(path.join(out, f), 'partial');
    const r = spawnSync(process.execPath, [SEV_BIN, 'export', path.join(out, 'chain.cert')], { env: env(), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(stateTemps(), []);
    const left = fs.readdirSync(out).filter((f) => f !== 'chain.cert').sort();
    assert.deepEqual(left, [...planted.outLive, ...planted.outOther].sort(), 'only dead processes\' temporary files are removed');
    for (const f of [...planted.outLive, ...planted.outOther]) fs.rmSync(path.join(out, f));
    checkIntact('after the sweep');
  });

  it(`${KILLS} kills: the NV state stays consistent, and the next command leaves no temporary file`, async () => {
    checkIntact('fresh');
    let kills = 0;
    let finished = 0;
    let orphansSeen = 0;
    let rng = 0x5eed;
    const next = (n: number) => {
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
      return (rng >>> 8) % n;
    };
    const lane = async (): Promise<void> => {
      while (kills < KILLS) {
        const list = commands();
        const cmd = list[next(list.length)];
        const child = spawn(cmd[0], cmd.slice(1), { env: env(), stdio: 'ignore' });
        const delay = 100 + next(700);
        const timer = setTimeout(() => child.kill('SIGKILL'), delay);
        const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
        clearTimeout(timer);
        if (signal === 'SIGKILL') kills++;
        else finished++;
        if (kills > 0 && kills % 50 === 0 && signal === 'SIGKILL') {
          orphansSeen += stateTemps().length + outTemps().length;
          checkIntact(`after ${kills} kills`);
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    orphansSeen += stateTemps().length + outTemps().length;

    // The next command of each kind: an NV command (the emulator's sweep) and a CLI output into
    // the same directory (the CLI's sweep).
    checkIntact(`after ${kills} kills`);
    const r = spawnSync(process.execPath, [SEV_BIN, 'export', path.join(out, 'chain.cert')], { env: env(), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(stateTemps(), [], 'temporary files left in the state directory');
    assert.deepEqual(outTemps(), [], 'temporary files left beside the outputs');
    // (How many orphans the kills made, for the log: the sweep is what this test checks.)
    console.log(`      ${kills} kills, ${finished} commands finished, ${orphansSeen} orphaned temporary files seen before sweeps`);
  });
});
