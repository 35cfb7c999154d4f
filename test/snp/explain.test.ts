// `sev snp measure --explain EXPECTED` and lib/snp/explain: the measured parts in order, and the
// usual cause of a mismatch named — vCPU count, VMM type, the command line's NUL, the INIT2 VMSA.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError } from '../../lib/errors';
import { explainLaunchDigest } from '../../lib/snp/explain';
import { VMSA_GPA } from '../../lib/snp/gctx';
import { calcLaunchDigest, calcSnpOvmfHash, traceLaunchDigest, type LaunchDigestOptions } from '../../lib/snp/measurement';
import { fixturesDir, sev, skipBecause } from '../helpers/env';

const OVMF = path.join(fixturesDir(), 'snp', 'measurement', 'ovmf_AmdSev_suffix.bin');

describe('snp: measurement --explain', function () {
  this.timeout(60_000);
  let dir: string;
  let kernel: string;
  let base: LaunchDigestOptions;
  /** `sev snp measure` flags for `base`. */
  let flags: string[];

  before(function () {
    if (!fs.existsSync(OVMF)) skipBecause(this, `the SNP fixtures are not in ${path.dirname(OVMF)} (set SEV_FIXTURES)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snp-explain-'));
    kernel = path.join(dir, 'vmlinuz');
    fs.writeFileSync(kernel, Buffer.from('not really a kernel'));
    base = { mode: 'snp', ovmf: fs.readFileSync(OVMF), vcpus: 2, vcpuType: 'EPYC-Milan', kernel: fs.readFileSync(kernel), append: 'console=ttyS0' };
    flags = ['snp', 'measure', '--ovmf', OVMF, '--vcpus', '2', '--vcpu-type', 'EPYC-Milan', '--kernel', kernel, '--append', 'console=ttyS0'];
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectedOf = (changes: Partial<LaunchDigestOptions>) => calcLaunchDigest({ ...base, ...changes }).toString('hex');

  it('the trace lists OVMF, each metadata section by type and GPA, the kernel hashes page and a VMSA per vCPU, ending at the digest', () => {
    const t = traceLaunchDigest(base);
    assert.deepEqual(t.digest, calcLaunchDigest(base));
    assert.equal(t.algorithm, 'sha384');
    assert.equal(t.parts[0].what, 'OVMF');
    assert.deepEqual(t.parts[0].digest, calcSnpOvmfHash(base.ovmf));
    const whats = t.parts.map((p) => p.what);
    for (const w of ['SNP_SEC_MEMORY', 'SNP_SECRETS', 'CPUID', 'SNP_KERNEL_HASHES']) assert.ok(whats.includes(w), w);
    const vmsas = t.parts.filter((p) => p.what === 'VMSA');
    assert.deepEqual(vmsas.map((p) => [p.detail, p.gpa, p.pageType]), [['vCPU 0 (BSP)', VMSA_GPA, 'vmsa'], ['vCPU 1', VMSA_GPA, 'vmsa']]);
    assert.deepEqual(t.parts[t.parts.length - 1].digest, t.digest);
    // Each part's pages chain: a page's digest is the running launch digest after it.
    for (const p of t.parts) assert.deepEqual(p.pages![p.pages!.length - 1].digest, p.digest);
    assert.ok(t.parts.find((p) => p.what === 'SNP_KERNEL_HASHES')!.pages![0].contents.some((b) => b !== 0), 'the hashes page is hashed');
  });

  it('the library names the cause: vCPU count, VMM type, the NUL, the INIT2 VMSA', () => {
    const cases: Array<[Partial<LaunchDigestOptions>, RegExp]> = [
      [{ vcpus: 5 }, /^5 vCPUs instead of 2$/],
      [{ vmmType: 'ec2' }, /^VMM EC2 instead of QEMU$/],
      [{ appendNul: false }, /without its terminating NUL/],
      [{ x87Init: false }, /legacy KVM_SEV_INIT/],
      [{ guestFeatures: 0x21n }, /guest features 0x21/],
      [{ vcpuType: 'EPYC-Genoa' }, /EPYC-Genoa/],
    ];
    for (const [changes, re] of cases) {
      const e = explainLaunchDigest(base, calcLaunchDigest({ ...base, ...changes }));
      assert.equal(e.match, false);
      assert.equal(e.matches.length, 1, `${re.source}: ${e.matches.map((m) => m.description).join('; ')}`);
      assert.match(e.matches[0].description, re);
    }
  });

  it('two changes at once are found for snp (pairs are tried after single changes)', () => {
    const e = explainLaunchDigest(base, calcLaunchDigest({ ...base, vcpus: 4, vmmType: 'gce' }));
    assert.equal(e.triedPairs, true);
    assert.deepEqual(e.matches.map((m) => m.flags), [{ set: ['--vcpus', '4', '--vmm-type', 'gce'], drop: [] }]);
  });

  it('a mismatch caused by the vCPU count: exit 1, the parts in order and the cause with its flag', () => {
    const r = sev([...flags, '--explain', expectedOf({ vcpus: 4 })]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /❌ the computed snp measurement is not the expected one/);
    assert.match(r.stdout, /1\. OVMF, firmware image: 1 normal page at 0xfffff000-0xffffffff/);
    assert.match(r.stdout, /SNP_SECRETS, secrets page: 1 secrets page at 0x[0-9a-f]+/);
    assert.match(r.stdout, /SNP_KERNEL_HASHES, kernel, initrd and command line hashes page/);
    assert.match(r.stdout, /VMSA, vCPU 1: 1 vmsa page at 0xfffffffff000\n\s+contents [0-9a-f]{96}\n\s+digest\s+[0-9a-f]{96}/);
    assert.match(r.stdout, /✅ 4 vCPUs instead of 2\n\s+--vcpus 4/);
  });

  it('a mismatch caused by the VMM type names --vmm-type', () => {
    const r = sev([...flags, '--explain', expectedOf({ vmmType: 'ec2' })]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /✅ VMM EC2 instead of QEMU\n\s+--vmm-type ec2/);
  });

  it('a mismatch caused by the command line\'s trailing NUL is named (no flag computes it)', () => {
    const r = sev([...flags, '--explain', expectedOf({ appendNul: false })]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /✅ the command line hashed without its terminating NUL/);
    assert.match(r.stdout, /no sev snp measure flag computes it/);
    // ...and one caused by an --append the launch did not have.
    const none = sev([...flags, '--explain', expectedOf({ append: undefined })]);
    assert.match(none.stdout, /✅ no --append \(QEMU hashes a lone NUL\)\n\s+without --append/);
  });

  it('a mismatch caused by the INIT2 VMSA names --vmsa-init, and --vmsa-init computes it', () => {
    const expected = expectedOf({ x87Init: false });
    const r = sev([...flags, '--explain', expected]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /✅ VMSAs as legacy KVM_SEV_INIT builds them .*\n\s+--vmsa-init legacy/);
    const legacy = sev([...flags, '--vmsa-init', 'legacy']);
    assert.equal(legacy.stdout.trim(), expected);
  });

  it('a match exits 0 and says so; EXPECTED may be base64', () => {
    const expected = Buffer.from(expectedOf({}), 'hex').toString('base64');
    const r = sev([...flags, '--explain', expected]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^✅ the computed snp measurement is the expected one: [0-9a-f]{96}$/m);
  });

  it('none matching is said, exit 1', () => {
    const r = sev([...flags, '--explain', 'ab'.repeat(48)]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /None of \d+ variations of the given options \(single changes, then pairs\) gives the expected measurement/);
  });

  it('--json: the same as structured data', () => {
    const expected = expectedOf({ vcpus: 3 });
    const r = sev(['--json', ...flags, '--explain', expected]);
    assert.equal(r.status, 1, r.stderr);
    const j = JSON.parse(r.stdout) as {
      mode: string; measurement: string; expected: string; match: boolean; algorithm: string; tried: number; tried_pairs: boolean;
      parts: Array<{ index: number; what: string; page_type: string; gpa: string; size: number; digest: string; pages: Array<{ type: string; gpa: string; contents: string; digest: string }> }>;
      matches: Array<{ causes: string[]; description: string; flags: { set: string[]; drop: string[] } | null; command_line: string }>;
    };
    assert.deepEqual([j.mode, j.expected, j.match, j.algorithm, j.tried_pairs], ['snp', expected, false, 'sha384', false]);
    assert.equal(j.measurement, expectedOf({}));
    assert.ok(j.tried > 64);
    assert.deepEqual(j.parts.map((p) => p.index), j.parts.map((_, i) => i + 1));
    assert.deepEqual(j.parts[0], { ...j.parts[0], what: 'OVMF', page_type: 'normal', gpa: '0xfffff000', size: 4096 });
    assert.match(j.parts[0].pages[0].contents, /^[0-9a-f]{96}$/);
    assert.equal(j.parts[j.parts.length - 1].digest, j.measurement);
    assert.deepEqual(j.matches, [{ causes: ['vcpus'], description: '3 vCPUs instead of 2', flags: { set: ['--vcpus', '3'], drop: [] }, command_line: '--vcpus 3' }]);
  });

  it('SEV-ES: SHA-256 parts (OVMF, hashes table, VMSAs) with the running digest; the vCPU count is named', () => {
    const r = sev(['--json', ...flags, '--mode', 'seves', '--explain', calcLaunchDigest({ ...base, mode: 'seves', vcpus: 3 }).toString('hex')]);
    assert.equal(r.status, 1, r.stderr);
    const j = JSON.parse(r.stdout) as { algorithm: string; parts: Array<{ what: string; sha256: string; digest: string }>; matches: Array<{ command_line: string }> };
    assert.equal(j.algorithm, 'sha256');
    assert.deepEqual(j.parts.map((p) => p.what), ['OVMF', 'SEV hashes table', 'VMSA', 'VMSA']);
    assert.equal(j.parts[0].sha256, j.parts[0].digest);
    assert.deepEqual(j.matches.map((m) => m.command_line), ['--vcpus 3']);
  });

  it('an EXPECTED of the wrong size is refused naming the size', () => {
    const r = sev([...flags, '--explain', 'ab'.repeat(32)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--explain must be 48 bytes/);
    assert.throws(() => explainLaunchDigest(base, Buffer.alloc(32)), SevArgumentError);
  });
});
