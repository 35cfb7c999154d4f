// The SEV-SNP guest side end to end, against the emulator's guest (`sev-emu run --guest`):
// /dev/sev-guest and configfs-tsm answered as Linux 7.2 does, reports signed by the emulated VCEK.
//   node bin/sev-emu.js run --temp-state --guest -- node node_modules/.bin/mocha --no-config -t 120000 dist/test/snp/guest-emu.test.js
// (`npm test` runs it so, after the main pass.) Inside a real SNP guest it runs unchanged. Skips
// (saying why) where there is no guest device, unless SEV_REQUIRE_GUEST (or CI) demands one.
import * as assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SnpGuestError } from '../../lib/errors';
import { native } from '../../lib/native';
import { parseSnpCertificate, vcekExtensions } from '../../lib/snp/certs';
import { GUEST_PAGE_SIZE, SNP_CERTS_MAX_SIZE, SnpGuestDevice } from '../../lib/snp/guest';
import { parseAttestationReport, SNP_GENERATIONS, type SnpGeneration } from '../../lib/snp/report';
import { DEFAULT_TSM_REPORT_PATH, getTsmReport } from '../../lib/snp/tsm';
import { verifyAttestation } from '../../lib/snp/verify';
import { sev, skipBecause } from '../helpers/env';

const { EINVAL, EIO } = os.constants.errno;
const required = Boolean(process.env.SEV_REQUIRE_GUEST || process.env.CI);

function guestOrSkip(ctx: Mocha.Context): void {
  try {
    SnpGuestDevice.open().close();
  } catch (e) {
    const why = `no SEV-SNP guest device (${(e as Error).message.split(':').slice(0, 2).join(':')}); run under \`sev-emu run --guest\``;
    if (required) throw new Error(why);
    skipBecause(ctx, why);
  }
}

/** The emulated generation, for the emulated (untrusted-by-default) ARK's chain checks. */
function generation(): SnpGeneration | undefined {
  const g = native.emulator();
  return g && (SNP_GENERATIONS as readonly string[]).includes(g) ? (g as SnpGeneration) : undefined;
}

const nonce = (b: number) => Buffer.alloc(64, b);

