// `npm run demo`: the whole SEV story (`npm run demo -- --snp`: SEV-SNP's, scripts/demo-snp.ts), on the SEV firmware emulator with the software KVM (or the
// host's /dev/kvm where there is one), for an SEV and an SEV-ES guest:
//   owner: verify the platform's certificate chain, build a launch session (GODH, TEK/TIK)
//   host:  create the VM, stream the guest image into it (progress bar), measure
//   owner: check the measurement against its own computation, release a secret
//   host:  inject the secret, finish the launch, run the guest
//   guest: reads the secret from its private memory and hands it out (port I/O; through the GHCB
//          for SEV-ES), while the host's view of that memory is ciphertext.
// The owner and the host share nothing but what crosses the wire in a real deployment: the
// exported chain, the session blob and GODH certificate, the measurement, the secret packet.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseAskArk, verifyChain } from '../lib/certs';
import { GuestMemory, Kvm, type Vcpu } from '../lib/kvm';
import { Policy, SevLaunch } from '../lib/launch';
import { buildSecretPacket, computeMeasurement, createLaunchSession, macEqual, type LaunchSession } from '../lib/owner';
import { SevPlatform } from '../lib/platform';
import { exportChain } from '../lib/platform/ownership';
import { native } from '../lib/native';
import { createEsGuest, ES_GUEST, esGuestLaunchDigest } from './guest-images';

const json = process.argv.includes('--json');
const tty = process.stderr.isTTY && !json;
const say = (who: string, text: string) => {
  if (!json) console.log(`${`[${who}]`.padEnd(8)} ${text}`);
};

// The SEV guest: 16-bit real-mode code at 0x1000 that prints the NUL-terminated string at 0x2000 to
// port 0x11, then halts (mov bx,0x2000; l: mov al,[bx]; out 0x11,al; cmp al,0; je d; inc bx; jmp l; d: hlt).
const SEV_GUEST_CODE = [0xbb, 0x00, 0x20, 0x8a, 0x07, 0xe6, 0x11, 0x3c, 0x00, 0x74, 0x03, 0x43, 0xeb, 0xf5, 0xf4];
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

function secretText(label: string): { text: string; payload: Buffer } {
  const text = `the ${label} launch secret is ${randomBytes(6).toString('hex')}`;
  const payload = Buffer.alloc(64);
  payload.write(text);
  return { text, payload };
}

function hex(b: Uint8Array, n = 24): string {
  return Buffer.from(b.subarray(0, n)).toString('hex').replace(/(..)/g, '$1 ').trim() + ' …';
}

/** Runs a guest to HLT, collecting what it writes to the reporting port. */
async function collect(vcpu: Vcpu): Promise<string> {
  const out: number[] = [];
  for (let i = 0; i < 10000; i++) {
    const e = await vcpu.run();
    if (e.reason === 'HLT') return Buffer.from(out.filter((b) => b !== 0)).toString('latin1');
    if (e.reason !== 'IO' || e.port !== ES_GUEST.port) throw new Error(`unexpected guest exit ${e.reason}`);
    out.push(...e.data);
  }
  throw new Error('the guest did not halt');
}

interface Owner {
  session: LaunchSession;
  policy: Policy;
}

