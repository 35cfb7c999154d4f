// `sev snp ok` inside a guest: SEV_STATUS decoded with Linux's names, the attestation paths;
// under `sev-emu run --guest` (an SNP guest) and outside one.
import * as assert from 'node:assert/strict';

import { decodeSevStatus } from '../../lib/snp/guest-probe';
import { emulated, SEV_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

describe('snp: guest probe (sev snp ok)', function () {
  this.timeout(60_000);

  it('decodes SEV_STATUS with the kernel\'s names', () => {
    assert.deepEqual(decodeSevStatus(0x7n), ['SEV', 'SEV-ES', 'SEV-SNP']);
    assert.deepEqual(decodeSevStatus(0x3n | (0x81n << 2n)), ['SEV', 'SEV-ES', 'SEV-SNP', 'BTBIsol']);
    assert.deepEqual(decodeSevStatus(1n << 13n), ['bit 13']);
    assert.deepEqual(decodeSevStatus(0n), []);
  });

  it('passes inside an emulated SNP guest, with the VMM\'s guest features', function () {
    if (!emulated) skipBecause(this, 'needs sev-emu run --guest');
    const r = underFreshEmulator(['--guest', '--guest-features', '0x81'], [process.execPath, SEV_BIN, 'snp', 'ok', '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { ok: boolean; sevStatus: string; features: string[] };
    assert.equal(report.sevStatus, '0x207');
    assert.deepEqual(report.features, ['SEV', 'SEV-ES', 'SEV-SNP', 'BTBIsol']);
  });

  it('fails, saying what is missing, outside a guest', function () {
    if (!emulated) skipBecause(this, 'needs sev-emu run');
    const r = underFreshEmulator([], [process.execPath, SEV_BIN, 'snp', 'ok']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[ FAIL \] SEV_STATUS MSR .*ENOENT/);
    assert.match(r.stdout, /Not an SEV-SNP guest/);
  });
});
