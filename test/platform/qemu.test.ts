// An unmodified QEMU under the emulator, on whichever KVM answers /dev/kvm (the emulator's
// software KVM, or the host's): `query-sev-capabilities` (QMP) makes QEMU probe KVM's SEV support
// and export the PDH, the certificate chain and the chip id through /dev/sev — the same answers
// the addon gets (cbitpos comes from the real CPUID instruction, which no preloaded library can
// answer, so it is not compared); and QEMU runs guests: a tiny firmware writing to the debug
// console; the same firmware as an SEV guest, launched by QEMU with the owner's session, its
// measurement checked by the owner, a secret injected that the guest then prints; and SeaBIOS
// booting to its "no bootable device" end.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { Policy } from '../../lib/launch';
import { buildSecretPacket, computeMeasurement, createLaunchSession } from '../../lib/owner';
import { SevPlatform } from '../../lib/platform';
import { emulated, emulatorKvm, requireSevDevice, sev, skipBecause } from '../helpers/env';
import { KVM_DEVICE } from '../kvm/guest';

const QEMU = 'qemu-system-x86_64';

interface SevCapabilities {
  pdh: string;
  'cert-chain': string;
  'cpu0-id': string;
  cbitpos: number;
  'reduced-phys-bits': number;
}

const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

