// The SEV / SEV-ES launch end to end on the emulator with the real /dev/kvm: the guest owner
// builds a session (lib/owner), the host launches a tiny real-mode guest through the typed
// launcher (lib/launch), the owner checks the measurement and releases a secret, and the guest
// really runs and prints the secret it finds in its memory.
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SevClosedError, SevError } from '../../lib/errors';
import { GuestMemory, Kvm, type Vcpu, type Vm } from '../../lib/kvm';
import { Policy, SevLaunch, type SevMode } from '../../lib/launch';
import { buildSecretPacket, buildVmsa, computeMeasurement, createLaunchSession, parseAttestationReport, verifyAttestationReport } from '../../lib/owner';
import { SevPlatform } from '../../lib/platform';
import { emulated, memoryEncrypted, nodeScript, requireSevDevice, skipBecause, underFreshEmulator } from '../helpers/env';
import { createEsGuest, ES_GUEST, esGuestLaunchDigest } from '../../scripts/guest-images';
import { CODE_ADDR, ECHO_STRING, ECHO_STRING_ADDR, outputsToHlt, realMode, requireKvm } from '../kvm/guest';

const MEMORY_SIZE = 0x10000;
const CODE_PAGE = { offset: CODE_ADDR, length: 0x1000 };

interface Guest {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  vcpu: Vcpu;
  close(): void;
}

/**
 * A VM with 64 KiB at guest-physical 0 and the echo program at 0x1000, SEV-initialised by the
 * typed launcher (the kernel wants SEV initialised before vCPUs exist), then one real-mode vCPU.
 */
