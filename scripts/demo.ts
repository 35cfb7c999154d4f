// `npm run demo`: the whole SEV story on the firmware emulator with the real /dev/kvm.
//   owner: verify the platform's certificate chain, build a launch session (GODH, TEK/TIK)
//   host:  create an SEV VM, stream the guest image into it (progress bar), measure
//   owner: check the measurement against its own computation, release a secret
//   host:  inject the secret, finish the launch, run the guest
//   guest: prints the secret it finds in its memory
// The owner and the host share nothing but what crosses the wire in a real deployment: the
// exported chain, the session blob and GODH certificate, the measurement, the secret packet.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseAskArk, verifyChain } from '../lib/certs';
import { GuestMemory, Kvm } from '../lib/kvm';
import { Policy, SevLaunch } from '../lib/launch';
import { buildSecretPacket, computeMeasurement, createLaunchSession, macEqual } from '../lib/owner';
import { SevPlatform } from '../lib/platform';
import { exportChain } from '../lib/platform/ownership';
import { native } from '../lib/native';

const json = process.argv.includes('--json');
const tty = process.stderr.isTTY && !json;
const say = (who: string, text: string) => {
  if (!json) console.log(`${`[${who}]`.padEnd(8)} ${text}`);
};

// The guest: 16-bit real-mode code at 0x1000 that prints the NUL-terminated string at 0x2000 to
// port 0x11, then halts (mov bx,0x2000; l: mov al,[bx]; out 0x11,al; cmp al,0; je d; inc bx; jmp l; d: hlt).
const GUEST_CODE = [0xbb, 0x00, 0x20, 0x8a, 0x07, 0xe6, 0x11, 0x3c, 0x00, 0x74, 0x03, 0x43, 0xeb, 0xf5, 0xf4];
const CODE_ADDR = 0x1000;
const SECRET_ADDR = 0x2000;
const IMAGE_SIZE = 4 << 20;

function progressBar(done: number, total: number): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const line = `${'[host]'.padEnd(8)} streaming image ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${((100 * done) / total).toFixed(0).padStart(3)}%`;
  if (tty) process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
  else if (!json && (done === total || done % (total / 4) === 0)) console.log(`${line}`);
}

