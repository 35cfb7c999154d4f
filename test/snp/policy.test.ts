// Policy checks on SNP reports (lib/snp/policy): on both real Milan reports every check passes
// with the report's own values (taken from vectors.json, not from the parser) and fails, naming
// the field with the expected and actual value, when the expectation changes; policy files with
// unknown keys, bad hex, wrong lengths or out-of-range values are refused naming the key; the CLI
// prints each check and exits 1 when one fails.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError } from '../../lib/errors';
import {
  formatPolicyResult,
  parseAttestationReport,
  parseReportPolicy,
  validateReport,
  type AttestationReport,
  type PolicyResult,
  type ReportPolicy,
} from '../../lib/snp';
import { fixturesDir, sev, skipBecause } from '../helpers/env';

const snpDir = () => path.join(fixturesDir(), 'snp');

interface ReportVector {
  file: string;
  [field: string]: unknown;
}

interface Loaded {
  vector: ReportVector;
  report: AttestationReport;
}

let loaded: Loaded[] = [];

const BYTE_KEYS = ['measurement', 'host_data', 'report_data', 'family_id', 'image_id', 'chip_id', 'id_key_digest', 'report_id', 'report_id_ma'];
const TCB_PARTS = ['bootloader', 'tee', 'snp', 'microcode'] as const;
const GUEST_POLICY_BITS: Record<string, number> = {
  smt: 16, migrate_ma: 18, debug: 19, single_socket: 20, cxl_allow: 21, mem_aes_256_xts: 22, rapl_dis: 23, ciphertext_hiding: 24, page_swap_disable: 25,
};
const PLATFORM_INFO_BITS: Record<string, number> = {
  smt_en: 0, tsme_en: 1, ecc_en: 2, rapl_dis: 3, ciphertext_hiding_en: 4, alias_check_complete: 5, tio_en: 7,
};

/** "1.52 build 4" → { major: 1, minor: 52, build: 4 }. */
function versionOf(text: unknown): { major: number; minor: number; build: number } {
  const m = /^(\d+)\.(\d+) build (\d+)$/.exec(String(text));
  assert.ok(m, `version text ${String(text)}`);
  return { major: Number(m[1]), minor: Number(m[2]), build: Number(m[3]) };
}

const bit = (value: unknown, n: number) => ((BigInt(String(value)) >> BigInt(n)) & 1n) === 1n;

/** A policy file (snake_case) that asks for every check, with the vector's own values. */
function fullPolicy(v: ReportVector): Record<string, unknown> {
  const version = versionOf(v.current_version);
  const tcb = v.current_tcb_fields as Record<string, number>;
  return {
    ...Object.fromEntries(BYTE_KEYS.map((k) => [k, String(v[k])])),
    minimum_guest_svn: v.guest_svn,
    minimum_tcb: { ...tcb },
    minimum_launch_tcb: String(v.launch_tcb),
    permit_provisional_firmware: false,
    guest_policy: {
      ...Object.fromEntries(Object.entries(GUEST_POLICY_BITS).map(([k, n]) => [k, bit(v.policy, n)])),
      abi_minimum: `${Number((BigInt(String(v.policy)) >> 8n) & 0xffn)}.${Number(BigInt(String(v.policy)) & 0xffn)}`,
    },
    platform_info: Object.fromEntries(Object.entries(PLATFORM_INFO_BITS).map(([k, n]) => [k, bit(v.platform_info, n)])),
    vmpl: v.vmpl,
    maximum_vmpl: v.vmpl,
    author_key_en: bit(v.flags, 0),
    minimum_build: version.build,
    minimum_version: `${version.major}.${version.minor}`,
    signing_key: 'vcek',
  };
}

/** Hex text with its first byte changed. */
const flip = (hexText: string) => (parseInt(hexText.slice(0, 2), 16) ^ 0x01).toString(16).padStart(2, '0') + hexText.slice(2);

function validateFile(report: AttestationReport, json: object): PolicyResult {
  return validateReport(report, parseReportPolicy(JSON.stringify(json)));
}

