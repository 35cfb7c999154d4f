// Several processes at once on one platform, and fault injection — both through child processes
// that inherit (or get their own) emulator.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevPlatform } from '../../lib/platform';
import { destructiveAllowed, emulated, nodeScript, requireSevDevice, SEV_EMU_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

function runAsync(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('platform: several processes', function () {
  before(function () {
    requireSevDevice(this);
    if (!destructiveAllowed) skipBecause(this, 'rotates keys: set SEV_TEST_DESTRUCTIVE=1 on hardware');
  });

  it('concurrent key rotation and export from 4 processes never corrupts the state', async () => {
    const worker = nodeScript(`
      (async () => {
        const p = lib.SevPlatform.open();
        const seen = [];
        for (let i = 0; i < 15; i++) {
          if (i % 3 === 0) await p.pdhGen();
          const e = await p.pdhCertExport();
          if (e.pdh.length !== 2084 || e.chain.length !== 6252) throw new Error('bad sizes');
          if (e.pdh.readUInt32LE(8) !== 0x1003 || e.pek.readUInt32LE(8) !== 0x1002) throw new Error('bad usage');
          // A torn state (a PDH from one rotation, a PEK from another) fails these signatures.
          const report = lib.verifyChain({ pdh: e.pdh, pek: e.pek, oca: e.oca, cek: e.cek });
          const bad = report.links.filter((l) => ['PEK→PDH', 'OCA→PEK', 'CEK→PEK', 'OCA→OCA'].includes(l.signer + '→' + l.subject) && !l.ok);
          if (bad.length) throw new Error('inconsistent chain: ' + JSON.stringify(bad));
          seen.push((await p.getId()).toString('hex'));
        }
        p.close();
        console.log(JSON.stringify({ ids: [...new Set(seen)] }));
      })().catch((e) => { console.error(e); process.exit(1); });
    `);
    const results = await Promise.all([1, 2, 3, 4].map(() => runAsync(worker)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const ids = new Set(results.flatMap((r) => JSON.parse(r.stdout).ids));
    assert.equal(ids.size, 1, 'one chip id across all processes');
    const p = SevPlatform.open();
    try {
      const e = await p.pdhCertExport();
      assert.equal(e.pdh.length, 2084);
    } finally {
      p.close();
    }
  });
});

/**
 * Runs the SevPlatform *Sync methods `calls` in order in a fresh emulator with the fault rules,
 * and gives each call's outcome: 'ok', or the named SevError fields joined by ':'.
 */
function outcomesUnderFault(rules: string, calls: string[], fields: string[]): { outcomes: string[]; stderr: string } {
  const r = underFreshEmulator(
    ['--fault', rules],
    nodeScript(`
      const p = lib.SevPlatform.open();
      const out = [];
      for (const f of ${JSON.stringify(calls)}) {
        try { p[f](); out.push('ok'); }
        catch (e) { out.push(${JSON.stringify(fields)}.map((k) => e[k]).join(':')); }
      }
      console.log(JSON.stringify(out));
    `),
  );
  assert.equal(r.status, 0, r.stderr);
  return { outcomes: JSON.parse(r.stdout), stderr: r.stderr };
}

describe('emulator: fault injection', function () {
  before(function () {
    if (!emulated) skipBecause(this, 'fault injection is an emulator feature');
  });

  it('makes the Nth call of a command fail with a firmware status', () => {
    const { outcomes } = outcomesUnderFault(
      'PLATFORM_STATUS@2=INVALID_PLATFORM_STATE',
      ['statusSync', 'statusSync', 'statusSync'],
      ['name', 'command', 'code', 'firmwareStatusName'],
    );
    assert.deepEqual(outcomes, ['ok', 'SevError:PLATFORM_STATUS:EIO:INVALID_PLATFORM_STATE', 'ok']);
  });

  it('makes a call fail with an errno, and async calls see it too', () => {
    const r = underFreshEmulator(
      ['--fault', 'GET_ID2@*=errno:ENOMEM,PDH_GEN@1=ALREADY_OWNED'],
      nodeScript(`
        (async () => {
          const p = lib.SevPlatform.open();
          const out = [];
          try { await p.getId(); out.push('ok'); } catch (e) { out.push(e.code); }
          try { await p.pdhGen(); out.push('ok'); } catch (e) { out.push(e.firmwareStatusName); }
          try { await p.pdhGen(); out.push('ok'); } catch (e) { out.push(e.firmwareStatusName); }
          console.log(JSON.stringify(out));
        })();
      `),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['ENOMEM', 'ALREADY_OWNED', 'ok']);
  });

  it('an injected INVALID_LEN is reported as INVALID_LEN, on the length query and on the fetch', () => {
    const { outcomes } = outcomesUnderFault(
      'PEK_CSR@1=INVALID_LEN,GET_ID2@2=INVALID_LEN,PDH_CERT_EXPORT@1=INVALID_LEN',
      ['pekCsrSync', 'getIdSync', 'pdhCertExportSync', 'pekCsrSync'],
      ['command', 'code', 'firmwareStatusName'],
    );
    assert.deepEqual(outcomes, [
      'PEK_CSR:EIO:INVALID_LEN', // the query: no length came back
      'GET_ID2:EIO:INVALID_LEN', // the fetch after a good query
      'PDH_CERT_EXPORT:EIO:INVALID_LEN',
      'ok', // only the first PEK_CSR was failed
    ]);
  });

  it('takes every status name of the 7.2 UAPI, the misspelled alias too', () => {
    const { outcomes } = outcomesUnderFault(
      'PEK_GEN@1=SEV_STATUS_RESPONSE_TOO_LARGE,PEK_GEN@2=INAVLID_CONFIG',
      ['pekGenSync', 'pekGenSync', 'pdhGenSync'],
      ['firmwareStatus', 'firmwareStatusName'],
    );
    assert.deepEqual(outcomes, ['63:SEV_STATUS_RESPONSE_TOO_LARGE', '3:INVALID_CONFIG', 'ok']);
  });

  it('a rule it cannot inject stops the program before it starts (exit 2), naming the rule', () => {
    for (const rule of ['PDH_GEN@1=NO_FW_CALL', 'PEK_GEN@0=INVALID_LEN', 'NOPE@1=INVALID_LEN', 'PEK_GEN@1=errno:EWHAT', 'PEK_GEN=1']) {
      const r = underFreshEmulator(['--fault', `PEK_CSR@1=INVALID_LEN,${rule}`], [process.execPath, '-e', 'console.log("ran")']);
      assert.equal(r.status, 2, `${rule}: ${r.status} ${r.stdout} ${r.stderr}`);
      assert.equal(r.stdout, '', `${rule}: the program must not run`);
      assert.ok(r.stderr.includes(`malformed rule '${rule}'`), `${rule}: ${r.stderr}`);
    }
  });

  it('leaves the state unchanged when a write command is failed', () => {
    const r = underFreshEmulator(
      ['--fault', 'PEK_GEN@1=INVALID_PLATFORM_STATE'],
      nodeScript(`
        const p = lib.SevPlatform.open();
        const before = p.pdhCertExportSync().chain.toString('hex');
        try { p.pekGenSync(); } catch (e) {}
        console.log(JSON.stringify({ same: before === p.pdhCertExportSync().chain.toString('hex') }));
      `),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { same: true });
  });
});

describe('emulator: generations', function () {
  before(function () {
    if (!emulated) skipBecause(this, 'choosing a generation is an emulator feature');
  });

  for (const [gen, es, snp] of [['naples', false, false], ['rome', true, false], ['milan', true, true], ['genoa', true, true], ['turin', true, true]] as const) {
    it(`${gen}: ES flag ${es}, SNP status ${snp ? 'available' : 'refused'}`, () => {
      const r = underFreshEmulator(
        ['--generation', gen],
        nodeScript(`
          const p = lib.SevPlatform.open();
          const s = p.statusSync();
          let snp;
          try { snp = p.snpStatusSync().api.major; } catch (e) { snp = e.code; }
          console.log(JSON.stringify({ es: s.es, api: s.api, snp, emu: require(${JSON.stringify(require.resolve('../../lib/native'))}).native.emulator() }));
        `),
      );
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.emu, gen);
      assert.equal(out.es, es);
      assert.equal(typeof out.snp === 'number', snp, `snp: ${out.snp}`);
    });
  }
});

describe('emulator: NV state survives a process killed mid-commit', function () {
  before(function () {
    if (!emulated) skipBecause(this, 'the NV state directory is the emulator\'s');
  });

  /** Runs a node script against the emulator state in `dir`. */
  function inState(dir: string, code: string): string {
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    delete env.SEV_EMU_STATE;
    const r = spawnSync(process.execPath, [SEV_EMU_BIN, 'run', '--state', dir, '--', ...nodeScript(code)], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }
  const exportChain = `const p = lib.SevPlatform.open(); const e = p.pdhCertExportSync();
    const r = lib.verifyChain({ pdh: e.pdh, pek: e.pek, oca: e.oca, cek: e.cek });
    console.log(JSON.stringify({ pek: e.pek.toString('hex'), pdh: e.pdh.toString('hex'),
      ok: r.links.filter((l) => l.subject !== 'CEK' && l.signer !== 'ARK' && l.subject !== 'ASK').every((l) => l.ok) }));`;

  it('a journaled commit is completed by the next command; unjournaled staging is ignored and removed', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-nv-'));
    try {
      const a = path.join(root, 'a');
      const b = path.join(root, 'b');
      const before = JSON.parse(inState(a, exportChain));
      fs.cpSync(a, b, { recursive: true });
      inState(b, 'lib.SevPlatform.open().pekGenSync();'); // b: what a's PEK_GEN would have written
      const changed = fs.readdirSync(b).filter((f) => f !== 'lock' && !fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))));
      assert.ok(changed.includes('pek.pem') && changed.includes('pdh.cert'), changed.join(','));

      // Killed before the commit point: staged files but no journal → nothing changes.
      for (const f of changed) fs.copyFileSync(path.join(b, f), path.join(a, `${f}.new`));
      assert.equal(JSON.parse(inState(a, exportChain)).pek, before.pek);
      assert.deepEqual(fs.readdirSync(a).filter((f) => f.endsWith('.new')), [], 'the unjournaled staging is removed');

      // Killed after the commit point: the journal names the staged files → the next command
      // completes the commit, and the chain is consistent.
      for (const f of changed) fs.copyFileSync(path.join(b, f), path.join(a, `${f}.new`));
      fs.writeFileSync(path.join(a, 'commit.journal'), changed.map((f) => `put ${f}\n`).join(''));
      const after = JSON.parse(inState(a, exportChain));
      const expected = JSON.parse(inState(b, exportChain));
      assert.equal(after.pek, expected.pek);
      assert.equal(after.pdh, expected.pdh);
      assert.equal(after.ok, true);
      assert.ok(!fs.existsSync(path.join(a, 'commit.journal')), 'journal removed');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
