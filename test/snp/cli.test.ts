// `sev snp …` from the command line: the same verdicts and values as the library, on the real
// Milan reports and sev-snp-measure's vectors (../shared/fixtures/snp).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fixturesDir, sev, skipBecause } from '../helpers/env';

const SNP = path.join(fixturesDir(), 'snp');
const MEASUREMENT = path.join(SNP, 'measurement');

interface MeasurementCase {
  name: string;
  args: Record<string, string | number | null | undefined>;
  expected: string | null;
}

describe('sev snp (CLI)', function () {
  this.timeout(60_000);
  before(function () {
    if (!fs.existsSync(path.join(SNP, 'vectors.json'))) skipBecause(this, `the SNP fixtures are not in ${SNP} (set SEV_FIXTURES)`);
  });

  it('display report: every field, as text and as JSON', () => {
    const vectors = JSON.parse(fs.readFileSync(path.join(SNP, 'vectors.json'), 'utf8')) as { reports: Record<string, unknown>[] };
    for (const expected of vectors.reports) {
      const file = path.join(SNP, expected.file as string);
      const text = sev(['snp', 'display', 'report', file]);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /^Attestation Report\nVersion:\s+2$/m);
      const json = sev(['--json', 'snp', 'display', 'report', file]);
      assert.equal(json.status, 0, json.stderr);
      const report = JSON.parse(json.stdout) as Record<string, unknown>;
      for (const field of ['version', 'guest_svn', 'vmpl', 'measurement', 'chip_id', 'report_data', 'host_data']) {
        assert.equal(String(report[field]), String(expected[field]), `${expected.file as string}: ${field}`);
      }
    }
  });

  it('display report refuses a file that is not a report, naming the problem', () => {
    const r = sev(['snp', 'display', 'report', path.join(SNP, 'milan', 'vcek.der')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /1184 bytes|0x4a0/i);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('verify attestation: a report and its own VCEK pass (exit 0); another chip\'s VCEK fails naming the fields (exit 1)', () => {
    const report = path.join(SNP, 'milan', 'report.bin');
    const chain = path.join(SNP, 'milan', 'cert_chain.pem');
    const good = sev(['snp', 'verify', 'attestation', report, '--vcek', path.join(SNP, 'milan', 'vcek.der'), '--cert-chain', chain]);
    assert.equal(good.status, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /✅ VCEK ⟶ REPORT/);
    // snpguest's form: a directory with ark, ask and vcek.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-snp-certs-'));
    try {
      fs.copyFileSync(path.join(SNP, 'amd', 'milan', 'ark.pem'), path.join(dir, 'ark.pem'));
      fs.copyFileSync(path.join(SNP, 'amd', 'milan', 'ask.pem'), path.join(dir, 'ask.pem'));
      fs.copyFileSync(path.join(SNP, 'milan-go-sev-guest', 'vcek.der'), path.join(dir, 'vcek.der'));
      const own = sev(['--json', 'snp', 'verify', 'attestation', dir, path.join(SNP, 'milan-go-sev-guest', 'report.bin')]);
      assert.equal(own.status, 0, own.stdout + own.stderr);
      assert.equal((JSON.parse(own.stdout) as { ok: boolean }).ok, true);
      const other = sev(['snp', 'verify', 'attestation', dir, report]);
      assert.equal(other.status, 1, other.stdout + other.stderr);
      assert.match(other.stdout, /❌ VCEK ⟶ REPORT: bad signature/);
      assert.match(other.stdout, /chip_id: expected [0-9a-f]{128}, got [0-9a-f]{128}/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verify certs: AMD\'s Milan ARK → ASK → a real VCEK pass; a Genoa ASK in its place, or a flipped byte, fails', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-snp-verify-certs-'));
    try {
      fs.copyFileSync(path.join(SNP, 'amd', 'milan', 'ark.pem'), path.join(dir, 'ark.pem'));
      fs.copyFileSync(path.join(SNP, 'amd', 'milan', 'ask.pem'), path.join(dir, 'ask.pem'));
      fs.copyFileSync(path.join(SNP, 'milan', 'vcek.der'), path.join(dir, 'vcek.der'));
      const good = sev(['snp', 'verify', 'certs', dir]);
      assert.equal(good.status, 0, good.stdout + good.stderr);
      assert.match(good.stdout, /✅ SEV-SNP certificate chain \(milan, VCEK\)\n✅ ARK ⟶ ARK\n✅ ARK ⟶ ASK\n✅ ASK ⟶ VCEK/);
      const vcek = fs.readFileSync(path.join(SNP, 'milan', 'vcek.der'));
      vcek[vcek.length - 10] ^= 1; // inside the signature
      fs.writeFileSync(path.join(dir, 'vcek.der'), vcek);
      const flipped = sev(['--json', 'snp', 'verify', 'certs', dir]);
      assert.equal(flipped.status, 1, flipped.stdout + flipped.stderr);
      const links = (JSON.parse(flipped.stdout) as { links: { subject: string; ok: boolean }[] }).links;
      assert.deepEqual(links.map((l) => [l.subject, l.ok]), [['ARK', true], ['ASK', true], ['VCEK', false]]);
      fs.copyFileSync(path.join(SNP, 'amd', 'genoa', 'ask.pem'), path.join(dir, 'ask.pem'));
      assert.equal(sev(['snp', 'verify', 'certs', dir]).status, 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generate ovmf-hash gives the OVMF-hash vectors; generate measurement is measure', () => {
    const vectors = JSON.parse(fs.readFileSync(path.join(SNP, 'vectors.json'), 'utf8')) as { snp_ovmf_hash: { ovmf: string; expected: string }[] };
    for (const v of vectors.snp_ovmf_hash) {
      const r = sev(['snp', 'generate', 'ovmf-hash', '--ovmf', path.join(MEASUREMENT, v.ovmf)]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), v.expected);
    }
    const ovmf = path.join(MEASUREMENT, vectors.snp_ovmf_hash[0].ovmf);
    const args = ['--ovmf', ovmf, '--vcpus', '2', '--vcpu-type', 'EPYC-Milan'];
    const a = sev(['snp', 'generate', 'measurement', ...args]);
    const b = sev(['snp', 'measure', ...args, '--snp-ovmf-hash', vectors.snp_ovmf_hash[0].expected]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
  });

  it('measure: sev-snp-measure\'s flags give its vectors\' digests (one case per mode)', () => {
    const vectors = JSON.parse(fs.readFileSync(path.join(SNP, 'vectors.json'), 'utf8')) as { measurement: MeasurementCase[] };
    const modes = new Set<string>();
    for (const c of vectors.measurement) {
      const mode = String(c.args.mode);
      const file = (v: unknown) => (v === 'empty' ? '/dev/null' : v); // "empty": a zero-length file
      // Kernel and initrd files other than empty ones are not in the fixtures.
      const missingFile = [c.args.kernel, c.args.initrd].some((v) => v !== null && v !== undefined && v !== 'empty');
      if (modes.has(mode) || c.expected === null || missingFile || c.args.vmm_type === 'EC2') continue;
      modes.add(mode);
      const a = c.args;
      const args = ['snp', 'measure', '--mode', mode, '--ovmf', path.join(MEASUREMENT, String(a.ovmf))];
      if (mode !== 'sev') args.push('--vcpus', String(a.vcpus), '--vcpu-sig', String(a.vcpu_sig));
      if (a.guest_features && mode !== 'sev' && mode !== 'seves') args.push('--guest-features', String(a.guest_features));
      if (a.vmm_type) args.push('--vmm-type', String(a.vmm_type).toLowerCase());
      if (a.append !== null && a.append !== undefined) args.push('--append', String(a.append));
      if (a.svsm) args.push('--svsm', path.join(MEASUREMENT, String(a.svsm)), '--vars-size', String(a.ovmf_vars_size));
      if (a.kernel) args.push('--kernel', String(file(a.kernel)));
      if (a.initrd) args.push('--initrd', String(file(a.initrd)));
      const r = sev(args);
      assert.equal(r.status, 0, `${c.name}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), c.expected, c.name);
      const b64 = sev([...args, '--output-format', 'base64']);
      assert.equal(b64.stdout.trim(), Buffer.from(c.expected, 'hex').toString('base64'), `${c.name} (base64)`);
    }
    assert.deepEqual([...modes].sort(), ['sev', 'seves', 'snp', 'snp-svsm'], 'a vector for each mode');
  });

  it('bad usage is an error line and a hint, exit 2', () => {
    for (const args of [['snp'], ['snp', 'frobnicate'], ['snp', 'measure'], ['snp', 'measure', '--ovmf', 'x', '--mode', 'tdx'],
      ['snp', 'display', 'report', 'a', '--generation', 'venice'], ['snp', 'verify', 'attestation', 'r.bin']]) {
      const r = sev(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.status} ${r.stderr}`);
      assert.match(r.stderr, /^error: snp[ :].*\nRun with --help for usage\.\n$/, `${args.join(" ")}: ${r.stderr}`);
    }
  });
});
