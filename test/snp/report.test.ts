// SEV-SNP ATTESTATION_REPORT: the two real Milan reports decode to every field vectors.json names,
// re-serialize byte for byte and verify with their VCEKs; synthetic version 3 and 5 reports
// (built by serializing edited reports) decode their new fields and TCB layouts; bad sizes,
// versions and reserved bits are refused with SevArgumentErrors; random input throws nothing else.
import * as assert from 'node:assert/strict';
import { verify, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import fc from 'fast-check';

import { SevArgumentError, SevError } from '../../lib/errors';
import {
  decodeGuestPolicy,
  decodePlatformInfo,
  encodeTcbVersion,
  formatReport,
  parseAttestationReport,
  REPORT_SIZE,
  reportToJSON,
  serializeReport,
  type AttestationReport,
} from '../../lib/snp';
import { fixturesDir, skipBecause } from '../helpers/env';

const RUNS = Number(process.env.SEV_FUZZ_RUNS ?? 300);
const snpDir = () => path.join(fixturesDir(), 'snp');

interface ReportVector {
  file: string;
  vcek: string;
  [field: string]: unknown;
}

let vectors: ReportVector[] = [];
const readSnp = (rel: string) => fs.readFileSync(path.join(snpDir(), rel));

/** `before` body: the SNP fixtures must be there in CI; elsewhere the suite skips, naming the directory. */
function requireSnpFixtures(ctx: Mocha.Context): void {
  const file = path.join(snpDir(), 'vectors.json');
  if (!fs.existsSync(file)) {
    const why = `SNP fixtures not found at ${snpDir()} (set SEV_FIXTURES to the shared fixtures directory)`;
    if (process.env.CI) throw new Error(why);
    skipBecause(ctx, why);
  }
  vectors = (JSON.parse(fs.readFileSync(file, 'utf8')) as { reports: ReportVector[] }).reports;
  assert.ok(vectors.length >= 2, 'vectors.json has the two real reports');
}

/** The report's signature checked with a VCEK: r and s are little-endian, node wants big-endian. */
function signatureVerifies(report: AttestationReport, vcekDer: Buffer): boolean {
  const be = (le: Buffer) => Buffer.from(le.subarray(0, 48)).reverse();
  const key = new X509Certificate(vcekDer).publicKey;
  const sig = Buffer.concat([be(report.signature.r), be(report.signature.s)]);
  return verify('sha384', report.signedBytes, { key, dsaEncoding: 'ieee-p1363' }, sig);
}

const argumentError = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SevArgumentError, `expected a SevArgumentError, got ${String(e)}`);
  assert.match((e as Error).message, pattern);
  return true;
};