async function sevGuest(platform: SevPlatform, kvm: Kvm, owner: Owner, dir: string, encrypted: boolean) {
  const vm = kvm.createVm({ type: 'sev' });
  const memory = GuestMemory.create(8 << 20);
  try {
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    const image = Buffer.concat([Buffer.alloc(CODE_ADDR), Buffer.from(SEV_GUEST_CODE)]);
    const imageFile = path.join(dir, 'guest.img');
    fs.writeFileSync(imageFile, Buffer.concat([image, Buffer.alloc(SECRET_ADDR - image.length), randomBytes(IMAGE_SIZE - SECRET_ADDR)]));
    const launch = await SevLaunch.init(vm, platform, { mode: 'sev' });
    const vcpu = vm.createVcpu(0);
    vcpu.setSregs({ cs: { base: 0n, selector: 0 }, ds: { base: 0n, selector: 0 }, es: { base: 0n, selector: 0 }, ss: { base: 0n, selector: 0 } });
    vcpu.setRegs({ rip: BigInt(CODE_ADDR), rflags: 2n, rsp: 0x8000n });
    const started = await launch.start({ policy: owner.policy, dhCert: owner.session.godhCert, session: owner.session.session });
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

    const status = await platform.status();
    const expected = computeMeasurement({
      apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: owner.policy.value,
      tik: owner.session.tik, digest: createHash('sha256').update(fs.readFileSync(imageFile)).digest(), mnonce: measured.mnonce,
    });
    if (!macEqual(expected, measured.measurement)) throw new Error('SEV measurement mismatch: no secret for this guest');
    say('owner', 'measurement verified: it matches the image, policy and firmware the owner expects');
    const secret = secretText('SEV');
    const packet = buildSecretPacket(owner.session, measured.measurement, secret.payload);
    say('owner', `secret released: ${secret.payload.length} bytes, encrypted with the TEK, bound to this measurement`);
    await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory, guestOffset: SECRET_ADDR });
    const finished = await measured.finish();
    const hostView = Buffer.from(memory.bytes(SECRET_ADDR, 64));
    say('host', `LAUNCH_SECRET + LAUNCH_FINISH; guest state ${(await finished.status()).stateName}`);
    say('host', `the host's view of the secret page: ${hex(hostView)}${encrypted ? ' (ciphertext)' : ' (plaintext: this KVM does not encrypt)'}`);
    const printed = await collect(vcpu);
    say('guest', `SEV guest, reading its private memory: "${printed}"`);
    return {
      ok: printed === secret.text && (!encrypted || !hostView.includes(Buffer.from(secret.text))),
      handle: started.handle,
      streamed,
      streamMs: Math.round(ms),
      measurement: measured.measurement.toString('hex'),
      measurementVerified: true,
      hostViewOfSecret: hostView.toString('hex'),
      guestPrinted: printed,
    };
  } finally {
    vm.close();
    memory.release();
  }
}

async function sevEsGuest(platform: SevPlatform, kvm: Kvm, owner: Owner, encrypted: boolean) {
  const { memory, launch, vcpu, close } = await createEsGuest(kvm, platform, 'es_ghcb');
  try {
    const started = await launch.start({ policy: owner.policy, dhCert: owner.session.godhCert, session: owner.session.session });
    const code = Buffer.from(memory.bytes(ES_GUEST.code, 0x1000));
    await started.updateData(memory, ES_GUEST.code, 0x1000);
    await started.updateVmsa();
    const measured = await started.measure();
    say('host', `SEV-ES VM: guest code and the vCPU's VMSA measured; registers now protected (handle ${started.handle})`);

    const status = await platform.status();
    const expected = computeMeasurement({
      apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: owner.policy.value,
      tik: owner.session.tik, digest: esGuestLaunchDigest(code), mnonce: measured.mnonce,
    });
    if (!macEqual(expected, measured.measurement)) throw new Error('SEV-ES measurement mismatch: no secret for this guest');
    say('owner', 'measurement verified, including the predicted initial VMSA (32-bit protected mode at 0x1000)');
    const secret = secretText('SEV-ES');
    const packet = buildSecretPacket(owner.session, measured.measurement, secret.payload);
    await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory, guestOffset: ES_GUEST.secret });
    await measured.finish();
    const hostView = Buffer.from(memory.bytes(ES_GUEST.secret, 64));
    say('host', `secret injected; the host's view of it: ${hex(hostView)}${encrypted ? ' (ciphertext)' : ''}`);
    if (!encrypted) {
      say('host', 'the host KVM is not an SEV-ES machine (no #VC, no GHCB): run `sev-emu run --kvm soft` to see this guest run');
      return { ok: true, ran: false, handle: started.handle, measurement: measured.measurement.toString('hex'), measurementVerified: true };
    }
    const printed = await collect(vcpu);
    say('guest', `SEV-ES guest, in long mode, through its shared GHCB page: "${printed}"`);
    return {
      ok: printed === secret.text && !hostView.includes(Buffer.from(secret.text)),
      ran: true,
      handle: started.handle,
      measurement: measured.measurement.toString('hex'),
      measurementVerified: true,
      hostViewOfSecret: hostView.toString('hex'),
      guestPrinted: printed,
    };
  } finally {
    close();
  }
}

