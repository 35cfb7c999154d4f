// SnpReportVerifier: the chain checked once, then many reports against it — the same verdicts as
// verifyAttestation, on the real Milan reports and AMD's Milan chain.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SevArgumentError } from '../../lib/errors';
import { parseSnpCertificate, type SnpLink } from '../../lib/snp/certs';
import { REPORT_SIGNED_SIZE } from '../../lib/snp/report';
import { SnpReportVerifier, verifyAttestation } from '../../lib/snp/verify';
import { fixturesDir } from '../helpers/env';

const SNP = path.join(fixturesDir(), 'snp');
const read = (rel: string) => fs.readFileSync(path.join(SNP, rel));

function flip(bytes: Buffer, pos: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[pos] ^= 0x01;
  return copy;
}

const failed = (links: SnpLink[]) => links.filter((l) => !l.ok).map((l) => `${l.signer}${l.check === 'fields' ? '≡' : '→'}${l.subject}`);

describe('snp: SnpReportVerifier (one chain, many reports)', function () {
  let ark: Buffer, ask: Buffer;
  let virtee: { report: Buffer; vcek: Buffer };
  let google: { report: Buffer; vcek: Buffer };

  before(function () {
    if (!fs.existsSync(path.join(SNP, 'milan', 'report.bin'))) {
      const why = `SNP fixtures not found at ${SNP} (set SEV_FIXTURES to the fixtures directory)`;
      if (process.env.CI) throw new Error(why);
      console.warn(`      skipped: ${why}`);
      this.skip();
    }
    ark = read('amd/milan/ark.pem');
    ask = read('amd/milan/ask.pem');
    virtee = { report: read('milan/report.bin'), vcek: read('milan/vcek.der') };
    google = { report: read('milan-go-sev-guest/report.bin'), vcek: read('milan-go-sev-guest/vcek.der') };
  });

  it('gives the verdict of verifyAttestation for both real reports, good and bad', () => {
    for (const r of [virtee, google]) {
      const verifier = new SnpReportVerifier({ ark, ask, vcek: r.vcek });
      assert.equal(verifier.chain.ok, true);
      const reports = [r.report, flip(r.report, 0x90), flip(r.report, 0x1a0), flip(r.report, 0x2a0), flip(r.report, REPORT_SIGNED_SIZE + 200)];
      for (const report of reports) {
        assert.deepEqual(verifier.verify(report), verifyAttestation({ report, ark, ask, vcek: r.vcek }));
      }
      assert.equal(verifier.verify(r.report).ok, true);
    }
  });

  it('keeps verifying good reports after bad ones, and never accepts another chip\'s report', () => {
    const verifier = new SnpReportVerifier({ ark, ask, vcek: virtee.vcek });
    for (let i = 0; i < 3; i++) {
      assert.equal(verifier.verify(virtee.report).ok, true);
      assert.deepEqual(failed(verifier.verify(flip(virtee.report, 0x50 + i)).links), ['VCEK→REPORT']);
      assert.deepEqual(failed(verifier.verify(google.report).links), ['VCEK→REPORT', 'VCEK≡REPORT']);
    }
  });

  it('carries a broken chain into every result, even when the report\'s signature is good', () => {
    const der = parseSnpCertificate(ask).der;
    const verifier = new SnpReportVerifier({ ark, ask: flip(der, der.length - 20), vcek: virtee.vcek });
    assert.equal(verifier.chain.ok, false);
    const result = verifier.verify(virtee.report);
    assert.equal(result.ok, false);
    assert.deepEqual(failed(result.links), ['ARK→ASK']);
    // A chain without its VCEK cannot check any report.
    const noVcek = new SnpReportVerifier({ ark, ask }).verify(virtee.report);
    assert.deepEqual(failed(noVcek.links), ['ASK→VCEK', 'VCEK→REPORT', 'VCEK≡REPORT']);
    assert.match(noVcek.links[3].reason!, /VCEK not usable/);
  });

  it('an ARK that is not a pinned root fails every result', () => {
    const verifier = new SnpReportVerifier({ ark: ask, ask, vcek: virtee.vcek });
    const result = verifier.verify(virtee.report);
    assert.equal(result.ok, false);
    assert.match(result.links[0].reason!, /not a pinned AMD SNP root/);
  });

  it('checks the chain when it is made, at `now`', () => {
    const expired = new SnpReportVerifier({ ark, ask, vcek: virtee.vcek }, { now: new Date('2100-01-01T00:00:00Z') });
    assert.equal(expired.chain.ok, false);
    assert.equal(expired.verify(virtee.report).ok, false);
  });

  it('its chain verdict cannot be changed through the verifier or a result', () => {
    const verifier = new SnpReportVerifier({ ark: ask, ask, vcek: virtee.vcek });
    const first = verifier.verify(virtee.report);
    first.links[0].ok = true;
    first.links.splice(0, 1);
    assert.equal(verifier.verify(virtee.report).links[0].ok, false);
    assert.throws(() => {
      (verifier.chain.links[0] as { ok: boolean }).ok = true;
    }, TypeError);
    assert.throws(() => {
      (verifier.chain as { ok: boolean }).ok = true;
    }, TypeError);
    assert.equal(verifier.verify(virtee.report).ok, false);
  });

  it('refuses what is not a 1184-byte report', () => {
    const verifier = new SnpReportVerifier({ ark, ask, vcek: virtee.vcek });
    assert.throws(() => verifier.verify(virtee.report.subarray(0, 1183)), (e: unknown) => e instanceof SevArgumentError && /1184 bytes; got 1183/.test(e.message));
    assert.throws(() => verifier.verify('report' as unknown as Uint8Array), SevArgumentError);
  });
});