describe('snp: attestation report, real Milan reports', function () {
  before(function () {
    requireSnpFixtures(this);
  });

  it('every field matches vectors.json', () => {
    for (const v of vectors) {
      const bytes = readSnp(v.file);
      const report = parseAttestationReport(bytes);
      const json = reportToJSON(report);
      // Vector fields that are facts about the VCEK certificate, for the certificate module.
      const certificateFacts = ['vcek_hwid_equals_chip_id', 'vcek_product_name'];
      const checked: Record<string, (expected: unknown) => void> = {
        file: () => undefined,
        vcek: () => undefined,
        note: () => undefined,
        size: (n) => assert.equal(report.raw.length, n),
        generation: (g) => assert.equal(report.generation, g),
        current_version: (s) => assert.equal(`${report.currentVersion.major}.${report.currentVersion.minor} build ${report.currentVersion.build}`, s),
        committed_version: (s) => assert.equal(`${report.committedVersion.major}.${report.committedVersion.minor} build ${report.committedVersion.build}`, s),
        bytes_0x188_0x1A0_zero: (z) => assert.equal(bytes.subarray(0x188, 0x1a0).every((b) => b === 0), z),
        signature_verifies_with_vcek: (ok) => assert.equal(signatureVerifies(report, readSnp(v.vcek)), ok),
        // The VCEK is issued for the reported TCB, so its SPLs are the reported TCB's parts.
        vcek_spl: (spl) => assert.deepEqual(json.reported_tcb_fields, spl),
      };
      for (const [field, expected] of Object.entries(v)) {
        if (certificateFacts.includes(field)) continue;
        if (checked[field]) checked[field](expected);
        else if (field in json) assert.deepEqual(json[field], expected, `${v.file}: ${field}`);
        else assert.fail(`${v.file}: vectors.json field ${field} is not checked here`);
      }

      // The same facts through the typed object others rely on.
      assert.equal(report.version, v.version);
      assert.equal(report.chipId.toString('hex'), v.chip_id);
      assert.equal(report.measurement.toString('hex'), v.measurement);
      for (const name of ['current', 'reported', 'committed', 'launch'] as const) {
        assert.equal(report[`${name}Tcb`].raw, BigInt(v[`${name}_tcb`] as string), `${name}_tcb`);
      }
      assert.equal(report.signingKey, 'vcek');
      assert.equal(report.cpuid, undefined);
      assert.equal(report.launchMitigationVector, undefined);
      assert.equal(report.generationSource, 'default');
      assert.deepEqual(report.signedBytes, bytes.subarray(0, 0x2a0));
      assert.deepEqual(report.signature.r, bytes.subarray(0x2a0, 0x2e8));
      assert.deepEqual(report.signature.s, bytes.subarray(0x2e8, 0x330));
      assert.deepEqual(report.raw, bytes);
    }
  });

  it('a changed signed byte or signature byte no longer verifies (so the check above means something)', () => {
    const v = vectors[0];
    const bytes = readSnp(v.file);
    for (const at of [0x90, 0x2a0]) {
      const copy = Buffer.from(bytes);
      copy[at] ^= 1;
      assert.equal(signatureVerifies(parseAttestationReport(copy), readSnp(v.vcek)), false, `byte ${at}`);
    }
  });

  it('round trip: serializeReport gives back the same 1184 bytes', () => {
    for (const v of vectors) {
      const bytes = readSnp(v.file);
      const out = serializeReport(parseAttestationReport(bytes));
      assert.equal(out.length, REPORT_SIZE);
      assert.ok(out.equals(bytes), v.file);
    }
  });

  it('the parsed report is a copy: changing the input later changes nothing', () => {
    const bytes = Buffer.from(readSnp(vectors[0].file));
    const report = parseAttestationReport(bytes);
    bytes.fill(0);
    assert.equal(report.measurement.toString('hex'), vectors[0].measurement);
    // and editing a field (to build another report) leaves the parsed raw and signed bytes alone
    report.measurement.fill(0);
    report.signature.r.fill(0);
    assert.deepEqual(report.raw, readSnp(vectors[0].file));
    assert.deepEqual(report.signedBytes, readSnp(vectors[0].file).subarray(0, 0x2a0));
  });

  it('the text display names every field with its value', () => {
    const report = parseAttestationReport(readSnp(vectors[0].file));
    const text = formatReport(report);
    const flat = text.replace(/ {2,}/g, ' '); // labels without the column padding
    const rows = (b: Buffer) => b.toString('hex').match(/.{1,32}/g)!.map((row) => row.match(/../g)!.join(' '));
    for (const b of [report.measurement, report.chipId, report.reportData, report.reportId, report.reportIdMa, report.signature.r, report.signature.s]) {
      for (const row of rows(b)) assert.ok(text.includes(row), row);
    }
    for (const label of [
      'Version: 2', 'Guest SVN:', 'Guest Policy (0x30000):', 'SMT Allowed: yes', 'Debug Allowed: no',
      'Family ID:', 'Image ID:', 'VMPL:', 'Signature Algorithm: 1 (ECDSA P-384 with SHA-384)',
      'Current TCB (0x7308000000000003):', 'Microcode: 115', 'Platform Info (0x1):', 'Signing Key: VCEK',
      'Host Data:', 'ID Key Digest:', 'Author Key Digest:', 'Reported TCB', 'Committed TCB', 'Launch TCB',
      'Current Version: 1.52.4', 'Committed Version: 1.52.4', 'TCB Layout: milan (assumed',
    ]) {
      assert.ok(flat.includes(label), label);
    }
    assert.ok(!text.includes('CPUID'), 'a version 2 report has no CPUID fields');
  });
});

