// Every file a user names to `sev` or `sev-emu` — read, written, created or listed — fails as one
// line naming the file and the problem, with the project's exit code (1 for `sev`, 2 for
// `sev-emu`), no stack trace and no output left behind. Each file argument is tried missing, as a
// directory, and without permission; the last runs the command as root without the capabilities
// that bypass mode bits (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), since the tests
// run as root and root reads and writes through any mode bits otherwise.
import * as assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SEV_BIN, SEV_EMU_BIN, sev, skipBecause } from '../helpers/env';
import { fixture, OVMF, requireSevctlFixtures } from './fixtures';

/** Root, but subject to file modes like any user. */
const NO_DAC = ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--'];
const BASE = ['--api-major', '1', '--api-minor', '40', '--build-id', '40', '--policy', '1', '--nonce', 'wxP6tRHCFrFQWxsuqZA8QA==', '--tik', 'AAAAAAAAAAAAAAAAAAAAAA=='];
const SECRET = ['--tik', 'AAAAAAAAAAAAAAAAAAAAAA==', '--tek', 'AAAAAAAAAAAAAAAAAAAAAA==',
  '--launch-measure-blob', 'TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS'];
const GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

/** How a command takes the file under test: read (a file or a directory it lists) or written (a file or a directory it creates). */
type Kind = 'in' | 'in-dir' | 'out' | 'out-dir';

interface Case {
  title: string;
  kind: Kind;
  /** Name of the file under test (its variants are made under the suite's directories). */
  name: string;
  args: (file: string) => string[];
  /** Run with `sev-emu` instead of `sev`. */
  emu?: boolean;
  /** sev-emu run options for a fresh emulator of its own (else the suite's emulator). */
  fresh?: string[];
}

/** Null when NO_DAC works here (util-linux setpriv; not needed, and not possible, without root). */
function noDacUnavailable(): string | null {
  if (process.getuid?.() !== 0) return null;
  const r = spawnSync(NO_DAC[0], [...NO_DAC.slice(1), 'true']);
  return r.status === 0 ? null : `setpriv cannot drop CAP_DAC_OVERRIDE (${r.error?.message ?? r.stderr})`;
}