describe('SNP guest on the emulator (/dev/sev-guest, configfs-tsm)', function () {
  this.timeout(120_000);
  let dev: SnpGuestDevice;
  before(function () {
    guestOrSkip(this);
    dev = SnpGuestDevice.open();
  });
  after(() => dev?.close());

  it('SNP_GET_REPORT: a report that parses and echoes report_data and vmpl', async () => {
    for (const vmpl of [0, 1, 3]) {
      const data = nonce(0x10 + vmpl);
      const r = await dev.getReport({ reportData: data, vmpl });
      assert.equal(r.raw.length, 1184);
      assert.deepEqual(r.report.reportData, data);
      assert.equal(r.report.vmpl, vmpl);
    }
    const sync = dev.getReportSync({ reportData: nonce(7) });
    assert.deepEqual(parseAttestationReport(sync.raw).reportData, nonce(7));
  });

  it('vmpl 4: the firmware refuses with INVALID_PARAM in the response (a typed error, ioctl success)', async () => {
    await assert.rejects(dev.getReport({ vmpl: 4 }), (e: unknown) => {
      assert.ok(e instanceof SnpGuestError, String(e));
      assert.equal(e.firmwareStatusName, 'INVALID_PARAM');
      assert.equal(e.errno, 0);
      assert.equal(e.command, 'SNP_GET_REPORT');
      return true;
    });
  });

  it('msg_version 0 → EINVAL from the kernel', async () => {
    await assert.rejects(dev.getReport({ msgVersion: 0 }), (e: unknown) => e instanceof SnpGuestError && e.errno === EINVAL);
    assert.throws(() => dev.getDerivedKeySync({ rootKey: 'vcek', msgVersion: 0 }), (e: unknown) => e instanceof SnpGuestError && e.errno === EINVAL);
  });

  it('the raw ioctls: null request or response → EINVAL; bad certs_len → EINVAL; a short buffer → EIO + INVALID_LEN with the needed length', () => {
    const raw = new native.SevGuestDevice('/dev/sev-guest');
    try {
      const req = Buffer.alloc(96);
      const resp = Buffer.alloc(4000);
      assert.equal(raw.getReport(1, null, resp, false).errno, EINVAL);
      assert.equal(raw.getReport(1, req, null, false).errno, EINVAL);
      assert.equal(raw.getDerivedKey(1, null, Buffer.alloc(64), false).errno, EINVAL);
      const certs = Buffer.alloc(SNP_CERTS_MAX_SIZE + GUEST_PAGE_SIZE);
      assert.equal(raw.getExtReport(1, req, resp, certs, 100, false).errno, EINVAL, 'not page aligned');
      assert.equal(raw.getExtReport(1, req, resp, certs, SNP_CERTS_MAX_SIZE + GUEST_PAGE_SIZE, false).errno, EINVAL, 'more than 16 KiB');
      // No certificate buffer: a plain report.
      const plain = raw.getExtReport(1, req, resp, null, 0, false);
      assert.equal(plain.errno, 0);
      assert.equal(resp.readUInt32LE(0), 0);
      // One page cannot hold VCEK + ASK + ARK.
      const small = raw.getExtReport(1, req, resp, Buffer.alloc(GUEST_PAGE_SIZE), GUEST_PAGE_SIZE, false);
      assert.equal(small.errno, EIO, JSON.stringify(small, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v)));
      assert.equal(small.vmmError, 1);
      assert.equal(small.exitinfo2, 1n << 32n);
      assert.ok(small.certsLen > GUEST_PAGE_SIZE && small.certsLen % GUEST_PAGE_SIZE === 0 && small.certsLen <= SNP_CERTS_MAX_SIZE, `needed ${small.certsLen}`);
    } finally {
      raw.close();
    }
  });

  it('SNP_GET_EXT_REPORT: VCEK, ASK and ARK; the VCEK parses and matches the report; the chain and signature verify', async () => {
    const data = nonce(0x42);
    const r = await dev.getExtReport({ reportData: data, vmpl: 1 });
    assert.deepEqual(r.report.reportData, data);
    const byName = new Map(r.certificates.map((c) => [c.name, c]));
    for (const name of ['vcek', 'ask', 'ark'] as const) assert.ok(byName.has(name), `a ${name} entry: ${r.certificates.map((c) => c.name ?? c.guid).join(', ')}`);
    assert.ok(r.certificates.every((c) => c.guidByteOrder === 'uuid'), 'GUIDs in text byte order (as virtee/sev and AMD\'s tools write them)');
    const vcek = parseSnpCertificate(byName.get('vcek')!.data);
    assert.equal(vcek.commonName, 'SEV-VCEK');
    const ext = vcekExtensions(vcek);
    assert.ok(ext.hwId === undefined || Buffer.from(ext.hwId).equals(r.report.chipId.subarray(0, ext.hwId.length)), 'the VCEK is this chip\'s');
    const ark = byName.get('ark')!.data;
    const gen = generation();
    const verdict = verifyAttestation({
      report: r.raw,
      ark,
      ask: byName.get('ask')!.data,
      vcek: byName.get('vcek')!.data,
      trustedArks: [new X509Certificate(ark).publicKey],
      ...(gen ? { generation: gen } : {}),
    });
    assert.ok(verdict.ok, JSON.stringify(verdict, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 1));
  });

  it('SNP_GET_EXT_REPORT starting with one page retries once with the length the kernel asks for', () => {
    const small = dev.getExtReportSync({ reportData: nonce(1), certsLength: GUEST_PAGE_SIZE });
    const full = dev.getExtReportSync({ reportData: nonce(2) });
    assert.ok(small.certsBlob.length > GUEST_PAGE_SIZE);
    assert.deepEqual(small.certificates.map((c) => [c.name, c.data.toString('hex')]), full.certificates.map((c) => [c.name, c.data.toString('hex')]));
  });

  it('SNP_GET_DERIVED_KEY: 32 bytes, the same for the same inputs, different when the measurement is mixed in or the root changes', async () => {
    const base = { rootKey: 'vcek' as const, vmpl: 1, guestFieldSelect: { policy: true } };
    const a = await dev.getDerivedKey(base);
    const b = dev.getDerivedKeySync(base);
    assert.equal(a.length, 32);
    assert.deepEqual(a, b);
    const withMeasurement = await dev.getDerivedKey({ ...base, guestFieldSelect: { policy: true, measurement: true } });
    assert.notDeepEqual(withMeasurement, a);
    const vmrk = await dev.getDerivedKey({ ...base, rootKey: 'vmrk' });
    assert.notDeepEqual(vmrk, a);
    assert.throws(() => dev.getDerivedKeySync({ rootKey: 'vcek', vmpl: 4 }), SevArgumentError);
  });

  it('configfs-tsm: a report that parses, echoes report_data and privlevel, with the certificate table; the entry is removed', function () {
    let r;
    try {
      r = getTsmReport({ reportData: nonce(0x77), privlevel: 2 });
    } catch (e) {
      if (!required && e instanceof SnpGuestError && e.code === 'ENOENT') skipBecause(this, (e as Error).message);
      throw e;
    }
    assert.equal(r.provider, 'sev_guest');
    assert.deepEqual(r.report.reportData, nonce(0x77));
    assert.equal(r.report.vmpl, 2);
    if (r.certificates.length) assert.ok(r.certificates.some((c) => c.name === 'vcek'));
    // Entries are created and removed: a second report gets a fresh one.
    const again = getTsmReport({ reportData: nonce(0x78) });
    assert.deepEqual(again.report.reportData, nonce(0x78));
    assert.ok(DEFAULT_TSM_REPORT_PATH.startsWith('/sys/kernel/config'));
  });

  describe('the CLI (snpguest\'s verbs)', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snp-guest-cli-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    for (const provider of ['sev-guest', 'configfs-tsm']) {
      it(`report --random --provider ${provider}: the request data written, the report carrying it`, () => {
        const report = path.join(dir, 'report.bin');
        const request = path.join(dir, 'request.bin');
        const r = sev(['--json', 'snp', 'report', report, request, '--random', '--vmpl', '0', '--provider', provider]);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        const data = fs.readFileSync(request);
        assert.equal(data.length, 64);
        const parsed = parseAttestationReport(fs.readFileSync(report));
        assert.deepEqual(parsed.reportData, data);
        assert.equal(parsed.vmpl, 0);
        assert.equal((JSON.parse(r.stdout) as { provider: string }).provider, provider);
      });
    }

    it('report REQUEST_FILE: its 64 bytes are the report data; other sizes are refused', () => {
      const request = path.join(dir, 'req.bin');
      fs.writeFileSync(request, nonce(0x33));
      const report = path.join(dir, 'r.bin');
      const ok = sev(['snp', 'report', report, request]);
      assert.equal(ok.status, 0, ok.stderr);
      const parsed = parseAttestationReport(fs.readFileSync(report));
      assert.deepEqual(parsed.reportData, nonce(0x33));
      assert.equal(parsed.vmpl, 1, 'snpguest\'s default VMPL');
      fs.writeFileSync(request, Buffer.alloc(10));
      const bad = sev(['snp', 'report', report, request]);
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /exactly 64 bytes/);
    });

    it('certificates pem|der: vcek, ask and ark files that parse; verify attestation accepts them with the emulated ARK trusted', () => {
      for (const enc of ['pem', 'der']) {
        const certs = path.join(dir, `certs-${enc}`);
        const r = sev(['snp', 'certificates', enc, certs]);
        assert.equal(r.status, 0, r.stderr);
        for (const name of ['vcek', 'ask', 'ark']) {
          const bytes = fs.readFileSync(path.join(certs, `${name}.${enc}`));
          assert.equal(bytes.subarray(0, 5).toString() === '-----', enc === 'pem', `${name}.${enc} encoding`);
          parseSnpCertificate(bytes);
        }
      }
      // snpguest's extended workflow: report + certificates → verify (the emulated ARK named as trusted).
      const certs = path.join(dir, 'certs-pem');
      const report = path.join(dir, 'report.bin');
      assert.equal(sev(['snp', 'report', report, path.join(dir, 'req.bin'), '--random']).status, 0);
      const verified = sev(['snp', 'verify', 'attestation', certs, report, '--trust-ark', path.join(certs, 'ark.pem')]);
      assert.equal(verified.status, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /✅ VCEK ⟶ REPORT/);
    });

    it('key: 32 bytes, mode 0600, deterministic; display key prints it in hex; bad flags are refused', () => {
      const k1 = path.join(dir, 'k1');
      const k2 = path.join(dir, 'k2');
      const k3 = path.join(dir, 'k3');
      assert.equal(sev(['snp', 'key', k1, 'vcek', '--guest_field_select', '1000']).status, 0);
      assert.equal(sev(['snp', 'key', k2, 'vcek', '-g', '1000', '-v', '1']).status, 0);
      assert.equal(sev(['snp', 'key', k3, 'vmrk', '--guest-field-select', '0001', '--guest-svn', '0', '--tcb-version', '0']).status, 0);
      const key = fs.readFileSync(k1);
      assert.equal(key.length, 32);
      assert.equal(fs.statSync(k1).mode & 0o777, 0o600);
      assert.deepEqual(fs.readFileSync(k2), key);
      assert.notDeepEqual(fs.readFileSync(k3), key);
      const shown = sev(['snp', 'display', 'key', k1]);
      assert.equal(shown.status, 0);
      assert.equal(shown.stdout.replace(/\s/g, ''), key.toString('hex'));
      const bad = sev(['snp', 'key', path.join(dir, 'k4'), 'vcek', '--vmpl', '4']);
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /--vmpl must be 0..3/);
      assert.ok(!fs.existsSync(path.join(dir, 'k4')));
    });
  });
});