/** A real report edited into another version: the object is changed, then serialized and re-parsed. */
function edited(base: AttestationReport, changes: Partial<AttestationReport>): Buffer {
  return serializeReport({ ...base, ...changes });
}

describe('snp: attestation report, synthetic versions 3 and 5', function () {
  let base: AttestationReport;
  before(function () {
    requireSnpFixtures(this);
    base = parseAttestationReport(readSnp(vectors[0].file));
  });

  it('version 3 carries CPUID family/model/stepping at 0x188..0x18A and names the generation', () => {
    for (const [family, model, generation] of [[0x19, 0x01, 'milan'], [0x19, 0x11, 'genoa'], [0x19, 0xa0, 'genoa']] as const) {
      const bytes = edited(base, { version: 3, cpuid: { family, model, stepping: 2 }, generation });
      assert.deepEqual([...bytes.subarray(0x188, 0x18b)], [family, model, 2]);
      const r = parseAttestationReport(bytes);
      assert.deepEqual(r.cpuid, { family, model, stepping: 2 });
      assert.equal(r.generation, generation);
      assert.equal(r.generationSource, 'cpuid');
      assert.deepEqual(r.reportedTcb, base.reportedTcb, 'Milan and Genoa share the TCB layout');
      assert.equal(r.launchMitigationVector, undefined);
      assert.equal(reportToJSON(r).cpuid_fam_id, `0x${family.toString(16)}`);
      assert.ok(serializeReport(r).equals(bytes));
    }
  });

  it('Turin TCB layout: fmc byte 0, bootloader 1, tee 2, snp 3, microcode 7', () => {
    const tcb = encodeTcbVersion({ fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 }, 'turin');
    assert.equal(tcb.raw, 0x0500000004030201n);
    const bytes = edited(base, {
      version: 3, cpuid: { family: 0x1a, model: 0x02, stepping: 1 }, generation: 'turin',
      currentTcb: tcb, reportedTcb: tcb, committedTcb: tcb, launchTcb: tcb,
    });
    assert.deepEqual([...bytes.subarray(0x180, 0x188)], [1, 2, 3, 4, 0, 0, 0, 5]);
    const r = parseAttestationReport(bytes);
    assert.equal(r.generation, 'turin');
    assert.deepEqual(r.reportedTcb, tcb);
    assert.deepEqual(reportToJSON(r).launch_tcb_fields, { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 });
    assert.match(formatReport(r), /FMC: +1\n/);
    // The same TCB bytes under a Milan CPUID read with the Milan layout.
    const milanCpu = Buffer.from(bytes);
    milanCpu[0x188] = 0x19;
    milanCpu[0x189] = 0x01;
    const asMilan = parseAttestationReport(milanCpu);
    assert.equal(asMilan.generation, 'milan');
    assert.deepEqual(asMilan.reportedTcb, { raw: tcb.raw, bootloader: 1, tee: 2, snp: 0, microcode: 5 });
  });

  it('Milan TCB layout: bootloader byte 0, tee 1, snp 6, microcode 7', () => {
    const tcb = encodeTcbVersion({ bootloader: 3, tee: 0, snp: 8, microcode: 115 }, 'milan');
    assert.equal(tcb.raw, 0x7308000000000003n);
    assert.throws(() => encodeTcbVersion({ fmc: 1, bootloader: 0, tee: 0, snp: 0, microcode: 0 }, 'genoa'), argumentError(/no fmc/));
  });

  it('version 5 adds the mitigation vectors and the new policy / platform info bits', () => {
    const policy = decodeGuestPolicy(base.policy.raw | (1n << 25n) | (1n << 24n));
    const platformInfo = decodePlatformInfo((1n << 0n) | (1n << 5n) | (1n << 7n));
    const bytes = edited(base, {
      version: 5, cpuid: { family: 0x19, model: 0x11, stepping: 1 }, generation: 'genoa', policy, platformInfo,
      launchMitigationVector: 0x1122334455667788n, currentMitigationVector: 0x3n,
      authorKeyEn: true, signingKey: 'vlek',
    });
    assert.equal(bytes.readBigUInt64LE(0x1f8), 0x1122334455667788n);
    assert.equal(bytes.readBigUInt64LE(0x200), 3n);
    assert.equal(bytes.readUInt32LE(0x48), 0b00101);
    const r = parseAttestationReport(bytes);
    assert.equal(r.version, 5);
    assert.equal(r.launchMitigationVector, 0x1122334455667788n);
    assert.equal(r.currentMitigationVector, 3n);
    assert.equal(r.policy.pageSwapDisable, true);
    assert.equal(r.policy.ciphertextHiding, true);
    assert.equal(r.policy.debug, false);
    assert.deepEqual([r.platformInfo.smtEn, r.platformInfo.aliasCheckComplete, r.platformInfo.tioEn, r.platformInfo.tsmeEn], [true, true, true, false]);
    assert.equal(r.signingKey, 'vlek');
    assert.equal(r.authorKeyEn, true);
    const json = reportToJSON(r);
    assert.equal(json.launch_mit_vector, '0x1122334455667788');
    assert.equal(json.current_mit_vector, '0x3');
    assert.deepEqual(json.flags_fields, { author_key_en: true, mask_chip_key: false, signing_key: 'vlek' });
    assert.equal((json.policy_fields as Record<string, boolean>).page_swap_disable, true);
    assert.equal((json.platform_info_fields as Record<string, boolean>).tio_en, true);
    const text = formatReport(r);
    assert.match(text, /Launch Mitigation Vector: +0x1122334455667788/);
    assert.match(text, /CPUID Model ID: +0x11/);
    assert.ok(serializeReport(r).equals(bytes));
  });

  it('version 4 reads with the version 3 layout', () => {
    const r = parseAttestationReport(edited(base, { version: 4, cpuid: { family: 0x19, model: 0x01, stepping: 1 } }));
    assert.equal(r.version, 4);
    assert.equal(r.cpuid?.model, 1);
    assert.equal(r.currentMitigationVector, undefined);
  });

  it('JSON has every field of its version', () => {
    const common = [
      'version', 'guest_svn', 'policy', 'policy_fields', 'family_id', 'image_id', 'vmpl', 'signature_algo',
      'current_tcb', 'current_tcb_fields', 'platform_info', 'platform_info_fields', 'flags', 'flags_fields',
      'report_data', 'measurement', 'host_data', 'id_key_digest', 'author_key_digest', 'report_id', 'report_id_ma',
      'reported_tcb', 'reported_tcb_fields', 'chip_id', 'committed_tcb', 'committed_tcb_fields',
      'current_build', 'current_minor', 'current_major', 'committed_build', 'committed_minor', 'committed_major',
      'launch_tcb', 'launch_tcb_fields', 'signature', 'generation', 'generation_source',
    ];
    assert.deepEqual(Object.keys(reportToJSON(base)).sort(), [...common].sort());
    const v5 = parseAttestationReport(edited(base, {
      version: 5, cpuid: { family: 0x19, model: 1, stepping: 1 }, launchMitigationVector: 0n, currentMitigationVector: 0n,
    }));
    assert.deepEqual(
      Object.keys(reportToJSON(v5)).sort(),
      [...common, 'cpuid_fam_id', 'cpuid_mod_id', 'cpuid_step', 'launch_mit_vector', 'current_mit_vector'].sort(),
    );
    assert.doesNotThrow(() => JSON.stringify(reportToJSON(v5)));
  });
});