/** The result fails exactly the given fields, each with the expected and actual text given. */
function assertFails(result: PolicyResult, expected: Array<{ field: string; expected?: string | RegExp; actual?: string | RegExp }>): void {
  assert.equal(result.ok, false);
  assert.deepEqual(result.failures.map((f) => f.field), expected.map((e) => e.field), formatPolicyResult(result));
  expected.forEach((e, i) => {
    const f = result.failures[i];
    if (typeof e.expected === 'string') assert.equal(f.expected, e.expected, e.field);
    if (e.expected instanceof RegExp) assert.match(f.expected, e.expected, e.field);
    if (typeof e.actual === 'string') assert.equal(f.actual, e.actual, e.field);
    if (e.actual instanceof RegExp) assert.match(f.actual, e.actual, e.field);
  });
}

const argumentError = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SevArgumentError, `expected a SevArgumentError, got ${String(e)}`);
  assert.match((e as Error).message, pattern);
  return true;
};

describe('SNP report policy', () => {
  before(function () {
    const file = path.join(snpDir(), 'vectors.json');
    if (!fs.existsSync(file)) {
      const why = `SNP fixtures not found at ${snpDir()} (set SEV_FIXTURES to the shared fixtures directory)`;
      if (process.env.CI) throw new Error(why);
      skipBecause(this, why);
    }
    const vectors = (JSON.parse(fs.readFileSync(file, 'utf8')) as { reports: ReportVector[] }).reports;
    assert.ok(vectors.length >= 2, 'vectors.json has the two real reports');
    loaded = vectors.map((vector) => ({ vector, report: parseAttestationReport(fs.readFileSync(path.join(snpDir(), vector.file))) }));
  });

  it('every check passes with the real report\'s own values', () => {
    for (const { vector, report } of loaded) {
      const result = validateFile(report, fullPolicy(vector));
      assert.deepEqual(result.failures, [], `${vector.file}:\n${formatPolicyResult(result)}`);
      assert.equal(result.ok, true);
      const fields = new Set(result.checks.map((c) => c.field));
      for (const f of [...BYTE_KEYS, 'guest_svn', 'policy.debug', 'policy.abi', 'platform_info.smt_en', 'vmpl', 'author_key_en',
        'current_tcb.snp', 'reported_tcb.microcode', 'committed_tcb.bootloader', 'launch_tcb.tee', 'committed_tcb', 'committed_version',
        'current_build', 'committed_build', 'current_version', 'signing_key']) {
        assert.ok(fields.has(f), `${vector.file}: a check of ${f}`);
      }
    }
  });

  it('an empty policy checks nothing and passes', () => {
    const result = validateReport(loaded[0].report, {});
    assert.deepEqual(result, { ok: true, checks: [], failures: [] });
  });

  it('each byte field fails when the expected value differs, naming the field, expected and actual', () => {
    for (const { vector, report } of loaded) {
      for (const key of BYTE_KEYS) {
        const real = String(vector[key]);
        const other = flip(real);
        assertFails(validateFile(report, { [key]: other }), [{ field: key, expected: other, actual: real }]);
        // The same with 0x and upper case passes.
        assert.equal(validateFile(report, { [key]: `0x${real.toUpperCase()}` }).ok, true, key);
      }
    }
  });

  it('a list of allowed values passes when one matches and fails naming all of them otherwise', () => {
    const { vector, report } = loaded[0];
    const real = String(vector.measurement);
    const others = [flip(real), flip(flip(real).split('').reverse().join(''))];
    assert.equal(validateFile(report, { measurement: [others[0], real] }).ok, true);
    assertFails(validateFile(report, { measurement: others }), [{ field: 'measurement', expected: `one of ${others.join(', ')}`, actual: real }]);
    const chip = String(vector.chip_id);
    assert.equal(validateFile(report, { chip_id: [flip(chip), chip] }).ok, true);
    assertFails(validateFile(report, { chip_id: [flip(chip)] }), [{ field: 'chip_id', actual: chip }]);
  });

  it('minimum TCB: applied to the current, reported and committed TCB; the launch minimum to the launch TCB', () => {
    for (const { vector, report } of loaded) {
      const tcb = vector.current_tcb_fields as Record<string, number>;
      for (const part of TCB_PARTS) {
        const higher = tcb[part] + 1;
        assertFails(validateFile(report, { minimum_tcb: { [part]: higher } }), ['current_tcb', 'reported_tcb', 'committed_tcb'].map((t) => ({
          field: `${t}.${part}`, expected: `≥ ${higher}`, actual: String(tcb[part]),
        })));
        assertFails(validateFile(report, { minimum_launch_tcb: `${part}=${higher}` }), [{ field: `launch_tcb.${part}`, expected: `≥ ${higher}`, actual: String(tcb[part]) }]);
        assert.equal(validateFile(report, { minimum_tcb: { [part]: tcb[part] } }).ok, true);
      }
      // As a 64-bit TCB_VERSION: the report's own passes, one more microcode (byte 7) fails.
      const raw = BigInt(String(vector.reported_tcb));
      assert.equal(validateFile(report, { minimum_tcb: `0x${raw.toString(16)}` }).ok, true);
      assertFails(validateFile(report, { minimum_launch_tcb: `0x${(raw + (1n << 56n)).toString(16)}` }), [{ field: 'launch_tcb.microcode', actual: String(tcb.microcode) }]);
      // A Milan TCB has no FMC: asking for one fails rather than passing unseen.
      assertFails(validateFile(report, { minimum_launch_tcb: { fmc: 0 } }), [{ field: 'launch_tcb.fmc', actual: /no fmc/ }]);
    }
  });

  it('guest policy bits: each required or forbidden against the report, and the minimum ABI version', () => {
    for (const { vector, report } of loaded) {
      for (const [name, n] of Object.entries(GUEST_POLICY_BITS)) {
        const actual = bit(vector.policy, n);
        const want = !actual;
        assertFails(validateFile(report, { guest_policy: { [name]: want } }), [{
          field: `policy.${name}`, expected: want ? 'set' : 'clear', actual: actual ? 'set' : 'clear',
        }]);
        assert.equal(validateFile(report, { guest_policy: { [name]: actual } }).ok, true, name);
      }
      // Both reports' policies say ABI 0.0.
      assert.equal(validateFile(report, { guest_policy: { abi_minimum: '0.0' } }).ok, true);
      assertFails(validateFile(report, { guest_policy: { abi_minimum: '0.1' } }), [{ field: 'policy.abi', expected: '≥ 0.1', actual: '0.0' }]);
    }
    // go-sev-guest's report has policy 0xb0000: bits 16 (SMT), 17 (reserved, set) and 19 (debug).
    const gsg = loaded.find((l) => l.vector.file.startsWith('milan-go-sev-guest'))!;
    assert.equal(gsg.report.policy.debug, true, 'policy 0xb0000 has debug (bit 19) set');
    assertFails(validateFile(gsg.report, { guest_policy: { debug: false } }), [{ field: 'policy.debug', expected: 'clear', actual: 'set' }]);
  });

  it('platform info bits: each required or forbidden against the report', () => {
    for (const { vector, report } of loaded) {
      for (const [name, n] of Object.entries(PLATFORM_INFO_BITS)) {
        const actual = bit(vector.platform_info, n);
        assertFails(validateFile(report, { platform_info: { [name]: !actual } }), [{
          field: `platform_info.${name}`, expected: actual ? 'clear' : 'set', actual: actual ? 'set' : 'clear',
        }]);
      }
    }
  });

  it('VMPL exact and maximum, guest SVN, firmware build and version, signing key', () => {
    const { vector, report } = loaded[0];
    const version = versionOf(vector.current_version);
    assertFails(validateFile(report, { vmpl: 1 }), [{ field: 'vmpl', expected: '= 1', actual: '0' }]);
    assertFails(validateReport({ ...report, vmpl: 2 }, { maximumVmpl: 1 }), [{ field: 'vmpl', expected: '≤ 1', actual: '2' }]);
    assert.equal(validateReport({ ...report, vmpl: 1 }, { maximumVmpl: 1 }).ok, true);
    assertFails(validateFile(report, { minimum_guest_svn: 1 }), [{ field: 'guest_svn', expected: '≥ 1', actual: '0' }]);
    assertFails(validateFile(report, { minimum_build: version.build + 1 }), [
      { field: 'current_build', expected: `≥ ${version.build + 1}`, actual: String(version.build) },
      { field: 'committed_build', expected: `≥ ${version.build + 1}`, actual: String(version.build) },
    ]);
    const next = `${version.major}.${version.minor + 1}`;
    assertFails(validateFile(report, { minimum_version: next }), [
      { field: 'current_version', expected: `≥ ${next}`, actual: `${version.major}.${version.minor}` },
      { field: 'committed_version', expected: `≥ ${next}`, actual: `${version.major}.${version.minor}` },
    ]);
    assert.equal(validateFile(report, { minimum_version: '0.255' }).ok, true, 'major counts before minor');
    assertFails(validateFile(report, { signing_key: 'vlek' }), [{ field: 'signing_key', expected: 'vlek', actual: 'vcek' }]);
    assert.equal(validateFile(report, { signing_key: ['vlek', 'vcek'] }).ok, true);
  });

  it('ID and author keys: digests one of several; an author key digest needs author_key_en', () => {
    const { vector, report } = loaded[0];
    const zeros = String(vector.author_key_digest);
    const other = flip(zeros);
    assert.equal(validateFile(report, { id_key_digest: [other, String(vector.id_key_digest)] }).ok, true);
    assertFails(validateFile(report, { id_key_digest: other }), [{ field: 'id_key_digest', expected: other, actual: String(vector.id_key_digest) }]);
    // The real report has no author key: even its (zero) digest does not match.
    assertFails(validateFile(report, { author_key_digest: zeros }), [{ field: 'author_key_digest', actual: /author_key_en is clear/ }]);
    assertFails(validateFile(report, { author_key_en: true }), [{ field: 'author_key_en', expected: 'set', actual: 'clear' }]);
    const withAuthor: AttestationReport = { ...report, authorKeyEn: true, authorKeyDigest: Buffer.from(other, 'hex') };
    assert.equal(validateReport(withAuthor, { authorKeyDigest: other, authorKeyEn: true }).ok, true);
    assertFails(validateReport(withAuthor, { authorKeyEn: false }), [{ field: 'author_key_en', expected: 'clear', actual: 'set' }]);
  });

  it('provisional firmware: committed equal to current unless permitted, and never above it', () => {
    const { report } = loaded[0];
    const lower = { ...report.currentTcb, raw: report.currentTcb.raw - (1n << 48n), snp: report.currentTcb.snp - 1 };
    const older = { ...report.committedVersion, build: report.committedVersion.build - 1 };
    const provisional: AttestationReport = { ...report, committedTcb: lower, committedVersion: older };
    assert.equal(validateReport(report, { permitProvisionalFirmware: false }).ok, true);
    assertFails(validateReport(provisional, { permitProvisionalFirmware: false }), [
      { field: 'committed_tcb', expected: `= current_tcb 0x${report.currentTcb.raw.toString(16)}`, actual: `0x${lower.raw.toString(16)}` },
      { field: 'committed_version', actual: `${older.major}.${older.minor} build ${older.build}` },
    ]);
    assert.equal(validateReport(provisional, { permitProvisionalFirmware: true }).ok, true);
    // Committed above current is refused even when provisional firmware is permitted.
    const ahead: AttestationReport = { ...report, currentTcb: lower, currentVersion: older };
    assertFails(validateReport(ahead, { permitProvisionalFirmware: true }), [
      { field: 'committed_tcb.snp', expected: `≤ current_tcb.snp ${lower.snp}`, actual: String(report.currentTcb.snp) },
      { field: 'committed_version' },
    ]);
  });

  it('the API takes camelCase keys with Buffers, and parseReportPolicy\'s result round-trips', () => {
    const { vector, report } = loaded[1];
    const policy: ReportPolicy = {
      measurement: Buffer.from(String(vector.measurement), 'hex'),
      reportData: String(vector.report_data),
      minimumTcb: { snp: 5 },
      guestPolicy: { smt: true, abiMinimum: { major: 0, minor: 0 } },
      platformInfo: { smtEn: true },
    };
    assert.equal(validateReport(report, policy).ok, true);
    const parsed = parseReportPolicy(fullPolicy(vector));
    assert.ok(Buffer.isBuffer((parsed.measurement as Buffer[])[0]));
    assert.equal(validateReport(report, parsed).ok, true);
    // snake_case is the file's spelling only.
    assert.throws(() => validateReport(report, { host_data: String(vector.host_data) } as unknown as ReportPolicy), argumentError(/unknown key 'host_data'/));
  });

  it('a YAML policy reads as its JSON twin; YAML numbers keep their text (hex of decimal digits stays hex)', () => {
    const json = parseReportPolicy(JSON.stringify({
      measurement: ['0123'.repeat(24)], vmpl: 0, minimum_tcb: '0xd516000000000003', guest_policy: { debug: false }, minimum_version: '1.51',
    }));
    const yaml = parseReportPolicy([
      'measurement:', `  - ${'0123'.repeat(24)}`, 'vmpl: 0', 'minimum_tcb: 0xd516000000000003', 'guest_policy:', '  debug: false', 'minimum_version: "1.51"', '',
    ].join('\n'));
    assert.deepEqual(yaml, json);
    assert.throws(() => parseReportPolicy('measurement: [1,'), (e: unknown) => e instanceof SevArgumentError && /neither JSON nor YAML/.test(e.message));
    assert.throws(() => parseReportPolicy('{ "vmpl": '), /the policy is not JSON/);
  });

  it('policy files: unknown keys, bad hex, wrong lengths and bad values are errors naming the key', () => {
    const m = String(loaded[0].vector.measurement);
    const cases: Array<[unknown, RegExp]> = [
      ['{ "measurment": "00" }', /unknown key 'measurment'/],
      [{ hostData: '00' }, /unknown key 'hostData'/],
      [{ guest_policy: { debgu: false } }, /unknown key 'debgu' in guest_policy/],
      [{ platform_info: { smt: true } }, /unknown key 'smt' in platform_info/],
      [{ minimum_tcb: { snpp: 1 } }, /unknown key 'snpp' in minimum_tcb/],
      [{ minimum_tcb: 'snpp=1' }, /unknown key 'snpp' in minimum_tcb/],
      [{ measurement: `${m.slice(0, -1)}x` }, /measurement: .* is not hex/],
      [{ measurement: m.slice(2) }, /measurement must be 48 bytes \(96 hex digits\), got 47/],
      [{ host_data: m }, /host_data must be 32 bytes/],
      [{ report_data: '00' }, /report_data must be 64 bytes/],
      [{ chip_id: [m] }, /chip_id\[0\] must be 64 bytes/],
      [{ measurement: [] }, /measurement: an empty list/],
      [{ measurement: 42 }, /measurement must be hex text or bytes/],
      [{ vmpl: 4 }, /vmpl must be an integer from 0 to 3/],
      [{ maximum_vmpl: '7' }, /maximum_vmpl=7/],
      [{ minimum_build: 256 }, /minimum_build/],
      [{ minimum_version: '1' }, /minimum_version must be "major.minor"/],
      [{ minimum_version: '1.256' }, /minimum_version minor/],
      [{ minimum_tcb: { snp: 256 } }, /minimum_tcb.snp/],
      [{ minimum_tcb: '0x1ffffffffffffffff' }, /minimum_tcb must be TCB parts/],
      [{ guest_policy: { debug: 'false' } }, /guest_policy.debug must be true or false/],
      [{ guest_policy: { abi_minimum: 'x' } }, /guest_policy.abi_minimum must be "major.minor"/],
      [{ signing_key: 'ark' }, /signing_key must be vcek, vlek, none/],
      [{ permit_provisional_firmware: 1 }, /permit_provisional_firmware must be true or false/],
      ['[]', /the policy must be an object/],
      ['{ "measurement": ', /the policy is not JSON/],
    ];
    for (const [input, pattern] of cases) {
      assert.throws(() => parseReportPolicy(input as string | object), argumentError(pattern), JSON.stringify(input));
    }
  });

  it('formatPolicyResult: one ✅/❌ line per check with expected and actual', () => {
    const { vector, report } = loaded[0];
    const text = formatPolicyResult(validateFile(report, { vmpl: 0, minimum_guest_svn: 1 }));
    assert.equal(text, ['❌ Policy (2 checks, 1 failed)', '❌ guest_svn: expected ≥ 1, got 0', `✅ vmpl: ${String(vector.vmpl)} (expected = 0)`].join('\n'));
  });
});

