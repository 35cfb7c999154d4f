// The guest owner's command line against a live launch: `sev session` output is accepted by
// LAUNCH_START, `sev measurement verify` checks what LAUNCH_MEASURE returned, `sev secret build`
// produces what LAUNCH_SECRET decrypts into guest memory; and the demo runs.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevCertificate, Usage } from '../../lib/certs';
import { GuestMemory, Kvm } from '../../lib/kvm';
import { SevLaunch } from '../../lib/launch';
import { SevPlatform } from '../../lib/platform';
import { emulated, memoryEncrypted, requireSevDevice, ROOT, run, sev, SEV_EMU_BIN, skipBecause } from '../helpers/env';
import { requireKvm } from '../kvm/guest';

describe('owner CLI against a live launch', function () {
  let dir: string;
  let platform: SevPlatform;
  let caFlags: string[];

  before(function () {
    requireKvm(this);
    requireSevDevice(this);
    if (!emulated) skipBecause(this, 'uses the emulator\'s CA and demo: emulator only');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-owner-cli-'));
    platform = SevPlatform.open();
    const ca = path.join(dir, 'emu_ask_ark.cert');
    assert.equal(run(process.execPath, [SEV_EMU_BIN, 'ca', ca]).status, 0);
    caFlags = ['--ca', ca, '--trust-ark', ca];
  });
  after(() => {
    platform?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('session (from a verified chain) → LAUNCH_START → measurement verify → secret build → LAUNCH_SECRET', async () => {
    const chainFile = path.join(dir, 'chain.cert');
    assert.equal(sev(['export', '--full', ...caFlags, chainFile]).status, 0);
    const name = path.join(dir, 'guest');
    let r = sev(['session', '--name', name, ...caFlags, chainFile, '0x1', '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(JSON.parse(r.stdout).chainVerified, true);
    const godh = Buffer.from(fs.readFileSync(`${name}_godh.b64`, 'utf8'), 'base64');
    const session = Buffer.from(fs.readFileSync(`${name}_session.b64`, 'utf8'), 'base64');
    assert.equal(SevCertificate.parse(godh).usage, Usage.PDH);
    assert.equal(session.length, 128);
    assert.equal(fs.statSync(`${name}_tik.bin`).size, 16);
    assert.equal(fs.statSync(`${name}_tek.bin`).mode & 0o777, 0o600);

    const kvm = Kvm.open();
    const vm = kvm.createVm({ type: 'sev' });
    const memory = GuestMemory.create(0x10000);
    try {
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
      // The guest prints the 256 bytes at 0x3000 to port 0x11 (lodsb; out; loop), then halts.
      const dump = Buffer.from([0xbe, 0x00, 0x30, 0xb9, 0x00, 0x01, 0xfc, 0xac, 0xe6, 0x11, 0xe2, 0xfb, 0xf4]);
      const image = Buffer.concat([dump, randomBytes(0x1000 - dump.length)]);
      memory.bytes(0x1000, 0x1000).set(image);
      const launch = await SevLaunch.init(vm, platform);
      const vcpu = vm.createVcpu(0);
      vcpu.setSregs({ cs: { base: 0n, selector: 0 }, ds: { base: 0n, selector: 0 }, es: { base: 0n, selector: 0 }, ss: { base: 0n, selector: 0 } });
      vcpu.setRegs({ rip: 0x1000, rflags: 2, rsp: 0x8000 });
      const started = await launch.start({ policy: 1, dhCert: godh, session });
      await started.updateData(memory, 0x1000, 0x1000);
      const measured = await started.measure();
      const digest = require('node:crypto').createHash('sha256').update(image).digest().toString('base64');
      const s = await platform.status();
      const common = ['--api-major', String(s.api.major), '--api-minor', String(s.api.minor), '--build-id', String(s.build),
        '--tik', `${name}_tik.bin`, '--launch-digest', digest, '--launch-measure-blob', measured.blob.toString('base64')];
      r = sev(['measurement', 'verify', '--policy', '0x1', ...common]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      r = sev(['measurement', 'verify', '--policy', '0x3', ...common]);
      assert.equal(r.status, 1, 'a changed policy fails verification');

      const secretFile = path.join(dir, 'secret.txt');
      fs.writeFileSync(secretFile, 'owner secret via the CLI');
      const header = path.join(dir, 'hdr.bin');
      const payload = path.join(dir, 'payload.bin');
      r = sev(['secret', 'build', '--tik', `${name}_tik.bin`, '--tek', `${name}_tek.bin`,
        '--launch-measure-blob', measured.blob.toString('base64'),
        '--secret', `736869e5-84f0-4973-92ec-06879ce3da0b:${secretFile}`, header, payload]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const ciphertext = fs.readFileSync(payload);
      await measured.injectSecret({ header: fs.readFileSync(header), ciphertext, memory, guestOffset: 0x3000 });
      await measured.finish();
      // The OVMF secret table is in guest memory: the guest sees our file in its entry (the host,
      // where memory is encrypted, sees ciphertext).
      const hostView = Buffer.from(memory.bytes(0x3000, ciphertext.length));
      assert.equal(hostView.includes(Buffer.from('owner secret via the CLI')), !memoryEncrypted());
      const seen: number[] = [];
      for (let e = await vcpu.run(); e.reason !== 'HLT'; e = await vcpu.run()) {
        assert.ok(e.reason === 'IO' && e.port === 0x11, JSON.stringify(e));
        if (e.reason === 'IO') seen.push(e.data[0]);
      }
      assert.ok(Buffer.from(seen).includes(Buffer.from('owner secret via the CLI')), 'the guest reads the secret');
    } finally {
      vm.close();
      memory.release();
      kvm.close();
    }
  });

  it('npm run demo: the guest prints the released secret (--json)', () => {
    const r = run(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'demo.js'), '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.ok, true);
    assert.equal(out.chainVerified, true);
    assert.equal(out.measurementVerified, true);
    assert.match(out.guestPrinted, /^the SEV launch secret is [0-9a-f]{12}$/);
    assert.equal(out.sevEs.ok, true);
  });
});
