// The kernel ABI, checked from outside the project: a C client compiled against the system's
// own <linux/psp-sev.h> must get the same answers as the addon — so the emulator speaks the
// kernel's ABI, not just our own definitions of it.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevPlatform } from '../../lib/platform';
import { deviceRequired, haveCompiler, requireSevDevice, ROOT, run } from '../helpers/env';

interface Outcome {
  ret: number;
  errno: number;
  errno_name: string;
  error: number;
}

describe('C client built against <linux/psp-sev.h>', function () {
  let client: string;
  let dir: string;
  let platform: SevPlatform;
  let report: Record<string, Record<string, unknown>>;

  before(function () {
    requireSevDevice(this);
    if (!haveCompiler() || !fs.existsSync('/usr/include/linux/psp-sev.h')) {
      if (deviceRequired) throw new Error('cc and /usr/include/linux/psp-sev.h are needed (apt-get install gcc linux-libc-dev)');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-c-'));
    client = path.join(dir, 'sev_client');
    execFileSync('cc', ['-std=c99', '-D_DEFAULT_SOURCE', '-Wall', '-o', client, path.join(ROOT, 'test', 'c', 'sev_client.c')]);
    platform = SevPlatform.open();
    const r = run(client, ['all']);
    assert.equal(r.status, 0, r.stderr);
    report = JSON.parse(r.stdout);
  });
  after(() => {
    platform?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('PLATFORM_STATUS: same fields', async () => {
    const s = await platform.status();
    const c = report.status;
    assert.deepEqual(
      [c.api_major, c.api_minor, c.build, c.flags, c.guest_count],
      [s.api.major, s.api.minor, s.build, s.flags, s.guestCount],
    );
  });

  it('GET_ID2: same length-query answer and the same id', async () => {
    const c = report.id;
    assert.deepEqual({ errno: (c.query as Outcome).errno_name, error: (c.query as Outcome).error }, { errno: 'EIO', error: 4 });
    assert.equal(c.hex, (await platform.getId()).toString('hex'));
  });

  it('PDH_CERT_EXPORT: same lengths and the same certificates', async () => {
    const c = report.pdh;
    assert.equal(c.pdh_cert_len, 2084);
    assert.equal(c.cert_chain_len, 6252);
    const e = await platform.pdhCertExport();
    assert.equal(c.pdh_hex, e.pdh.toString('hex'));
    assert.equal(c.chain_hex, e.chain.toString('hex'));
  });

  it('error paths: same errnos as the addon sees', async () => {
    const p = report.probe as Record<string, Outcome & number>;
    assert.equal(p.readonly_pek_gen.errno_name, 'EPERM');
    assert.equal(p.cmd_sev_max.errno_name, 'EINVAL');
    assert.equal(p.cmd_unknown.errno_name, 'EINVAL');
    assert.equal(p.bad_ioctl.errno_name, 'EINVAL');
    assert.equal(p.bad_data_pointer.errno_name, 'EFAULT');
    assert.equal(p.pdh_export_too_long.errno_name, 'EFAULT');
    assert.equal(p.pek_csr_length, 2084);
    const ro = SevPlatform.open({ writable: false });
    try {
      await assert.rejects(ro.pekGen(), (e: { code: string }) => e.code === p.readonly_pek_gen.errno_name);
    } finally {
      ro.close();
    }
    assert.equal(platform.issueRawSync(13, Buffer.alloc(16)).errno, p.cmd_sev_max.errno);
  });
});