describe('sev CLI: file errors are one line naming the file', function () {
  this.timeout(120_000);
  let tmp: string;
  let inputs: Record<string, string>;
  let whyNoDac: string | null;

  before(function () {
    requireSevctlFixtures(this);
    whyNoDac = noDacUnavailable();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-file-err-'));
    fs.chmodSync(tmp, 0o755);
    // Valid inputs besides the one under test, readable by nobody too.
    const key = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    inputs = { key: path.join(tmp, 'id-key.pem'), ovmf: path.join(tmp, 'ovmf.fd'), oca: path.join(tmp, 'oca.cert'), ocaKey: path.join(tmp, 'oca.key'), chain: path.join(tmp, 'chain.cert'), ca: path.join(tmp, 'ask_ark.cert') };
    fs.writeFileSync(inputs.key, key, { mode: 0o644 });
    fs.copyFileSync(fixture(OVMF), inputs.ovmf);
    const g = sev(['generate', inputs.oca, inputs.ocaKey]);
    assert.equal(g.status, 0, g.stderr);
    fs.chmodSync(inputs.ocaKey, 0o644);
    const e = sev(['export', inputs.chain]);
    assert.equal(e.status, 0, e.stderr);
    const ca = spawnSync(process.execPath, [SEV_EMU_BIN, 'ca', '--state', process.env.SEV_EMU_STATE ?? '', inputs.ca], { encoding: 'utf8' });
    assert.equal(ca.status, 0, ca.stderr);
    for (const d of ['missing', 'dirs', 'locked', 'ro', 'out']) fs.mkdirSync(path.join(tmp, d), { mode: 0o755 });
    fs.chmodSync(path.join(tmp, 'ro'), 0o555);
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const OUT = () => path.join(tmp, 'out');
  const cases: Case[] = [
    // sev: inputs
    { title: 'provision CERT', kind: 'in', name: 'oca.cert', args: (f) => ['provision', f, inputs.ocaKey] },
    { title: 'provision KEY', kind: 'in', name: 'oca.key', args: (f) => ['provision', inputs.oca, f] },
    { title: 'verify --sev', kind: 'in', name: 'chain.cert', args: (f) => ['verify', '--sev', f] },
    { title: 'verify --oca', kind: 'in', name: 'oca.cert', args: (f) => ['verify', '--sev', inputs.chain, '--oca', f] },
    { title: 'verify --ca', kind: 'in', name: 'ask_ark.cert', args: (f) => ['verify', '--sev', inputs.chain, '--ca', f] },
    { title: 'session PDH_OR_CHAIN', kind: 'in', name: 'pdh.cert', args: (f) => ['session', '--name', path.join(OUT(), 'vm'), f, '1'] },
    { title: 'measurement build --firmware', kind: 'in', name: 'ovmf.fd', args: (f) => ['measurement', 'build', ...BASE, '--firmware', f] },
    { title: 'measurement build --kernel', kind: 'in', name: 'vmlinuz', args: (f) => ['measurement', 'build', ...BASE, '--firmware', inputs.ovmf, '--kernel', f] },
    { title: 'measurement build --initrd', kind: 'in', name: 'initrd', args: (f) => ['measurement', 'build', ...BASE, '--firmware', inputs.ovmf, '--kernel', '/dev/null', '--initrd', f] },
    { title: 'measurement build --vmsa-cpu0', kind: 'in', name: 'vmsa0.bin', args: (f) => ['measurement', 'build', ...BASE.slice(0, 6), '--policy', '5', ...BASE.slice(8), '--firmware', inputs.ovmf, '--num-cpus', '1', '--vmsa-cpu0', f, '--vmsa-cpu1', f] },
    { title: 'secret build --secret GUID:FILE', kind: 'in', name: 'secret.txt', args: (f) => ['secret', 'build', ...SECRET, '--secret', `${GUID}:${f}`, path.join(OUT(), 'h'), path.join(OUT(), 'p')] },
    { title: 'vmsa show', kind: 'in', name: 'vmsa.bin', args: (f) => ['vmsa', 'show', f] },
    { title: 'vmsa build --firmware', kind: 'in', name: 'ovmf.fd', args: (f) => ['vmsa', 'build', path.join(OUT(), 'v'), '--cpu', '1', '--userspace', 'qemu', '--firmware', f] },
    { title: 'snp display report', kind: 'in', name: 'report.bin', args: (f) => ['snp', 'display', 'report', f] },
    { title: 'snp display key', kind: 'in', name: 'derived.key', args: (f) => ['snp', 'display', 'key', f] },
    { title: 'snp generate ovmf-hash --ovmf', kind: 'in', name: 'ovmf.fd', args: (f) => ['snp', 'generate', 'ovmf-hash', '--ovmf', f] },
    { title: 'snp measure --ovmf', kind: 'in', name: 'ovmf.fd', args: (f) => ['snp', 'measure', '--ovmf', f] },
    { title: 'snp measure --kernel', kind: 'in', name: 'vmlinuz', args: (f) => ['snp', 'measure', '--ovmf', inputs.ovmf, '--kernel', f, '--initrd', '/dev/null', '--append', ''] },
    { title: 'snp generate key-digest', kind: 'in', name: 'id.pem', args: (f) => ['snp', 'generate', 'key-digest', f] },
    { title: 'snp generate id-block --id-key', kind: 'in', name: 'id.pem', args: (f) => ['snp', 'generate', 'id-block', '--id-key', f, '--auth-key', inputs.key, '--measurement', '00'.repeat(48)] },
    { title: 'snp vlek-load', kind: 'in', name: 'hashstick.bin', args: (f) => ['snp', 'vlek-load', f] },
    { title: 'snp cert-table export CERT-FILE', kind: 'in', name: 'table.bin', args: (f) => ['snp', 'cert-table', 'export', 'pem', f, path.join(OUT(), 'certs')] },
    { title: 'snp fetch vcek REPORT', kind: 'in', name: 'report.bin', args: (f) => ['snp', 'fetch', 'vcek', f, path.join(OUT(), 'certs'), '--offline'] },
    { title: 'snp report REQUEST_FILE', kind: 'in', name: 'request.bin', args: (f) => ['snp', 'report', path.join(OUT(), 'report.bin'), f] },
    { title: 'snp verify certs CERTS_DIR', kind: 'in-dir', name: 'certs', args: (f) => ['snp', 'verify', 'certs', f] },
    { title: 'snp cert-table import DIR', kind: 'in-dir', name: 'certs', args: (f) => ['snp', 'cert-table', 'import', f, path.join(OUT(), 'table.bin')] },
    // sev: outputs
    { title: 'export DEST', kind: 'out', name: 'chain.cert', args: (f) => ['export', f] },
    { title: 'generate CERT', kind: 'out', name: 'oca.cert', args: (f) => ['generate', f, path.join(OUT(), 'oca.key')] },
    { title: 'generate KEY', kind: 'out', name: 'oca.key', args: (f) => ['generate', path.join(OUT(), 'oca.cert'), f] },
    { title: 'session --name (its TEK)', kind: 'out', name: 'vm_tek.bin', args: (f) => ['session', '--name', f.replace(/_tek\.bin$/, ''), '--ca', inputs.ca, '--trust-ark', inputs.ca, inputs.chain, '1'] },
    { title: 'measurement build --outfile', kind: 'out', name: 'measurement.bin', args: (f) => ['measurement', 'build', ...BASE, '--firmware', inputs.ovmf, '--outfile', f] },
    { title: 'secret build HEADER', kind: 'out', name: 'header.bin', args: (f) => ['secret', 'build', ...SECRET, '--secret', `${GUID}:${inputs.key}`, f, path.join(OUT(), 'p')] },
    { title: 'vmsa build FILE', kind: 'out', name: 'vmsa.bin', args: (f) => ['vmsa', 'build', f, '--cpu', '0', '--userspace', 'qemu'] },
    { title: 'snp generate id-block --id-block-out', kind: 'out', name: 'id-block.b64', args: (f) => ['snp', 'generate', 'id-block', '--id-key', inputs.key, '--auth-key', inputs.key, '--measurement', '00'.repeat(48), '--id-block-out', f, '--id-auth-out', path.join(OUT(), 'auth.b64')] },
    { title: 'snp report ATT_REPORT_PATH (in a guest)', kind: 'out', name: 'report.bin', args: (f) => ['snp', 'report', f, path.join(OUT(), 'req.bin'), '--random'], fresh: ['--guest'] },
    { title: 'snp key KEY_PATH (in a guest)', kind: 'out', name: 'derived.key', args: (f) => ['snp', 'key', f, 'vcek'], fresh: ['--guest'] },
    { title: 'snp certificates CERTS_DIR (in a guest)', kind: 'out-dir', name: 'certs', args: (f) => ['snp', 'certificates', 'pem', f], fresh: ['--guest'] },
    // sev-emu
    { title: 'sev-emu run --state', kind: 'out-dir', name: 'state', args: (f) => ['run', '--state', f, '--', 'true'], emu: true },
    { title: 'sev-emu ca OUT', kind: 'out', name: 'ca.cert', args: (f) => ['ca', '--temp-state', f], emu: true },
  ];

  /** Runs a case's command (subject to file modes when `denied`); all it writes goes under tmp. */
  function runCase(c: Case, file: string, denied: boolean): SpawnSyncReturns<string> {
    const env = { ...process.env };
    if (c.emu || c.fresh) {
      // An emulator of its own: sev-emu itself, or one with an SNP guest.
      delete env.LD_PRELOAD;
      delete env.SEV_EMU_STATE;
    }
    const cmd = [
      ...(denied && process.getuid?.() === 0 ? NO_DAC : []),
      process.execPath,
      ...(c.fresh ? [SEV_EMU_BIN, 'run', '--temp-state', ...c.fresh, '--', process.execPath] : []),
      c.emu ? SEV_EMU_BIN : SEV_BIN,
      ...c.args(file),
    ];
    return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', cwd: tmp, env, timeout: 120_000 });
  }

  function listTree(dir: string): string[] {
    return fs.readdirSync(dir, { recursive: true }).map(String).sort();
  }

  function expectOneLine(c: Case, file: string, r: SpawnSyncReturns<string>, problem: RegExp, before: string[]): void {
    const what = `${c.args(file).join(' ')}\nstatus ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    assert.equal(r.status, c.emu ? 2 : 1, what);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace: ${what}`);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `one stderr line expected: ${what}`);
    assert.ok(lines[0].includes(file) || lines[0].includes(path.dirname(file)), `the line names ${file}: ${what}`);
    assert.match(lines[0], problem, what);
    assert.deepEqual(listTree(tmp), before, `nothing written: ${what}`);
  }

  for (const c of cases) {
    describe(c.title, () => {
      const variants = c.kind === 'in'
        ? [
            { v: 'missing', problem: /no such file or directory \(ENOENT\)/ },
            { v: 'a directory', problem: /is a directory/ },
            { v: 'unreadable', problem: /permission denied \(EACCES\)/ },
          ]
        : c.kind === 'in-dir'
          ? [
              { v: 'missing', problem: /no such file or directory \(ENOENT\)|has none of|has no/ },
              { v: 'unreadable', problem: /permission denied \(EACCES\)|has none of|has no/ },
            ]
          : [
              { v: 'in a missing directory', problem: c.kind === 'out' ? /no such file or directory \(ENOENT\)/ : /./ },
              { v: 'a directory', problem: /is a directory|not a directory|file already exists/ },
              { v: 'unwritable', problem: /permission denied \(EACCES\)/ },
            ];
      for (const { v, problem } of variants) {
        // mkdir -p makes a missing parent: not an error for an output directory.
        if (c.kind === 'out-dir' && v === 'in a missing directory') continue;
        it(v, function () {
          let file: string;
          const denied = v === 'unreadable' || v === 'unwritable';
          if (denied && whyNoDac) skipBecause(this, whyNoDac);
          if (v === 'missing') file = path.join(tmp, 'missing', c.name);
          else if (v === 'in a missing directory') file = path.join(tmp, 'missing', 'no-dir', c.name);
          else if (v === 'a directory') {
            // An output directory given where a file stands; a file or output given where a directory stands.
            file = path.join(tmp, 'dirs', `${c.title.replace(/\W+/g, '-')}`, c.name);
            fs.mkdirSync(c.kind === 'out-dir' ? path.dirname(file) : file, { recursive: true });
            if (c.kind === 'out-dir') fs.writeFileSync(file, 'a file');
          } else if (v === 'unreadable') {
            file = path.join(tmp, 'locked', c.name);
            if (c.kind === 'in-dir') fs.mkdirSync(file, { recursive: true, mode: 0o700 });
            else fs.writeFileSync(file, 'x');
            fs.chmodSync(file, 0o000);
          } else file = path.join(tmp, 'ro', c.name); // unwritable: a root-owned 0555 directory
          const before = listTree(tmp);
          expectOneLine(c, file, runCase(c, file, denied), problem, before);
        });
      }
    });
  }
});