async function main(): Promise<void> {
  const generation = native.emulator();
  const platform = SevPlatform.open();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-demo-'));
  const kvm = Kvm.open();
  const backend = native.kvmBackend() ?? 'kernel';
  const encrypted = generation === null || backend === 'soft';
  if (!json) {
    const kvmName = backend === 'soft' ? 'the software KVM (guest memory encrypted, SEV-ES state protected)'
      : backend === 'host' ? 'the host\'s /dev/kvm (guest memory stays plaintext for it)' : '/dev/kvm';
    console.log(`node-sev demo: SEV and SEV-ES launches on ${generation ? `the SEV firmware emulator (${generation})` : '/dev/sev'} with ${kvmName}\n`);
  }
  try {
    await platform.status(); // (a fresh emulator state is created on first use)
    // The emulator's CA is not AMD's: it is trusted here only because we say so explicitly.
    const emuCa = generation ? path.join(process.env.SEV_EMU_STATE ?? '', 'ask_ark.cert') : undefined;
    const trustedArks = emuCa ? [parseAskArk(fs.readFileSync(emuCa)).ark] : [];
    const chain = await exportChain(platform, { full: true, caFile: emuCa, trustedArks });
    const report = verifyChain(chain, { trustedArks });
    if (!report.ok) throw new Error('platform chain does not verify');
    say('owner', `platform chain verified: ${report.links.map((l) => `${l.signer}→${l.subject}`).join(', ')}` +
      (generation ? ' (emulated ARK, explicitly trusted)' : ''));

    const sevPolicy = Policy.from({ noDebug: true, noKeySharing: true });
    const sevOwner = { policy: sevPolicy, session: createLaunchSession(chain.pdh, sevPolicy.value) };
    say('owner', `launch session for policy ${sevPolicy}: GODH certificate + session blob (TEK/TIK wrapped for this PDH)`);
    const sev = await sevGuest(platform, kvm, sevOwner, dir, encrypted);

    if (!json) console.log('');
    const esPolicy = Policy.from({ noDebug: true, noKeySharing: true, es: true });
    const esOwner = { policy: esPolicy, session: createLaunchSession(chain.pdh, esPolicy.value) };
    say('owner', `SEV-ES launch session for policy ${esPolicy}`);
    const es = await sevEsGuest(platform, kvm, esOwner, encrypted);

    const ok = sev.ok && es.ok;
    if (json) {
      console.log(JSON.stringify({ ...sev, ok, emulated: generation, kvm: backend, memoryEncrypted: encrypted, chainVerified: report.ok,
        policy: sevPolicy.value, sev, sevEs: es }, null, 2));
    } else {
      console.log(ok ? `\nBoth guests read the secrets that only their verified launches could receive${encrypted ? ', while the host saw ciphertext' : ''}.`
        : '\nMISMATCH: a guest printed something else');
    }
    if (!ok) process.exitCode = 1;
  } finally {
    kvm.close();
    platform.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// --snp: the SEV-SNP story (scripts/demo-snp.ts) needs a host with SNP enabled, the software KVM
// (the only one with SNP VMs here) and the emulated KDS: a fresh emulator of its own.
function snpDemo(): void {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.SEV_EMU_STATE;
  const root = path.resolve(__dirname, '..', '..');
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'sev-emu.js'), 'run', '--temp-state', '--host-snp', '--kvm', 'soft', '--kds', '--',
    process.execPath, path.join(__dirname, 'demo-snp.js'), ...(json ? ['--json'] : [])], { stdio: 'inherit', env });
  process.exitCode = r.status ?? 1;
}

if (process.argv.includes('--snp')) snpDemo();
else main().catch((e) => {
  if (json) console.log(JSON.stringify({ ok: false, error: (e as Error).message }));
  else console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