async function sevGuest(platform: SevPlatform, mode: SevMode, vmType: 'typed' | 'default' = 'typed'): Promise<Guest & { launch: SevLaunch }> {
  const kvm = Kvm.open();
  const vm = kvm.createVm({ type: vmType === 'default' ? 'default' : mode });
  const memory = GuestMemory.create(MEMORY_SIZE);
  const close = () => {
    vm.close();
    memory.release();
    kvm.close();
  };
  try {
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    memory.bytes().set(ECHO_STRING, CODE_ADDR);
    const launch = await SevLaunch.init(vm, platform, { mode });
    const vcpu = vm.createVcpu(0);
    realMode(vcpu);
    return { kvm, vm, memory, vcpu, launch, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** Runs the echo guest to HLT: the string it writes to port 0x11, NULs dropped. */
async function runEcho(vcpu: Vcpu): Promise<string> {
  return Buffer.from(Buffer.concat(await outputsToHlt(vcpu, 0x11)).filter((b) => b !== 0)).toString('latin1');
}

describe('launch: SEV and SEV-ES guests end to end', function () {
  let platform: SevPlatform;

  before(function () {
    requireKvm(this);
    requireSevDevice(this);
    platform = SevPlatform.open();
  });
  after(() => platform?.close());

  it('sev: owner session → stream → measure (verified) → secret → finish → the guest prints the secret', async function () {
    const status = await platform.status();
    const policy = Policy.from({ noDebug: true });
    const owner = createLaunchSession((await platform.pdhCertExport()).pdh, policy.value);
    const g = await sevGuest(platform, 'sev');
    try {
      const started = await g.launch.start({ policy, dhCert: owner.godhCert, session: owner.session });
      assert.ok(started.handle > 0);
      assert.equal((await started.status()).stateName, 'LUPDATE');
      const progress: number[] = [];
      const code = Buffer.from(g.memory.bytes(CODE_PAGE.offset, CODE_PAGE.length)); // plaintext: the machine encrypts in place
      await started.updateRanges(g.memory, [CODE_PAGE], { onProgress: (p) => progress.push(p.bytesDone) });
      assert.equal(progress[progress.length - 1], 0x1000);
      const encrypted = memoryEncrypted();
      assert.equal(Buffer.from(g.memory.bytes(CODE_PAGE.offset, CODE_PAGE.length)).equals(code), !encrypted,
        encrypted ? 'the host sees ciphertext where the image was' : 'memory stays plaintext on the host KVM');
      const measured = await started.measure();
      assert.equal((await measured.status()).stateName, 'LSECRET');

      // The owner's own computation from the same inputs.
      const digest = createHash('sha256').update(code).digest();
      const expected = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build,
        policy: policy.value, tik: owner.tik, digest, mnonce: measured.mnonce,
      });
      assert.deepEqual(measured.measurement, expected);
      const wrongTik = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build,
        policy: policy.value, tik: randomBytes(16), digest, mnonce: measured.mnonce,
      });
      assert.notDeepEqual(measured.measurement, wrongTik);
      const image = Buffer.from(code);
      image[7] ^= 1; // one changed image byte
      const changedImage = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build,
        policy: policy.value, tik: owner.tik, digest: createHash('sha256').update(image).digest(), mnonce: measured.mnonce,
      });
      assert.notDeepEqual(measured.measurement, changedImage);

      const secret = Buffer.alloc(32);
      secret.write(`sev secret ${randomBytes(4).toString('hex')}`);
      const packet = buildSecretPacket(owner, measured.measurement, secret);
      await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory: g.memory, guestOffset: ECHO_STRING_ADDR });
      if (encrypted) assert.ok(!Buffer.from(g.memory.bytes(ECHO_STRING_ADDR, 32)).equals(secret), 'the secret lands encrypted');
      const finished = await measured.finish();
      assert.equal((await finished.status()).stateName, 'RUNNING');
      // A verifier's nonce, signed back by the PEK with this launch's digest and policy.
      const nonce = randomBytes(16);
      const report = parseAttestationReport(await finished.attestationReport(nonce));
      assert.deepEqual(report.mnonce, nonce);
      assert.equal(report.policy, policy.value);
      assert.ok(verifyAttestationReport(report, (await platform.pdhCertExport()).pek), 'PEK signature');
      assert.deepEqual(report.launchDigest, digest);
      // The guest reads its private memory in clear.
      assert.equal(await runEcho(g.vcpu), secret.toString('latin1').replace(/\0+$/, ''));
    } finally {
      g.close();
    }
  });

  /** The emulator with the host's KVM: an SEV-ES launch completes and the (plain) VM runs its guest. */
  async function plainVmAfterEsLaunch(): Promise<void> {
    const g = await sevGuest(platform, 'sev-es');
    try {
      const owner = createLaunchSession((await platform.pdhCertExport()).pdh, 0x5);
      const started = await g.launch.start({ policy: 0x5, dhCert: owner.godhCert, session: owner.session });
      await started.updateData(g.memory, CODE_PAGE.offset, CODE_PAGE.length);
      await started.updateVmsa();
      const measured = await started.measure();
      const secret = Buffer.alloc(16);
      secret.write('es on host kvm');
      const packet = buildSecretPacket(owner, measured.measurement, secret);
      await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory: g.memory, guestOffset: ECHO_STRING_ADDR });
      await measured.finish();
      assert.equal(await runEcho(g.vcpu), 'es on host kvm');
    } finally {
      g.close();
    }
  }

  it('sev-es: the owner predicts the measurement; the guest reaches long mode and reports its secret through the GHCB (host KVM: as a plain VM)', async function () {
    const status = await platform.status();
    const policy = Policy.from({ noDebug: true, es: true });
    const owner = createLaunchSession((await platform.pdhCertExport()).pdh, policy.value);
    const kvm = Kvm.open();
    const { memory, launch, vcpu, close } = await createEsGuest(kvm, platform, 'es_ghcb').catch((e) => {
      kvm.close();
      throw e;
    });
    try {
      const started = await launch.start({ policy, dhCert: owner.godhCert, session: owner.session });
      const pages = { offset: ES_GUEST.code, length: 0x1000 };
      const code = Buffer.from(memory.bytes(pages.offset, pages.length));
      await started.updateRanges(memory, [pages]);
      await started.updateVmsa();
      const measured = await started.measure();
      const expected = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: policy.value,
        tik: owner.tik, digest: esGuestLaunchDigest(code), mnonce: measured.mnonce,
      });
      assert.deepEqual(measured.measurement, expected);
      const secret = Buffer.alloc(48);
      secret.write(`sev-es secret ${randomBytes(6).toString('hex')}`);
      const packet = buildSecretPacket(owner, measured.measurement, secret);
      await measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory, guestOffset: ES_GUEST.secret });
      await measured.finish();
      if (!memoryEncrypted()) {
        // The emulator on the host's KVM: that KVM runs this VM as a plain one (no #VC, no GHCB),
        // so the GHCB guest cannot run; an SEV-ES launch of a real-mode guest must still run.
        await plainVmAfterEsLaunch();
        return;
      }
      const e = await vcpu.run();
      assert.ok(e.reason === 'IO' && e.direction === 'out' && e.port === ES_GUEST.port, JSON.stringify(e));
      if (e.reason !== 'IO') return;
      assert.equal(e.count, secret.indexOf(0));
      assert.equal(e.data.toString('latin1'), secret.toString('latin1').replace(/\0+$/, ''));
      assert.equal((await vcpu.run()).reason, 'HLT');
    } finally {
      close();
      kvm.close();
    }
  });

  it('sev-es: the owner predicts the measurement from a sevctl-style VMSA (QEMU reset state, EPYC-Milan)', async () => {
    // KVM_SEV_ES_INIT (legacy: no FPU in the VMSA, as sevctl models it); vCPU 0 in the x86 reset
    // state QEMU leaves it in, with RDX = the CPUID signature of family 25, model 1, stepping 1.
    const status = await platform.status();
    const owner = createLaunchSession((await platform.pdhCertExport()).pdh, 0x5);
    const kvm = Kvm.open();
    const vm = kvm.createVm({ type: 'default' });
    const memory = GuestMemory.create(MEMORY_SIZE);
    try {
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
      const launch = await SevLaunch.init(vm, platform, { mode: 'sev-es' });
      const vcpu = vm.createVcpu(0);
      vcpu.setRegs({ rdx: 0xa00f11 });
      // QEMU puts its reset state into every vCPU (x86_cpu_reset, then KVM_SET_SREGS): accessed code
      // and stack segments and a busy 32-bit TSS, where KVM's own reset state on AMD has other types.
      const s = vcpu.getSregs();
      vcpu.setSregs({ cs: { ...s.cs, type: 0xb }, ss: { ...s.ss, type: 0x3 }, tr: { ...s.tr, type: 0xb } });
      const started = await launch.start({ policy: 0x5, dhCert: owner.godhCert, session: owner.session });
      const code = Buffer.from(memory.bytes(CODE_PAGE.offset, CODE_PAGE.length));
      await started.updateData(memory, CODE_PAGE.offset, CODE_PAGE.length);
      await started.updateVmsa();
      const measured = await started.measure();
      const vmsa = buildVmsa({ cpu: 0, family: 25, model: 1, stepping: 1, userspace: 'qemu' }).page;
      const expected = computeMeasurement({
        apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: 0x5,
        tik: owner.tik, digest: createHash('sha256').update(code).update(vmsa).digest(), mnonce: measured.mnonce,
      });
      assert.deepEqual(measured.measurement, expected);
    } finally {
      vm.close();
      memory.release();
      kvm.close();
    }
  });

  it('KVM_SEV_INIT on a default VM (kernels without VM types) launches too', async () => {
    const g = await sevGuest(platform, 'sev', 'default');
    try {
      const started = await g.launch.start({ policy: 0 });
      await started.updateData(g.memory, CODE_PAGE.offset, CODE_PAGE.length);
      const measured = await started.measure();
      assert.equal(measured.blob.length, 48);
      await measured.finish();
    } finally {
      g.close();
    }
  });

  it('a secret built for another measurement is refused (BAD_MEASUREMENT) and not written', async () => {
    const owner = createLaunchSession((await platform.pdhCertExport()).pdh, 0);
    const g = await sevGuest(platform, 'sev');
    try {
      const started = await g.launch.start({ policy: 0, dhCert: owner.godhCert, session: owner.session });
      await started.updateData(g.memory, CODE_PAGE.offset, CODE_PAGE.length);
      const measured = await started.measure();
      const packet = buildSecretPacket(owner, randomBytes(32), Buffer.alloc(16, 0x41));
      await assert.rejects(
        measured.injectSecret({ header: packet.header, ciphertext: packet.ciphertext, memory: g.memory, guestOffset: ECHO_STRING_ADDR }),
        (e: SevError) => e.firmwareStatusName === 'BAD_MEASUREMENT',
      );
      assert.ok(g.memory.bytes(ECHO_STRING_ADDR, 16).every((b) => b === 0), 'nothing was written');
    } finally {
      g.close();
    }
  });

  describe('steps out of order and bad input', () => {
    it('a superseded step cannot act again; a running step blocks the next', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        const launch = g.launch;
        const started = await launch.start({ policy: 0 });
        await assert.rejects(launch.start({ policy: 0 }), /launch step is over/);
        const measuring = started.measure();
        await assert.rejects(started.updateData(g.memory, 0, 16), /LAUNCH_MEASURE is still running|launch step is over/);
        const measured = await measuring;
        await assert.rejects(started.updateData(g.memory, 0, 16), (e: Error) => e instanceof SevArgumentError && /launch step is over/.test(e.message));
        await assert.rejects(started.measure(), /launch step is over/);
        await measured.finish();
        await assert.rejects(measured.finish(), /launch step is over/);
      } finally {
        g.close();
      }
    });

    it('the firmware enforces order too: raw commands out of order fail with INVALID_GUEST_STATE', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        await g.vm.launchStart(platform, { policy: 0 });
        await g.vm.launchMeasure(platform);
        await assert.rejects(g.vm.launchUpdateData(platform, g.memory, 0, 16), (e: SevError) => e.firmwareStatusName === 'INVALID_GUEST_STATE');
      } finally {
        g.close();
      }
    });

    it('unaligned and out-of-bounds ranges are rejected before any ioctl', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        const started = await g.launch.start({ policy: 0 });
        await assert.rejects(started.updateData(g.memory, 8, 16), (e: Error) => e instanceof SevArgumentError && /multiples of 16/.test(e.message));
        await assert.rejects(started.updateData(g.memory, 0, MEMORY_SIZE + 16), (e: Error) => e instanceof SevArgumentError && /outside guest memory/.test(e.message));
        await assert.rejects(started.updateRanges(g.memory, []), SevArgumentError);
        // Nothing was measured by the rejected calls: still in LUPDATE, and it still works.
        await started.updateData(g.memory, 0, 16);
      } finally {
        g.close();
      }
    });

    it('policy and mode must agree; SEV-ES needs vCPUs for the VMSA', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        await assert.rejects(g.launch.start({ policy: { es: true } }), /requires SEV-ES/);
        const started = await g.launch.start({ policy: 0 });
        await assert.rejects(started.updateVmsa(), /only SEV-ES/);
        const kvm = Kvm.open();
        const vm = kvm.createVm({ type: 'sev-es' });
        try {
          const es = await (await SevLaunch.init(vm, platform)).start({ policy: { es: true } });
          await assert.rejects(es.updateVmsa(), /create the vCPUs/);
          vm.createVcpu(0);
          await es.updateVmsa();
        } finally {
          vm.close();
          kvm.close();
        }
      } finally {
        g.close();
      }
    });

    it('without NODBG, DBG_DECRYPT reads and DBG_ENCRYPT writes guest memory', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        const started = await g.launch.start({ policy: 0 });
        const plain = Buffer.from(g.memory.bytes(CODE_ADDR, 16));
        await started.updateData(g.memory, CODE_PAGE.offset, CODE_PAGE.length);
        assert.deepEqual(await g.vm.dbgDecrypt(platform, g.memory, CODE_ADDR, 16), plain);
        const data = randomBytes(32);
        await g.vm.dbgEncrypt(platform, g.memory, 0x4000, data);
        assert.deepEqual(await g.vm.dbgDecrypt(platform, g.memory, 0x4000, 32), data);
      } finally {
        g.close();
      }
    });

    it('a debug command under NODBG is refused with POLICY_FAILURE', async () => {
      const g = await sevGuest(platform, 'sev');
      try {
        const started = await g.launch.start({ policy: { noDebug: true } });
        await started.updateData(g.memory, CODE_PAGE.offset, CODE_PAGE.length);
        await assert.rejects(g.vm.dbgDecrypt(platform, g.memory, CODE_ADDR, 16), (e: SevError) => e.firmwareStatusName === 'POLICY_FAILURE');
      } finally {
        g.close();
      }
    });
  });

  describe('streaming', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-stream-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('streams a file into guest memory: same bytes, same measurement as updating them in place', async () => {
      const image = randomBytes(3 * 1024 * 1024 + 100); // not a multiple of 16: padded with zeros
      const file = path.join(dir, 'image.bin');
      fs.writeFileSync(file, image);
      const size = 4 * 1024 * 1024;
      const owner = createLaunchSession((await platform.pdhCertExport()).pdh, 0);
      const kvm = Kvm.open();
      const vm = kvm.createVm({ type: 'sev' });
      const memory = GuestMemory.create(size);
      try {
        vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
        const started = await (await SevLaunch.init(vm, platform)).start({ policy: 0, dhCert: owner.godhCert, session: owner.session });
        const seen: number[] = [];
        const r = await started.streamFile(memory, file, { offset: 0x10000, chunkSize: 1 << 20, onProgress: (p) => seen.push(p.chunksDone) });
        assert.equal(r.bytes, Math.ceil(image.length / 16) * 16);
        assert.equal(r.chunks, 4);
        assert.deepEqual(seen, [1, 2, 3, 4]);
        // The host's view: the image where memory stays plaintext, ciphertext where it is encrypted;
        // the guest's view (DBG_DECRYPT, policy 0 allows it) is the image either way.
        assert.equal(Buffer.from(memory.bytes(0x10000, image.length)).equals(image), !memoryEncrypted());
        for (const at of [0, 0x1234f0, image.length - 100]) {
          assert.deepEqual(await vm.dbgDecrypt(platform, memory, 0x10000 + at, 64), image.subarray(at, at + 64));
        }
        const measured = await started.measure();
        const status = await platform.status();
        const padded = Buffer.concat([image, Buffer.alloc(r.bytes - image.length)]);
        const expected = computeMeasurement({
          apiMajor: status.api.major, apiMinor: status.api.minor, build: status.build, policy: 0,
          tik: owner.tik, digest: createHash('sha256').update(padded).digest(), mnonce: measured.mnonce,
        });
        assert.deepEqual(measured.measurement, expected);
      } finally {
        vm.close();
        memory.release();
        kvm.close();
      }
    });

    it('cancellation stops between chunks; closing the VM mid-stream gives a typed error and leaks nothing', async () => {
      const file = path.join(dir, 'big.bin');
      fs.writeFileSync(file, randomBytes(8 * 1024 * 1024));
      const fdsBefore = fs.readdirSync('/proc/self/fd').length;
      for (const how of ['abort', 'close'] as const) {
        const kvm = Kvm.open();
        const vm = kvm.createVm({ type: 'sev' });
        const memory = GuestMemory.create(16 * 1024 * 1024);
        vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
        const started = await (await SevLaunch.init(vm, platform)).start({ policy: 0 });
        const ac = new AbortController();
        const stream = started.streamFile(memory, file, {
          offset: 0, chunkSize: 1 << 20, signal: ac.signal,
          onProgress: (p) => {
            if (p.chunksDone === 2) (how === 'abort' ? ac.abort() : vm.close());
          },
        });
        if (how === 'abort') {
          await assert.rejects(stream, (e: SevError) => e.name === 'AbortError' && /cancelled after 2097152 bytes/.test(e.message));
        } else {
          await assert.rejects(stream, (e: Error) => e instanceof SevClosedError || (e instanceof SevError && e.code === 'EBADF'));
        }
        vm.close();
        memory.release();
        kvm.close();
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(fs.readdirSync('/proc/self/fd').length, fdsBefore, 'no fd leaked');
    });

    it('an exhausted RLIMIT_MEMLOCK (without CAP_IPC_LOCK) is a typed error naming the limit', function () {
      if (!emulated) skipBecause(this, 'runs in a fresh emulator under setpriv/prlimit');
      const r = underFreshEmulator([], [
        'setpriv', '--inh-caps=-ipc_lock', '--ambient-caps=-ipc_lock', '--bounding-set=-ipc_lock',
        'prlimit', '--memlock=262144:262144', '--',
        ...nodeScript(`
          (async () => {
            const p = lib.SevPlatform.open();
            const kvm = lib.Kvm.open();
            const vm = kvm.createVm({ type: 'sev' });
            const memory = lib.GuestMemory.create(1 << 20);
            vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
            const out = {};
            const launch = await lib.SevLaunch.init(vm, p);
            try { await vm.registerEncRegion(memory); out.register = 'ok'; } catch (e) { out.register = [e.code, /RLIMIT_MEMLOCK/.test(e.message)]; }
            const started = await launch.start({ policy: 0 });
            const r = await started.updateData(memory, 0, 1 << 20);  // chunked to fit the limit
            out.update = r.chunks;
            vm.close(); memory.release(); kvm.close(); p.close();
            console.log(JSON.stringify(out));
          })().catch((e) => { console.error(e); process.exit(1); });
        `),
      ]);
      if (r.error || (/setpriv|prlimit/.test(r.stderr) && r.status !== 0 && !r.stdout)) skipBecause(this, `setpriv/prlimit unavailable: ${r.error ?? r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(out.register, ['ENOMEM', true]);
      assert.ok(out.update >= 4, `chunked into ${out.update} updates within the limit`);
    });
  });
});
