// An unmodified QEMU under the emulator, on whichever KVM answers /dev/kvm (the emulator's
// software KVM, or the host's): `query-sev-capabilities` (QMP) makes QEMU probe KVM's SEV support
// and export the PDH, the certificate chain and the chip id through /dev/sev — the same answers
// the addon gets (cbitpos comes from the real CPUID instruction, which no preloaded library can
// answer, so it is not compared); and QEMU runs guests: a tiny firmware writing to the debug
// console, then SeaBIOS booting to its "no bootable device" end.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevPlatform } from '../../lib/platform';
import { emulated, requireSevDevice, skipBecause } from '../helpers/env';
import { KVM_DEVICE } from '../kvm/guest';

const QEMU = 'qemu-system-x86_64';

/** Sends QMP commands in order and resolves with their answers. */
function qmp(socketPath: string, commands: string[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const answers: unknown[] = [];
    let buffer = '';
    let greeted = false;
    const sock = net.connect(socketPath);
    const next = () => {
      const c = commands[answers.length];
      if (c) sock.write(JSON.stringify({ execute: c }) + '\n');
      else {
        sock.end();
        resolve(answers);
      }
    };
    sock.on('data', (d) => {
      buffer += d;
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
        if (!greeted) {
          greeted = true;
          next();
        } else if ('return' in msg || 'error' in msg) {
          answers.push(msg);
          next();
        }
      }
    });
    sock.on('error', reject);
  });
}

async function waitForSocket(p: string): Promise<void> {
  for (let i = 0; i < 100 && !fs.existsSync(p); i++) await new Promise((r) => setTimeout(r, 100));
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
      await waitForSocket(sock);
      const [caps] = (await qmp(sock, ['qmp_capabilities', 'query-sev-capabilities', 'quit'])).slice(1) as Array<{
        return?: { pdh: string; 'cert-chain': string; 'cpu0-id': string };
        error?: { desc: string };
      }>;
      assert.ok(caps.return, JSON.stringify(caps));
      const e = await platform.pdhCertExport();
      assert.deepEqual(Buffer.from(caps.return.pdh, 'base64'), e.pdh);
      assert.deepEqual(Buffer.from(caps.return['cert-chain'], 'base64'), e.chain);
      assert.deepEqual(Buffer.from(caps.return['cpu0-id'], 'base64'), (await platform.getId()).subarray(0, 64));
    } finally {
      platform.close();
      qemu.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a guest: a 64 KiB firmware\'s string reaches the debug console through port I/O', async () => {
    // At the reset vector, jmp 0xe000: mov dx, 0x402; mov si, 0xe100; l: cs lodsb; test al, al;
    // jz h; out dx, al; jmp l; h: hlt; jmp h — the string at 0xe100 of the image.
    const image = Buffer.alloc(0x10000, 0xff);
    Buffer.from([0xba, 0x02, 0x04, 0xbe, 0x00, 0xe1, 0x2e, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf7, 0xf4, 0xeb, 0xfd]).copy(image, 0xe000);
    const text = `firmware on ${os.hostname()} says ${Date.now()}\n`;
    image.write(`${text}\0`, 0xe100, 'latin1');
    image.writeUInt8(0xe9, 0xfff0);
    image.writeUInt16LE((0xe000 - 0xfff3) & 0xffff, 0xfff1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-fw-'));
    try {
      const bios = path.join(dir, 'bios.bin');
      fs.writeFileSync(bios, image);
      const r = await runQemuGuest(['-bios', bios], text, 30_000);
      assert.equal(r.output, text, r.stderr);
    } finally {
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
