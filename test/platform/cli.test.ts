// The `sev` command line against the platform (emulator in `npm test`): sevctl's output formats
// and well-formed --json.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevPlatform } from '../../lib/platform';
import { emulated, requireSevDevice, sev, SEV_EMU_BIN, run } from '../helpers/env';

describe('cli: sev', function () {
  let platform: SevPlatform;
  before(function () {
    requireSevDevice(this);
    platform = SevPlatform.open({ writable: false });
  });
  after(() => platform?.close());

  it('show version prints major.minor.build, --json adds the parts', async () => {
    const s = await platform.status();
    const r = sev(['show', 'version']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), s.version);
    const j = JSON.parse(sev(['show', 'version', '--json']).stdout);
    assert.deepEqual(j, { version: s.version, api: s.api, build: s.build });
  });

  it('show flags prints owned/es lines like sevctl, --json is well formed', async () => {
    const s = await platform.status();
    const r = sev(['show', 'flags']);
    assert.equal(r.status, 0, r.stderr);
    const expected = [...(s.owned ? ['owned'] : []), ...(s.es ? ['es'] : [])];
    assert.deepEqual(r.stdout.split('\n').filter(Boolean), expected);
    assert.deepEqual(JSON.parse(sev(['--json', 'show', 'flags']).stdout), { owned: s.owned, es: s.es, flags: s.flags });
  });

  it('show guests and show identifier', async () => {
    assert.equal(sev(['show', 'guests']).stdout.trim(), String((await platform.status()).guestCount));
    const id = (await platform.getId()).toString('hex').toUpperCase();
    assert.equal(sev(['show', 'identifier']).stdout.trim(), id);
    assert.deepEqual(JSON.parse(sev(['show', 'identifier', '--json']).stdout), { identifier: id });
  });

  it('export writes PDH ‖ PEK ‖ OCA ‖ CEK, each a 2084-byte SEV certificate', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-export-'));
    try {
      const file = path.join(dir, 'chain.cert');
      const r = sev(['export', file, '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).bytes, 4 * 2084);
      const blob = fs.readFileSync(file);
      assert.equal(blob.length, 4 * 2084);
      const usages = [0, 1, 2, 3].map((i) => blob.readUInt32LE(i * 2084 + 8));
      assert.deepEqual(usages, [0x1003, 0x1002, 0x1001, 0x1004]);
      const e = await platform.pdhCertExport();
      assert.deepEqual(blob.subarray(0, 2084), e.pdh);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ok --json reports every check with a state, and passes on the emulated platform', function () {
    const r = sev(['ok', 'es', '--json']);
    const report = JSON.parse(r.stdout);
    assert.ok(Array.isArray(report.checks) && report.checks.length > 10);
    for (const c of report.checks) assert.ok(['PASS', 'FAIL', 'SKIP'].includes(c.state), JSON.stringify(c));
    assert.equal(r.status, report.ok ? 0 : 1);
    if (emulated && emulated !== 'naples') {
      assert.equal(report.emulated, emulated);
      const failed = report.checks.filter((c: { state: string }) => c.state === 'FAIL');
      assert.deepEqual(failed, [], 'all checks pass on an emulated ES-capable platform');
    }
    const text = sev(['ok']);
    assert.match(text.stdout, /\[ (PASS|FAIL|SKIP) \] AMD CPU/);
  });

  it('usage errors exit 2 with a pointer to --help; device errors are typed in --json', () => {
    const r = sev(['show', 'nonsense']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--help/);
    assert.equal(sev(['frobnicate']).status, 2);
    const missing = sev(['show', 'flags', '--json'], { SEV_DEVICE: '/dev/nonexistent-sev' });
    assert.equal(missing.status, 1);
    const err = JSON.parse(missing.stdout).error;
    assert.equal(err.code, 'ENOENT');
    assert.match(sev(['--help']).stdout, /show/);
  });

  it('sev-emu --help and bad options', () => {
    assert.equal(run(process.execPath, [SEV_EMU_BIN, '--help']).status, 0);
    assert.equal(run(process.execPath, [SEV_EMU_BIN, 'run', '--generation', 'zen9', '--', 'true']).status, 2);
  });

  it('sev-emu info: the host\'s KVM module and CPU vendor, read outside the emulator even when asked inside it', () => {
    const clean = { ...process.env };
    delete clean.LD_PRELOAD;
    delete clean.SEV_EMU_STATE;
    const outside = JSON.parse(spawnSync(process.execPath, [SEV_EMU_BIN, 'info', '--json'], { encoding: 'utf8', env: clean }).stdout);
    // From this process's environment: under `sev-emu run`, with the emulator preloaded.
    const inside = JSON.parse(run(process.execPath, [SEV_EMU_BIN, 'info', '--json']).stdout);
    assert.deepEqual(inside, outside);
    // What a process without the emulator reads (inside it, /proc/cpuinfo is the emulated EPYC's).
    const cpuinfo = spawnSync('cat', ['/proc/cpuinfo'], { encoding: 'utf8', env: clean }).stdout;
    assert.equal(outside.hostCpuVendor, /^vendor_id\s*:\s*(\S+)/m.exec(cpuinfo)?.[1] ?? null);
    const modules = fs.readdirSync('/sys/module').filter((m) => ['kvm_amd', 'kvm_intel', 'kvm_pvm'].includes(m)).sort();
    assert.equal(outside.hostKvmModule, modules.length > 0 ? modules.join('+') : null);
  });

  it('sev-emu: an unusable --state or ca path is one line naming it, exit 2 (no stack, no hang)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-emu-paths-'));
    try {
      const file = path.join(dir, 'a-file');
      fs.writeFileSync(file, '');
      const cases: Array<[string[], RegExp]> = [
        [['run', '--state', '/proc/sev-emu-nope', '--', 'true'], /--state \/proc\/sev-emu-nope: cannot create \/proc\/sev-emu-nope: no such file or directory \(ENOENT\)/],
        [['run', '--state', file, '--', 'true'], /not a directory/],
        [['run', '--state', path.join(file, 'sub'), '--', 'true'], /ENOTDIR/],
        [['ca', '--state', path.join(dir, 'state'), path.join(dir, 'missing', 'ca.cert')], /cannot write .*ca\.cert: no such file or directory \(ENOENT\)/],
      ];
      for (const [args, message] of cases) {
        const r = run(process.execPath, [SEV_EMU_BIN, ...args]);
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