describe('snp: attestation report, refused input', function () {
  let bytes: Buffer;
  let base: AttestationReport;
  before(function () {
    requireSnpFixtures(this);
    bytes = readSnp(vectors[0].file);
    base = parseAttestationReport(bytes);
  });

  it('a report that is not 1184 bytes, naming the length', () => {
    for (const n of [0, 1, 0x2a0, 1183, 1185, 2368]) {
      const b = Buffer.alloc(n);
      bytes.copy(b, 0, 0, Math.min(n, bytes.length));
      assert.throws(() => parseAttestationReport(b), argumentError(new RegExp(`1184 \\(0x4a0\\) bytes, got ${n}$`)));
    }
    assert.throws(() => parseAttestationReport('report' as unknown as Uint8Array), argumentError(/Buffer or Uint8Array/));
  });

  it('versions other than 2-5, naming the version', () => {
    for (const version of [0, 1, 6, 7, 0x100, 0xffffffff]) {
      const b = Buffer.from(bytes);
      b.writeUInt32LE(version, 0);
      assert.throws(() => parseAttestationReport(b), argumentError(new RegExp(`report version ${version} is not supported`)));
      assert.throws(() => serializeReport({ ...base, version }), argumentError(new RegExp(`report version ${version} is not supported`)));
    }
  });

  it('non-zero reserved bytes, naming the offset (per version)', () => {
    const cases: Array<[number, number]> = [[2, 0x4c], [2, 0x188], [2, 0x19f], [3, 0x18b], [2, 0x1eb], [2, 0x1ef], [4, 0x1f8], [5, 0x208], [5, 0x29f], [2, 0x330], [2, 0x49f]];
    for (const [version, at] of cases) {
      const b = Buffer.from(bytes);
      b.writeUInt32LE(version, 0);
      if (version >= 3) b[0x188] = 0x19;
      b[at] = 0x80;
      assert.throws(() => parseAttestationReport(b), argumentError(new RegExp(`reserved byte 0x${at.toString(16)} .*version ${version}`)), `v${version} 0x${at.toString(16)}`);
    }
  });

  it('reserved flag bits and signing_key values 2-6', () => {
    const b = Buffer.from(bytes);
    b.writeUInt32LE(1 << 5, 0x48);
    assert.throws(() => parseAttestationReport(b), argumentError(/reserved bits 31:5/));
    for (const code of [2, 3, 6]) {
      b.writeUInt32LE(code << 2, 0x48);
      assert.throws(() => parseAttestationReport(b), argumentError(new RegExp(`signing_key ${code} is reserved`)));
    }
    b.writeUInt32LE(7 << 2 | 2, 0x48);
    const r = parseAttestationReport(b);
    assert.deepEqual([r.signingKey, r.maskChipKey], ['none', true]);
  });

  it('a generation that contradicts the CPUID fields, or a CPUID no generation has', () => {
    const turin = edited(base, { version: 3, cpuid: { family: 0x1a, model: 0x02, stepping: 0 }, generation: 'turin', ...turinTcbs(base) });
    assert.throws(() => parseAttestationReport(turin, { generation: 'milan' }), argumentError(/generation milan contradicts the report's CPUID family 0x1a model 0x2 \(turin\)/));
    assert.equal(parseAttestationReport(turin, { generation: 'turin' }).generationSource, 'option');
    const unknown = Buffer.from(turin);
    unknown[0x189] = 0x50;
    assert.throws(() => parseAttestationReport(unknown), argumentError(/CPUID family 0x1a model 0x50 is no known SNP generation/));
    assert.equal(parseAttestationReport(unknown, { generation: 'turin' }).reportedTcb.fmc, 3);
    assert.throws(() => parseAttestationReport(bytes, { generation: 'rome' as 'milan' }), argumentError(/generation must be one of milan, genoa, turin/));
    assert.equal(parseAttestationReport(bytes, { generation: 'genoa' }).generation, 'genoa');
  });

  it('serializeReport refuses fields that do not fit the version or disagree with their raw value', () => {
    const bad: Array<[Partial<AttestationReport>, RegExp]> = [
      [{ currentTcb: { ...base.currentTcb, snp: 9 } }, /currentTcb\.snp is 9 but currentTcb\.raw says 8/],
      [{ reportedTcb: { ...base.reportedTcb, fmc: 1 } }, /reportedTcb\.fmc is 1 but reportedTcb\.raw says undefined/],
      [{ policy: { ...base.policy, debug: true } }, /policy\.debug is true but policy\.raw says false; build policy with decodeGuestPolicy/],
      [{ platformInfo: { ...base.platformInfo, raw: 3n } }, /platformInfo\.tsmeEn is false but platformInfo\.raw says true/],
      [{ cpuid: { family: 0x19, model: 1, stepping: 0 } }, /cpuid is only in version 3/],
      [{ version: 3 }, /version 3 report needs cpuid/],
      [{ launchMitigationVector: 1n }, /only in version 5/],
      [{ version: 5, cpuid: { family: 0x19, model: 1, stepping: 0 } }, /launchMitigationVector must be a non-negative integer or bigint/],
      [{ version: 3, cpuid: { family: 0x19, model: 1, stepping: 0 }, generation: 'genoa' }, /generation genoa contradicts/],
      [{ measurement: Buffer.alloc(32) }, /measurement must be 48 bytes, got 32/],
      [{ signature: { r: base.signature.r, s: Buffer.alloc(48) } }, /signature\.s must be 72 bytes, got 48/],
      [{ signingKey: 'ask' as 'vcek' }, /signingKey must be vcek, vlek or none/],
      [{ guestSvn: -1 }, /guestSvn must be in/],
      [{ currentVersion: { major: 1, minor: 256, build: 0 } }, /currentVersion\.minor must be in \[0, 255\]/],
    ];
    for (const [changes, pattern] of bad) assert.throws(() => serializeReport({ ...base, ...changes }), argumentError(pattern), pattern.source);
    assert.throws(() => serializeReport(null as unknown as AttestationReport), argumentError(/expected a parsed report, got null/));
  });
});

function turinTcbs(r: AttestationReport): Partial<AttestationReport> {
  const t = encodeTcbVersion({ fmc: 3, bootloader: 1, tee: 0, snp: 2, microcode: r.currentTcb.microcode }, 'turin');
  return { currentTcb: t, reportedTcb: t, committedTcb: t, launchTcb: t };
}

describe('snp: attestation report, fuzz', function () {
  let bytes: Buffer;
  before(function () {
    requireSnpFixtures(this);
    bytes = readSnp(vectors[0].file);
  });

  /** Parsing either succeeds — and then everything else works and round-trips — or throws a SevError. */
  function parsesOrRefuses(b: Buffer, generation?: 'milan' | 'genoa' | 'turin'): void {
    let r: AttestationReport;
    try {
      r = parseAttestationReport(b, { generation });
    } catch (e) {
      if (e instanceof SevError) return;
      throw new assert.AssertionError({ message: `expected a SevError, got ${(e as Error)?.stack ?? String(e)}` });
    }
    assert.ok(serializeReport(r).equals(b));
    JSON.stringify(reportToJSON(r));
    formatReport(r);
  }

  it('random bytes of any length', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1300 }), fc.uint8Array({ minLength: REPORT_SIZE, maxLength: REPORT_SIZE })), (b) => {
        parsesOrRefuses(Buffer.from(b));
      }),
      { numRuns: RUNS },
    );
  });

  it('a real report with random bit flips, versions and generations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: REPORT_SIZE * 8 - 1 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(2, 3, 4, 5, 6),
        fc.constantFrom(undefined, 'milan', 'genoa', 'turin'),
        (bits, version, generation) => {
          const b = Buffer.from(bytes);
          b.writeUInt32LE(version, 0);
          for (const bit of bits) b[bit >> 3] ^= 1 << (bit & 7);
          parsesOrRefuses(b, generation as 'milan' | undefined);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('every single-bit flip of the real report is parsed or refused, never mis-serialized', () => {
    let accepted = 0;
    for (let bit = 0; bit < REPORT_SIZE * 8; bit++) {
      const b = Buffer.from(bytes);
      b[bit >> 3] ^= 1 << (bit & 7);
      try {
        const r = parseAttestationReport(b);
        assert.ok(serializeReport(r).equals(b), `bit ${bit}`);
        accepted++;
      } catch (e) {
        if (!(e instanceof SevArgumentError)) throw e;
      }
    }
    // Flips in fields are accepted, flips in reserved bytes or the version are refused.
    assert.ok(accepted > 0 && accepted < REPORT_SIZE * 8, `${accepted} accepted`);
  });
});