/** cbitpos as QEMU reads it from the real CPUID (its capabilities say which): a short QEMU run. */
async function qemuCbitpos(dir: string): Promise<number> {
  const sock = path.join(dir, 'probe.sock');
  const probe = spawn(QEMU, ['-machine', 'q35,accel=kvm', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore', env: process.env });
  try {
    const q = await Qmp.connect(sock);
    const caps = await q.call<SevCapabilities>('query-sev-capabilities');
    q.close();
    return caps.cbitpos;
  } finally {
    probe.kill('SIGKILL');
    await new Promise((r) => probe.once('exit', r));
  }
}

interface SevQemu {
  qmp: Qmp;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts QEMU stopped (-S) with an SEV guest object carrying the owner's session (files in `dir`)
 * and `args` (the firmware, devices); resolves once QMP answers, after LAUNCH_START and the
 * firmware's LAUNCH_UPDATE_DATA.
 */
async function startSevQemu(dir: string, policy: number, owner: { godhCert: Buffer; session: Buffer }, args: string[]): Promise<SevQemu> {
  const godh = path.join(dir, 'godh.b64');
  const session = path.join(dir, 'session.b64');
  const sock = path.join(dir, 'qmp.sock');
  fs.writeFileSync(godh, owner.godhCert.toString('base64'));
  fs.writeFileSync(session, owner.session.toString('base64'));
  const cbitpos = await qemuCbitpos(dir);
  const qemu = spawn(QEMU, ['-machine', 'q35,accel=kvm,memory-encryption=sev0', '-nodefaults', '-display', 'none', '-monitor', 'none',
    '-object', `sev-guest,id=sev0,policy=${policy},cbitpos=${cbitpos},reduced-phys-bits=1,dh-cert-file=${godh},session-file=${session}`,
    ...args, '-S', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  let stderr = '';
  qemu.stderr!.on('data', (d) => (stderr += d));
  const stop = async () => {
    qemu.kill('SIGKILL');
    if (qemu.exitCode === null) await new Promise((r) => qemu.once('exit', r));
  };
  try {
    return { qmp: await Qmp.connect(sock), stderr: () => stderr, stop };
  } catch (e) {
    await stop();
    throw new Error(`${e}: ${stderr}`);
  }
}

/** A QMP connection: commands one at a time, events skipped. */
class Qmp {
  private buffer = '';
  private waiting: ((msg: Record<string, unknown>) => void)[] = [];
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buffer += d;
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const msg = JSON.parse(this.buffer.slice(0, i));
        this.buffer = this.buffer.slice(i + 1);
        if ('QMP' in msg || 'return' in msg || 'error' in msg) this.waiting.shift()?.(msg);
      }
    });
  }

  static async connect(socketPath: string): Promise<Qmp> {
    await waitForSocket(socketPath);
    const sock = net.connect(socketPath);
    const qmp = new Qmp(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      qmp.waiting.push(() => resolve()); // the greeting
    });
    await qmp.call('qmp_capabilities');
    return qmp;
  }

  /** Runs one command; resolves with its `return`, rejects with its `error`. */
  call<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.waiting.push((msg) => ('error' in msg ? reject(new Error(`${execute}: ${JSON.stringify(msg.error)}`)) : resolve(msg.return as T)));
      this.sock.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

async function waitForSocket(p: string): Promise<void> {
  for (let i = 0; i < 100 && !fs.existsSync(p); i++) await new Promise((r) => setTimeout(r, 100));
}

/**
 * A 64 KiB firmware for QEMU's -bios: at the reset vector, jmp 0xe000, where it writes the
 * NUL-terminated string at 0xe100 of the image to the debug console (port 0x402), then the one at
 * guest-physical 0x8000 of RAM, and halts. In real mode every access is private to an SEV guest.
 */
function firmware(text: string): Buffer {
  const image = Buffer.alloc(0x10000, 0xff);
  Buffer.from([
    0xba, 0x02, 0x04, //       mov dx, 0x402
    0xbe, 0x00, 0xe1, //       mov si, 0xe100
    0x2e, 0xac, //       rom:  cs lodsb
    0x84, 0xc0, 0x74, 0x03, // test al, al; jz ram
    0xee, 0xeb, 0xf7, //       out dx, al; jmp rom
    0x31, 0xc0, 0x8e, 0xd8, // ram: xor ax, ax; mov ds, ax
    0xbe, 0x00, 0x80, //       mov si, 0x8000
    0xac, 0x84, 0xc0, //       l: lodsb; test al, al
    0x74, 0x03, 0xee, 0xeb, 0xf8, // jz h; out dx, al; jmp l
    0xf4, 0xeb, 0xfd, //       h: hlt; jmp h
  ]).copy(image, 0xe000);
  image.write(`${text}\0`, 0xe100, 'latin1');
  image.writeUInt8(0xe9, 0xfff0); // jmp near 0xe000
  image.writeUInt16LE((0xe000 - 0xfff3) & 0xffff, 0xfff1);
  return image;
}

/**
 * Runs QEMU (q35 on KVM, no default devices) with an isa-debugcon on port 0x402 until its output
 * contains `until`, or QEMU exits, or `ms` pass; returns the console output and QEMU's stderr.
 */
async function runQemuGuest(args: string[], until: string, ms: number): Promise<{ output: string; stderr: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-qemu-'));
  const log = path.join(dir, 'debugcon.txt');
  const qemu = spawn(QEMU, ['-machine', 'q35,accel=kvm', '-nodefaults', '-display', 'none', '-monitor', 'none',
    '-chardev', `file,id=con,path=${log}`, '-device', 'isa-debugcon,iobase=0x402,chardev=con', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: process.env,
  });
  let stderr = '';
  let exited = false;
  qemu.stderr.on('data', (d) => (stderr += d));
  qemu.on('exit', () => (exited = true));
  const read = () => (fs.existsSync(log) ? fs.readFileSync(log, 'latin1') : '');
  try {
    for (const end = Date.now() + ms; Date.now() < end && !exited && !read().includes(until);) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return { output: read(), stderr };
  } finally {
    qemu.kill('SIGKILL');
    if (!exited) await new Promise((r) => qemu.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('QEMU under the emulator', function () {
  before(function () {
    requireSevDevice(this);
    if (!emulated) skipBecause(this, 'the QEMU check runs under sev-emu');
    if (spawnSync(QEMU, ['--version']).status !== 0) skipBecause(this, `${QEMU} is not installed (apt-get install qemu-system-x86)`);
    if (!fs.existsSync(KVM_DEVICE)) skipBecause(this, `${KVM_DEVICE} is missing: QEMU needs KVM for SEV`);
  });

  it('query-sev-capabilities returns the PDH, chain and chip id the addon sees', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-qemu-'));
    const sock = path.join(dir, 'qmp.sock');
    const qemu = spawn(QEMU, ['-machine', 'q35,accel=kvm', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`], {
      stdio: 'ignore',
      env: process.env,
    });
    const platform = SevPlatform.open();
    try {
      const qmp = await Qmp.connect(sock);
      const caps = await qmp.call<SevCapabilities>('query-sev-capabilities');
      qmp.close();
      const e = await platform.pdhCertExport();
      assert.deepEqual(Buffer.from(caps.pdh, 'base64'), e.pdh);
      assert.deepEqual(Buffer.from(caps['cert-chain'], 'base64'), e.chain);
      assert.deepEqual(Buffer.from(caps['cpu0-id'], 'base64'), (await platform.getId()).subarray(0, 64));
    } finally {
      platform.close();
      qemu.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a guest: a 64 KiB firmware\'s string reaches the debug console through port I/O', async () => {
    const text = `firmware on ${os.hostname()} says ${Date.now()}\n`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-fw-'));
    try {
      const bios = path.join(dir, 'bios.bin');
      fs.writeFileSync(bios, firmware(text));
      const r = await runQemuGuest(['-bios', bios], text, 30_000);
      assert.equal(r.output, text, r.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('launches an SEV guest: the owner\'s session, the measurement verified, the secret injected and printed by the guest', async function () {
    this.timeout(120_000);
    const platform = SevPlatform.open();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-qemu-launch-'));
    let q: SevQemu | null = null;
    try {
      const status = await platform.status();
      const policy = Policy.from({ noDebug: true });
      const owner = createLaunchSession((await platform.pdhCertExport()).pdh, policy.value);
      const image = firmware('guest: ');
      const files = { bios: path.join(dir, 'bios.bin'), log: path.join(dir, 'debugcon.txt'), host: path.join(dir, 'host-view.bin') };
      fs.writeFileSync(files.bios, image);
      q = await startSevQemu(dir, policy.value, owner, ['-bios', files.bios, '-chardev', `file,id=con,path=${files.log}`,
        '-device', 'isa-debugcon,iobase=0x402,chardev=con']);
      const { qmp } = q;
      // QEMU has run LAUNCH_START with the owner's session and LAUNCH_UPDATE_DATA on the firmware.
      const blob = Buffer.from((await qmp.call<{ data: string }>('query-sev-launch-measure')).data, 'base64');
      const measurement = blob.subarray(0, 32);
      const expected = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: policy.value,
        tik: owner.tik, digest: createHash('sha256').update(image).digest(), mnonce: blob.subarray(32, 48),
      });
      assert.deepEqual(measurement, expected, `the owner's prediction; QEMU said: ${q.stderr()}`);
      const secret = Buffer.alloc(48);
      secret.write(`released to ${measurement.toString('hex', 0, 6)}`);
      const packet = buildSecretPacket(owner, measurement, secret);
      await qmp.call('sev-inject-launch-secret', {
        'packet-header': packet.header.toString('base64'), secret: packet.ciphertext.toString('base64'), gpa: 0x8000,
      });
      // The host's view of the firmware (at the top of 4 GiB): ciphertext on the software KVM; the
      // image itself on the host's KVM, where the emulator keeps guest memory plaintext.
      await qmp.call('pmemsave', { val: 0x1_0000_0000 - image.length, size: image.length, filename: files.host });
      const hostView = fs.readFileSync(files.host);
      if (emulatorKvm() === 'soft') {
        assert.notDeepEqual(hostView, image);
        assert.equal(hostView.indexOf(Buffer.from('guest: ')), -1, 'the firmware\'s string is not in the host\'s view');
      } else {
        assert.deepEqual(hostView, image);
      }
      await qmp.call('cont'); // LAUNCH_FINISH, then the guest runs
      const want = `guest: ${secret.toString('latin1').replace(/\0+$/, '')}`;
      for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
        if (fs.existsSync(files.log) && fs.readFileSync(files.log, 'latin1') === want) break;
      }
      assert.equal(fs.existsSync(files.log) ? fs.readFileSync(files.log, 'latin1') : '', want, q.stderr());
      const sev = await qmp.call<{ state: string; policy: number }>('query-sev');
      assert.equal(sev.state, 'running');
      assert.equal(sev.policy, policy.value);
    } finally {
      q?.qmp.close();
      await q?.stop();
      platform.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('launches OVMF as an SEV guest: the measurement QEMU reports is the one `sev measurement build` predicts', async function () {
    this.timeout(120_000);
    if (!fs.existsSync(OVMF_CODE)) skipBecause(this, `${OVMF_CODE} is not installed (apt-get install ovmf)`);
    const platform = SevPlatform.open();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-qemu-ovmf-'));
    let q: SevQemu | null = null;
    try {
      const status = await platform.status();
      const policy = Policy.from({ noDebug: true, noKeySharing: true });
      const owner = createLaunchSession((await platform.pdhCertExport()).pdh, policy.value);
      const vars = path.join(dir, 'vars.fd');
      fs.copyFileSync(OVMF_VARS, vars);
      q = await startSevQemu(dir, policy.value, owner, ['-drive', `if=pflash,format=raw,unit=0,file=${OVMF_CODE},readonly=on`,
        '-drive', `if=pflash,format=raw,unit=1,file=${vars}`]);
      const { qmp } = q;
      const blob = (await qmp.call<{ data: string }>('query-sev-launch-measure')).data;
      const inputs = ['--api-major', String(status.api.major), '--api-minor', String(status.api.minor), '--build-id', String(status.build),
        '--policy', String(policy.value), '--tik', owner.tik.toString('base64'), '--firmware', OVMF_CODE, '--launch-measure-blob', blob];
      const built = sev(['measurement', 'build', ...inputs]);
      assert.equal(built.status, 0, built.stderr);
      assert.equal(built.stdout.trim(), blob, 'base64(measurement ‖ nonce), as QEMU reports it');
      assert.equal(sev(['measurement', 'verify', ...inputs]).status, 0);
      // A different firmware image does not verify.
      const other = path.join(dir, 'other.fd');
      const bytes = fs.readFileSync(OVMF_CODE);
      bytes[bytes.length >> 1] ^= 1;
      fs.writeFileSync(other, bytes);
      assert.equal(sev(['measurement', 'verify', ...inputs.slice(0, -4), '--firmware', other, '--launch-measure-blob', blob]).status, 1);
    } finally {
      q?.qmp.close();
      await q?.stop();
      platform.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('boots SeaBIOS: PCI enumeration, fw_cfg, mode switches, to "No bootable device."', async function () {
    this.timeout(120_000);
    const r = await runQemuGuest([], 'No bootable device.', 90_000);
    assert.match(r.output, /^SeaBIOS \(version/m, r.stderr);
    assert.match(r.output, /Running on KVM/);
    assert.match(r.output, /Found QEMU fw_cfg/);
    assert.match(r.output, /=== PCI device probing ===/);
    assert.match(r.output, /No bootable device\./, `SeaBIOS stopped early:\n${r.output.slice(-2000)}\n${r.stderr}`);
  });
});