async function main(): Promise<void> {
  const generation = native.emulator();
  if (!json) {
    console.log(`node-sev demo: an SEV launch on ${generation ? `the SEV firmware emulator (${generation})` : '/dev/sev'} with the real /dev/kvm\n`);
  }
  const platform = SevPlatform.open();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-demo-'));
  const kvm = Kvm.open();
  const vm = kvm.createVm({ type: 'sev' });
  const memory = GuestMemory.create(8 << 20);
  try {
    // ---- owner: trust the platform ------------------------------------------------------------
    await platform.status(); // (a fresh emulator state is created on first use)
    // The emulator's CA is not AMD's: it is trusted here only because we say so explicitly.
    const emuCa = generation ? path.join(process.env.SEV_EMU_STATE ?? '', 'ask_ark.cert') : undefined;
    const trustedArks = emuCa ? [parseAskArk(fs.readFileSync(emuCa)).ark] : [];
    const chain = await exportChain(platform, { full: true, caFile: emuCa, trustedArks });
    const report = verifyChain(chain, { trustedArks });
    if (!report.ok) throw new Error('platform chain does not verify');
    say('owner', `platform chain verified: ${report.links.map((l) => `${l.signer}→${l.subject}`).join(', ')}` +
      (generation ? ' (emulated ARK, explicitly trusted)' : ''));
    const policy = Policy.from({ noDebug: true, noKeySharing: true });
    const session = createLaunchSession(chain.pdh, policy.value);
    say('owner', `launch session for policy ${policy}: GODH certificate + session blob (TEK/TIK wrapped for this PDH)`);

    // ---- host: create and launch the guest ----------------------------------------------------
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    const image = Buffer.concat([Buffer.alloc(CODE_ADDR), Buffer.from(GUEST_CODE)]);
    const imageFile = path.join(dir, 'guest.img');
    fs.writeFileSync(imageFile, Buffer.concat([image, Buffer.alloc(SECRET_ADDR - image.length), randomBytes(IMAGE_SIZE - SECRET_ADDR)]));
    const launch = await SevLaunch.init(vm, platform, { mode: 'sev' });
    const vcpu = vm.createVcpu(0);
    vcpu.setSregs({ cs: { base: 0n, selector: 0 }, ds: { base: 0n, selector: 0 }, es: { base: 0n, selector: 0 }, ss: { base: 0n, selector: 0 } });
    vcpu.setRegs({ rip: BigInt(CODE_ADDR), rflags: 2n, rsp: 0x8000n });
    const started = await launch.start({ policy, dhCert: session.godhCert, session: session.session });
    say('host', `SEV VM created; LAUNCH_START accepted the owner's session (guest handle ${started.handle})`);
    const t0 = process.hrtime.bigint();
    const streamed = await started.streamFile(memory, imageFile, {
      offset: 0,
      chunkSize: 512 << 10,
      onProgress: (p) => progressBar(p.bytesDone, p.bytesTotal),
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const measured = await started.measure();
    say('host', `streamed ${(streamed.bytes / (1 << 20)).toFixed(1)} MiB in ${streamed.chunks} LAUNCH_UPDATE_DATA calls (${ms.toFixed(0)} ms); ` +
      `LAUNCH_MEASURE ${measured.measurement.toString('hex').slice(0, 16)}…`);

    // ---- owner: check the measurement, release the secret ------------------------------------
    const status = await platform.status();
    const expected = computeMeasurement({
      apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: policy.value,
      tik: session.tik, digest: createHash('sha256').update(fs.readFileSync(imageFile)).digest(), mnonce: measured.mnonce,
    });
    if (!macEqual(expected, measured.measurement)) throw new Error('measurement mismatch: no secret for this guest');
    say('owner', 'measurement verified: it matches the image, policy and firmware the owner expects');
    const secretText = `the launch secret is ${randomBytes(6).toString('hex')}`;
    const payload = Buffer.alloc(48);
    payload.write(secretText);
    const packet = buildSecretPacket(session, measured.measurement, payload);
    say('owner', `secret released: ${payload.length} bytes, encrypted with the TEK, bound to this measurement`);

    // ---- host: inject, finish, run --------------------------------------------------------------
    await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory, guestOffset: SECRET_ADDR });
    const finished = await measured.finish();
    say('host', `LAUNCH_SECRET + LAUNCH_FINISH; guest state ${(await finished.status()).stateName}; running the vCPU`);
    const out: number[] = [];
    for (;;) {
      const e = await vcpu.run();
      if (e.reason === 'HLT') break;
      if (e.reason !== 'IO' || e.port !== 0x11) throw new Error(`unexpected guest exit ${e.reason}`);
      if (e.data[0] !== 0) out.push(e.data[0]);
    }
    const printed = Buffer.from(out).toString('latin1');
    say('guest', `"${printed}"`);
    const ok = printed === secretText;
    if (json) {
      console.log(JSON.stringify({
        ok,
        emulated: generation,
        chainVerified: report.ok,
        policy: policy.value,
        handle: started.handle,
        streamed: streamed,
        streamMs: Math.round(ms),
        measurement: measured.measurement.toString('hex'),
        measurementVerified: true,
        guestPrinted: printed,
      }, null, 2));
    } else {
      console.log(ok ? '\nThe guest read the secret that only the verified launch could receive.' : '\nMISMATCH: the guest printed something else');
    }
    if (!ok) process.exitCode = 1;
  } finally {
    vm.close();
    memory.release();
    kvm.close();
    platform.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  if (json) console.log(JSON.stringify({ ok: false, error: (e as Error).message }));
  else console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
