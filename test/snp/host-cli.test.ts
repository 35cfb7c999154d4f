// The SNP platform administrator's commands (snphost's verbs) on an emulated SNP host: show,
// config set/reset, commit, vlek-load, cert-table import/export; a lowered reported TCB is what
// guests' reports carry and what their VCEK is fetched for.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseCertTable } from '../../lib/snp/cert-table';
import { emulated, SEV_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

describe('sev snp show|config|commit|vlek-load|cert-table (host)', function () {
  this.timeout(120_000);
  let dir: string;
  before(function () {
    if (!emulated) skipBecause(this, 'changes the platform\'s SNP configuration: emulator only');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-snp-host-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  const sev = `"${process.execPath}" "${SEV_BIN}"`;

  it('show version|guests|identifier|tcb|vcek-url', () => {
    const r = underFreshEmulator(['--host-snp', '--fw', '1.55.21'], ['sh', '-c',
      `${sev} snp show version && ${sev} snp show guests && ${sev} --json snp show tcb && ${sev} snp show identifier && ${sev} snp show vcek-url`]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '1.55.21');
    assert.equal(lines[1], '0');
    const tcb = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'), r.stdout.indexOf('\n}\n') + 2)) as { generation: string; reported: { raw: string }; platform: { raw: string } };
    assert.equal(tcb.generation, 'milan');
    assert.equal(tcb.reported.raw, tcb.platform.raw);
    const id = lines.find((l) => /^[0-9A-F]{128}$/.test(l));
    assert.ok(id, r.stdout);
    assert.ok(r.stdout.includes(`https://kdsintf.amd.com/vcek/v1/Milan/${id.toLowerCase()}?blSPL=`), r.stdout);
  });

  it('config set lowers the reported TCB: guests\' reports carry it and verify with the VCEK for it; reset restores it', () => {
    const script = [
      `${sev} snp config set 2 0 8 115 0`,
      `${sev} --json snp show tcb > tcb.json`,
      `${sev} snp report r.bin req.bin --random`,
      `${sev} --json snp display report r.bin > report.json`,
      `${sev} snp fetch ca --generation milan certs && ${sev} snp fetch vcek r.bin certs`,
      `${sev} snp verify attestation certs r.bin --minimum-tcb bootloader=2,tee=0,snp=8,microcode=115`,
      `${sev} snp commit`,
      `${sev} snp config reset`,
      `${sev} --json snp show tcb > tcb2.json`,
    ].join(' && ');
    const r = underFreshEmulator(['--guest', '--kds'], ['sh', '-c', `cd "${dir}" && ${script}`]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const tcb = JSON.parse(fs.readFileSync(path.join(dir, 'tcb.json'), 'utf8')) as { reported: { raw: string; snp: number }; platform: { raw: string } };
    assert.deepEqual([tcb.reported.raw, tcb.reported.snp], ['0x7308000000000002', 8]);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as Record<string, unknown>;
    assert.match(JSON.stringify(report.reported_tcb), /7308000000000002|"snp":8/);
    assert.match(r.stdout, /✅ SEV-SNP attestation \(milan/);
    const after = JSON.parse(fs.readFileSync(path.join(dir, 'tcb2.json'), 'utf8')) as { reported: { raw: string }; platform: { raw: string } };
    assert.equal(after.reported.raw, after.platform.raw);
  });

  it('bad config and VLEK input: usage errors before the ioctl; a hashstick nobody wrapped is refused by the firmware', () => {
    const stick = path.join(dir, 'hashstick.bin');
    fs.writeFileSync(stick, Buffer.alloc(432, 7));
    const r = underFreshEmulator(['--host-snp'], ['sh', '-c',
      `${sev} snp config set 1 2 3 4 9; echo "mask=$?"; ${sev} snp config set 1 2 3 4 0 5; echo "fmc=$?"; ${sev} snp vlek-load /etc/hostname; echo "short=$?"; ${sev} snp vlek-load "${stick}"; echo "stick=$?"`]);
    assert.match(r.stdout, /mask=[12]\b/);
    assert.match(r.stdout, /fmc=2\b/);
    assert.match(r.stderr, /MASK-CHIP/);
    assert.match(r.stderr, /FMC is a Turin TCB field/);
    assert.match(r.stderr, /a wrapped VLEK hashstick is 432 bytes/);
    assert.match(r.stdout, /short=[12]\b/);
    assert.match(r.stdout, /stick=1\b/);
    assert.match(r.stderr, /SNP_VLEK_LOAD failed: EIO \(firmware status BAD_SIGNATURE\)/);
    const plain = underFreshEmulator([], [process.execPath, SEV_BIN, 'snp', 'vlek-load', stick]);
    assert.match(plain.stderr, /ENODEV/, 'no SNP on the host: ENODEV as 7.2');
  });

  it('sev ok snp checks SNP_PLATFORM_STATUS: initialized, RMP, firmware ≥ 1.51 — passing only where the host enabled SNP', () => {
    const states = (options: string[]) => {
      const r = underFreshEmulator(options, [process.execPath, SEV_BIN, 'ok', 'snp', '--json']);
      const report = JSON.parse(r.stdout) as { checks: { id: string; state: string }[] };
      return Object.fromEntries(report.checks.filter((c) => c.id.startsWith('snp-')).map((c) => [c.id, c.state]));
    };
    assert.deepEqual(states(['--host-snp']), { 'snp-firmware': 'PASS', 'snp-rmp': 'PASS', 'snp-firmware-api': 'PASS' });
    assert.deepEqual(states([]), { 'snp-firmware': 'FAIL', 'snp-rmp': 'FAIL', 'snp-firmware-api': 'PASS' });
  });

  it('cert-table import (snphost import) builds the table a VMM gives guests; export splits it again', () => {
    const certs = path.join(dir, 'tablecerts');
    const r = underFreshEmulator(['--guest'], ['sh', '-c',
      `cd "${dir}" && ${sev} snp certificates der tablecerts && ${sev} snp cert-table import tablecerts table.bin && ${sev} snp cert-table export pem table.bin out`]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const entries = parseCertTable(fs.readFileSync(path.join(dir, 'table.bin')));
    assert.deepEqual(entries.map((e) => e.name), ['vcek', 'ask', 'ark']);
    for (const name of ['vcek', 'ask', 'ark']) {
      const der = fs.readFileSync(path.join(certs, `${name}.der`));
      assert.deepEqual(entries.find((e) => e.name === name)!.data, der);
      assert.match(fs.readFileSync(path.join(dir, 'out', `${name}.pem`), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    }
  });
});
