// An unmodified QEMU under the emulator: `query-sev-capabilities` (QMP) makes QEMU probe KVM's
// SEV support and export the PDH, the certificate chain and the chip id through /dev/sev — the
// same answers the addon gets. (cbitpos comes from the real CPUID instruction, which no
// preloaded library can answer, so it is not compared.)
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
});