describe('sev snp verify attestation --policy (CLI)', function () {
  this.timeout(60_000);
  let dir = '';
  const args = () => {
    const s = snpDir();
    return ['snp', 'verify', 'attestation', path.join(s, 'milan', 'report.bin'), '--vcek', path.join(s, 'milan', 'vcek.der'), '--cert-chain', path.join(s, 'milan', 'cert_chain.pem')];
  };
  before(function () {
    if (loaded.length === 0) skipBecause(this, `the SNP fixtures are not in ${snpDir()} (set SEV_FIXTURES)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-snp-policy-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const writePolicy = (name: string, policy: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof policy === 'string' ? policy : JSON.stringify(policy));
    return file;
  };

  it('a policy file the report satisfies: every check ✅, exit 0; --json has them', () => {
    const file = writePolicy('good.json', fullPolicy(loaded[0].vector));
    const r = sev([...args(), '--policy', file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /✅ VCEK ⟶ REPORT/);
    assert.match(r.stdout, /^✅ Policy \(\d+ checks, 0 failed\)$/m);
    assert.match(r.stdout, new RegExp(`^✅ measurement: ${String(loaded[0].vector.measurement)} \\(expected`, 'm'));
    assert.doesNotMatch(r.stdout, /❌/);
    const json = sev(['--json', ...args(), '--policy', file]);
    assert.equal(json.status, 0, json.stderr);
    const out = JSON.parse(json.stdout) as { ok: boolean; links: unknown[]; policy: PolicyResult };
    assert.equal(out.ok, true);
    assert.ok(out.links.length >= 5);
    assert.ok(out.policy.checks.length > 20);
    assert.deepEqual(out.policy.failures, []);
  });

  it('flags: a changed measurement, host data or minimum TCB fails, exit 1, naming field, expected and actual', () => {
    const v = loaded[0].vector;
    const other = flip(String(v.measurement));
    const r = sev([...args(), '--measurement', other, '--host-data', `0x${String(v.host_data)}`, '--minimum-tcb', 'snp=9', '--vmpl', '0']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /✅ VCEK ⟶ REPORT/, 'the chain still verifies');
    assert.match(r.stdout, new RegExp(`^❌ measurement: expected ${other}, got ${String(v.measurement)}$`, 'm'));
    assert.match(r.stdout, /^✅ host_data: 0{64} \(expected 0{64}\)$/m);
    assert.match(r.stdout, /^❌ reported_tcb\.snp: expected ≥ 9, got 8$/m);
    assert.match(r.stdout, /^✅ vmpl: 0 \(expected = 0\)$/m);
    const json = sev(['--json', ...args(), '--measurement', other, '--measurement', String(v.measurement), '--report-data', flip(String(v.report_data))]);
    assert.equal(json.status, 1);
    const out = JSON.parse(json.stdout) as { ok: boolean; policy: PolicyResult };
    assert.equal(out.ok, false);
    assert.deepEqual(out.policy.failures.map((f) => f.field), ['report_data'], 'two --measurement values: one of them matches');
  });

  it('flags override the policy file\'s keys', () => {
    const file = writePolicy('vmpl.json', { vmpl: 1 });
    assert.equal(sev([...args(), '--policy', file]).status, 1);
    assert.equal(sev([...args(), '--policy', file, '--vmpl', '0']).status, 0);
  });

  it('a malformed report fails the policy as one check naming the parser\'s reason', () => {
    const bytes = fs.readFileSync(path.join(snpDir(), 'milan', 'report.bin'));
    bytes[0x04c] = 1; // a reserved byte
    const file = path.join(dir, 'malformed.bin');
    fs.writeFileSync(file, bytes);
    const [, , , , ...certs] = args();
    const r = sev(['snp', 'verify', 'attestation', file, ...certs, '--vmpl', '0']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^❌ report: expected a well-formed attestation report, got .*reserved byte 0x4c/m);
  });

  it('a bad policy file is an error naming the key, with no verdict', () => {
    const r = sev([...args(), '--policy', writePolicy('typo.json', { measurment: String(loaded[0].vector.measurement) })]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown key 'measurment'/);
    assert.equal(r.stdout, '');
    const bad = sev([...args(), '--host-data', 'abcd']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /host_data must be 32 bytes/);
  });
});
