// Every vector of sevctl's own suite (fixtures/sevctl/vectors.json) through `node bin/sev.js`
// with sevctl's flags, plus the `vmsa show` / `vmsa update` cases of its suite.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fixture, flags, OVMF, readFixture, requireSevctlFixtures, sev, sevctlFixtures, tryLoadVectors } from './fixtures';

// Read at load time so each vector gets its own named test; when the fixtures are absent the
// suite's `before` hook skips (or, in CI, fails) it.
const vectors = tryLoadVectors() ?? { measurement_build: [], secret_build: [], vmsa_build: [] };

describe('sev CLI: sevctl vectors', function () {
  let tmp: string;
  before(function () {
    requireSevctlFixtures(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-owner-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('vectors.json has 4 measurement, 3 secret and 2 VMSA vectors', () => {
    assert.equal(vectors.measurement_build.length, 4);
    assert.equal(vectors.secret_build.length, 3);
    assert.equal(vectors.vmsa_build.length, 2);
  });

  describe('measurement build', () => {
    for (const v of vectors.measurement_build) {
      it(`vector: ${v.name}`, () => {
        const r = sev(['measurement', 'build', ...flags(v.args)]);
        assert.equal(r.status, 0, `${v.name}: ${r.stderr}`);
        assert.equal(r.stdout.trim(), v.expected, v.name);
      });
    }

    it('every vector verifies with `measurement verify --measurement <expected>`', () => {
      for (const v of vectors.measurement_build) {
        const { nonce: _nonce, 'launch-measure-blob': _blob, ...inputs } = v.args;
        const r = sev(['measurement', 'verify', '--measurement', v.expected, ...flags(inputs)]);
        assert.equal(r.status, 0, `${v.name}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /^OK/);
      }
    });

    it('--outfile writes the 48-byte blob in binary', () => {
      const v = vectors.measurement_build[0];
      const out = path.join(tmp, 'measure.bin');
      const r = sev(['measurement', 'build', ...flags(v.args), '--outfile', out]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), `Wrote outfile: ${out}`);
      assert.equal(fs.readFileSync(out).toString('base64'), v.expected);
    });

    it('SEV-ES: VMSAs built from the CPU signature equal the sevctl VMSA files', () => {
      const v = vectors.measurement_build[3];
      const { 'vmsa-cpu0': _0, 'vmsa-cpu1': _1, ...rest } = v.args;
      for (const cpu of [['--cpu-type', 'EPYC-Milan'], ['--cpu-family', '25', '--cpu-model', '1', '--cpu-stepping', '1', '--userspace', 'qemu']]) {
        const r = sev(['measurement', 'build', ...flags(rest), ...cpu]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), v.expected);
      }
    });

    it('--json gives the parts', () => {
      const v = vectors.measurement_build[1];
      const r = sev(['--json', 'measurement', 'build', ...flags(v.args)]);
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.launchMeasureBlob, v.expected);
      assert.equal(Buffer.from(j.measurement, 'base64').length, 32);
      assert.equal(j.mnonce, v.args.nonce);
      assert.equal(Buffer.from(j.launchDigest, 'base64').length, 32);
    });
  });

  describe('secret build', () => {
    const build = (args: Record<string, string | string[]>, name: string) => {
      const header = path.join(tmp, `${name}.header`);
      const payload = path.join(tmp, `${name}.payload`);
      const r = sev(['secret', 'build', ...flags(args), header, payload]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `Wrote header to: ${header}\nWrote payload to: ${payload}\n`);
      return { header: fs.readFileSync(header), payload: fs.readFileSync(payload) };
    };

    for (const [i, v] of vectors.secret_build.entries()) {
      if (v.expected_header_b64 === undefined) continue;
      it(`vector: ${v.name}`, () => {
        const out = build(v.args, `s${i}`);
        assert.equal(out.header.toString('base64'), v.expected_header_b64, v.name);
        assert.equal(out.payload.toString('base64'), v.expected_payload_b64, v.name);
      });
    }

    for (const v of vectors.secret_build.filter((x) => x.expected_payload_length !== undefined)) {
      it(`vector: ${v.name}`, () => {
      const a = build(v.args, 's3');
      assert.equal(a.payload.length, v.expected_payload_length);
      const secret4 = { ...v.args, secret: [(v.args.secret as string[])[0].replace('secret3', 'secret4')] };
      const b = build(secret4, 's4');
      assert.equal(b.payload.length, 16384);
      assert.equal(a.header.length, 52);
      });
    }

    it('without --iv the IV is random', () => {
      const { iv: _iv, ...args } = vectors.secret_build[0].args;
      const a = build(args, 'r1');
      const b = build(args, 'r2');
      assert.notDeepEqual(a.header, b.header);
      assert.notDeepEqual(a.payload, b.payload);
    });
  });

  describe('vmsa', () => {
    for (const [i, v] of vectors.vmsa_build.entries()) {
      it(`build vector: cpu ${v.args.cpu} is byte-identical to ${v.expected_file}`, () => {
        const out = path.join(tmp, `vmsa${i}.bin`);
        const r = sev(['vmsa', 'build', out, ...flags(v.args)]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.readFileSync(out).equals(readFixture(v.expected_file)), v.expected_file);
      });
    }

    for (const n of [0, 1]) {
      it(`show vmsa${n}.bin prints vmsa${n}-show.txt`, () => {
        const r = sev(['vmsa', 'show', `vmsa${n}.bin`]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, fs.readFileSync(fixture(`vmsa${n}-show.txt`), 'utf8'));
      });
    }

    it('update: same args keep the file; --cpu 1 turns vmsa0 into vmsa1 (sevctl tests/vmsaupdate.rs)', () => {
      const cases: Array<[string, number, string]> = [['vmsa0.bin', 0, 'vmsa0.bin'], ['vmsa1.bin', 1, 'vmsa1.bin'], ['vmsa0.bin', 1, 'vmsa1.bin']];
      for (const [input, cpu, expected] of cases) {
        const file = path.join(tmp, `update-${input}-${cpu}`);
        fs.copyFileSync(fixture(input), file);
        const r = sev(['vmsa', 'update', file, '--cpu', String(cpu), '--family', '25', '--model', '1', '--stepping', '1',
          '--userspace', 'qemu', '--firmware', path.join(sevctlFixtures(), OVMF)]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.readFileSync(file).equals(readFixture(expected)), `${input} --cpu ${cpu}`);
      }
    });
  });
});
