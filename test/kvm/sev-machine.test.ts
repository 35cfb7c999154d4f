// What makes the machine an SEV machine, as the guest and the host each see it: private memory is
// plaintext to the guest and ciphertext to the host; the C-bit in the guest's page tables picks
// private or shared; host writes to private memory are garbage to the guest; string I/O reads
// KVM's (the host's) view; an SEV-ES vCPU's registers are the VMSA's, intercepted instructions
// raise #VC inside the guest, and the guest talks to the host through the GHCB. Runs wherever
// guest memory is really encrypted: SEV hardware, or the emulator's software KVM.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';

import { SevError } from '../../lib/errors';
import { GuestMemory, Kvm, type Vcpu, type Vm } from '../../lib/kvm';
import { SevLaunch, type SevMode } from '../../lib/launch';
import { SevPlatform } from '../../lib/platform';
import { ES_GUEST, loadGuest, startEsGuestVcpu } from '../../scripts/guest-images';
import { memoryEncrypted, requireSevDevice, skipBecause } from '../helpers/env';
import { CODE_ADDR, longMode, outputsToHlt, realMode, requireKvm } from './guest';

const { EINVAL } = osConstants.errno;

interface Machine {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  vcpu: Vcpu;
  close(): void;
}

/**
 * An SEV (or SEV-ES) guest with `code` at 0x1000, launched with policy 0 (debugging allowed, so
 * DBG_DECRYPT can show the guest's view), the pages in `measured` encrypted by LAUNCH_UPDATE_DATA.
 */
async function launch(platform: SevPlatform, o: {
  mode?: SevMode; vmType?: 'default' | SevMode; size?: number; setup: (m: Omit<Machine, 'close'>) => void; pages: [number, number][];
}): Promise<Machine> {
  const mode = o.mode ?? 'sev';
  const kvm = Kvm.open();
  const vm = kvm.createVm({ type: o.vmType ?? mode });
  const memory = GuestMemory.create(o.size ?? 0x10000);
  const close = () => {
    vm.close();
    memory.release();
    kvm.close();
  };
  try {
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    const l = await SevLaunch.init(vm, platform, { mode });
    const vcpu = vm.createVcpu(0);
    o.setup({ kvm, vm, memory, vcpu });
    const started = await l.start({ policy: mode === 'sev-es' ? { es: true } : 0 });
    await started.updateRanges(memory, o.pages.map(([offset, length]) => ({ offset, length })));
    if (mode === 'sev-es') await started.updateVmsa();
    await (await started.measure()).finish();
    return { kvm, vm, memory, vcpu, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** Identity page tables for the first 2 MiB in 4 KiB pages, C-bit set except on `shared` pages. */
function pageTables(memory: GuestMemory, cBit: number, shared: number[]): void {
  const v = memory.view();
  const c = 1n << BigInt(cBit);
  v.writeBigUInt64LE(0x3000n | 3n | c, 0x2000);
  v.writeBigUInt64LE(0x4000n | 3n | c, 0x3000);
  v.writeBigUInt64LE(0x5000n | 3n | c, 0x4000);
  for (let i = 0; i < 512; i++) {
    v.writeBigUInt64LE(BigInt(i * 0x1000) | 3n | (shared.includes(i * 0x1000) ? 0n : c), 0x5000 + i * 8);
  }
}

function cBitOf(kvm: Kvm): number {
  const leaf = kvm.supportedCpuid().find((e) => e.function === 0x8000001f);
  assert.ok(leaf, 'CPUID 0x8000001F');
  return leaf.ebx & 0x3f;
}

async function outs(vcpu: Vcpu): Promise<bigint[]> {
  return (await outputsToHlt(vcpu, 0x11, 100)).map((d) => (d.length >= 4 ? BigInt(d.readUInt32LE(0)) : BigInt(d[0])));
}

describe('SEV machine: encrypted memory and protected state', function () {
  let platform: SevPlatform;

  before(function () {
    requireKvm(this);
    requireSevDevice(this);
    platform = SevPlatform.open();
    const k = Kvm.open();
    k.close();
    if (!memoryEncrypted()) skipBecause(this, 'guest memory is plaintext with the host KVM: these checks need SEV hardware or `sev-emu run --kvm soft`');
  });
  after(() => platform?.close());

  it('private memory: the guest writes plaintext, the host sees ciphertext, DBG_DECRYPT the guest\'s bytes', async () => {
    // mov byte [0x3000], 0x99; mov word [0x3002], 0xbeef; hlt (real mode: every access private)
    const code = [0xc6, 0x06, 0x00, 0x30, 0x99, 0xc7, 0x06, 0x02, 0x30, 0xef, 0xbe, 0xf4];
    const m = await launch(platform, { setup: ({ memory, vcpu }) => { memory.bytes().set(code, CODE_ADDR); realMode(vcpu); }, pages: [[0x1000, 0x1000]] });
    try {
      const before = Buffer.from(m.memory.bytes(0x3000, 16));
      assert.equal((await m.vcpu.run()).reason, 'HLT');
      const host = Buffer.from(m.memory.bytes(0x3000, 16));
      assert.ok(!host.equals(before), 'the guest\'s write changed the host\'s view of the block');
      assert.ok(!(host[0] === 0x99 && host.readUInt16LE(2) === 0xbeef), 'the host does not see the plaintext');
      const guest = await m.vm.dbgDecrypt(platform, m.memory, 0x3000, 16);
      assert.equal(guest[0], 0x99);
      assert.equal(guest.readUInt16LE(2), 0xbeef);
    } finally {
      m.close();
    }
  });

  it('a host write into a private page is garbage to the guest (no integrity); a shared page is plain both ways', async () => {
    const m = await launch(platform, {
      size: 0x20000,
      setup: ({ kvm, memory, vcpu }) => {
        pageTables(memory, cBitOf(kvm), [0x8000]);
        // 64-bit: write a marker to 0x7000 (private) and 0x8000 (shared); output the qwords at
        // 0x8008 (shared) and 0x7008 (private), each as two 32-bit OUTs to port 0x11; hlt.
        const marker = [0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11];
        const store = (a: number) => [0x48, 0x89, 0x04, 0x25, a & 0xff, a >> 8, 0, 0];
        const loadOut = (a: number) => [0x48, 0x8b, 0x04, 0x25, a & 0xff, a >> 8, 0, 0, 0xe7, 0x11, 0x48, 0xc1, 0xe8, 0x20, 0xe7, 0x11];
        const code = [...marker, ...store(0x7000), ...store(0x8000), 0xf4, ...loadOut(0x8008), ...loadOut(0x7008), 0xf4];
        memory.bytes().set(code, CODE_ADDR);
        vcpu.setCpuid(kvm.supportedCpuid());
        longMode(vcpu);
      },
      pages: [[0x1000, 0x5000]], // code and page tables: page-table walks are private too
    });
    try {
      assert.equal((await m.vcpu.run()).reason, 'HLT', 'first half');
      const view = m.memory.view();
      assert.equal(view.readBigUInt64LE(0x8000), 0x1122334455667788n, 'shared: the host reads the guest\'s plaintext');
      assert.notEqual(view.readBigUInt64LE(0x7000), 0x1122334455667788n, 'private: the host reads ciphertext');
      assert.equal((await m.vm.dbgDecrypt(platform, m.memory, 0x7000, 8)).readBigUInt64LE(0), 0x1122334455667788n);
      // The host writes the same plaintext into both pages.
      view.writeBigUInt64LE(0xaabbccddeeff0011n, 0x8008);
      view.writeBigUInt64LE(0xaabbccddeeff0011n, 0x7008);
      const got = await outs(m.vcpu);
      assert.deepEqual(got.slice(0, 2), [0xeeff0011n, 0xaabbccddn], 'shared: the guest reads the host\'s plaintext');
      assert.notDeepEqual(got.slice(2, 4), [0xeeff0011n, 0xaabbccddn], 'private: the guest reads garbage');
    } finally {
      m.close();
    }
  });

  it('the C-bit position is the emulated CPU\'s: a page-table entry with another bit set is not private memory', async () => {
    const kvm = Kvm.open();
    const cbit = cBitOf(kvm);
    kvm.close();
    const other = cbit === 51 ? 47 : 51;
    const m = await launch(platform, {
      size: 0x20000,
      setup: ({ kvm, memory, vcpu }) => {
        pageTables(memory, cbit, []);
        // PT entry for 0x9000 with the wrong bit: a guest-physical address, not the C-bit.
        memory.view().writeBigUInt64LE(0x9000n | 3n | (1n << BigInt(other)), 0x5000 + 9 * 8);
        memory.bytes().set([0x8a, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0xf4], CODE_ADDR); // mov al, [0x9000]; hlt
        vcpu.setCpuid(kvm.supportedCpuid());
        longMode(vcpu);
      },
      pages: [[0x1000, 0x5000]],
    });
    try {
      const e = await m.vcpu.run();
      if (other < 48) {
        // Bit 47 is an address bit on a 48-bit machine: 0x800000009000 has no memory (MMIO).
        assert.ok(e.reason === 'MMIO' && e.address === (1n << 47n) + 0x9000n, JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
      } else {
        assert.ok(e.reason !== 'HLT', `bit ${other} above MAXPHYADDR is reserved: the access faults`);
      }
    } finally {
      m.close();
    }
  });

  it('rep outsb from private memory hands the host ciphertext, as KVM reads guest memory itself', async () => {
    // mov si, 0x3000; mov cx, 16; mov dx, 0x11; rep outsb; hlt
    const code = [0xbe, 0x00, 0x30, 0xb9, 0x10, 0x00, 0xba, 0x11, 0x00, 0xf3, 0x6e, 0xf4];
    const secret = randomBytes(16);
    const m = await launch(platform, {
      setup: ({ memory, vcpu }) => { memory.bytes().set(code, CODE_ADDR); memory.bytes().set(secret, 0x3000); realMode(vcpu); },
      pages: [[0x1000, 0x3000]],
    });
    try {
      // One exit per element, as KVM's instruction emulator makes them (emulate.c em_out).
      const seen: number[] = [];
      for (let i = 0; i < 16; i++) {
        const e = await m.vcpu.run();
        assert.ok(e.reason === 'IO' && e.direction === 'out' && e.port === 0x11 && e.count === 1 && e.size === 1, JSON.stringify(e));
        if (e.reason === 'IO') seen.push(e.data[0]);
      }
      assert.deepEqual(Buffer.from(seen), Buffer.from(m.memory.bytes(0x3000, 16)), 'the bytes of the host\'s view');
      assert.notDeepEqual(Buffer.from(seen), secret, 'not the plaintext');
      assert.equal((await m.vcpu.run()).reason, 'HLT');
    } finally {
      m.close();
    }
  });

  it('SEV-ES: the registers are the VMSA\'s (EINVAL), LAUNCH_UPDATE_VMSA twice is refused, a run before it fails entry', async () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm({ type: 'sev-es' });
    const memory = GuestMemory.create(0x10000);
    try {
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
      const l = await SevLaunch.init(vm, platform, { mode: 'sev-es' });
      const vcpu = vm.createVcpu(0);
      realMode(vcpu);
      const early = await vcpu.run();
      assert.equal(early.reason, 'FAIL_ENTRY', 'VMRUN without an encrypted VMSA');
      const started = await l.start({ policy: { es: true } });
      await started.updateVmsa();
      const refused = (e: unknown) => e instanceof SevError && e.errno === EINVAL;
      assert.throws(() => vcpu.getRegs(), refused);
      assert.throws(() => vcpu.setRegs({ rax: 1 }), refused);
      assert.throws(() => vcpu.getSregs(), refused);
      await assert.rejects(started.updateVmsa(), (e: unknown) => e instanceof SevError && e.errno === EINVAL);
    } finally {
      vm.close();
      memory.release();
      kvm.close();
    }
  });

  it('SEV-ES: OUT raises #VC in the guest with the exit code as error code, at the OUT', async () => {
    const guest = loadGuest('es_vc');
    const m = await launch(platform, {
      mode: 'sev-es',
      vmType: 'default',
      setup: ({ kvm, memory, vcpu }) => {
        memory.bytes().set(guest.bytes, ES_GUEST.code);
        startEsGuestVcpu(kvm, vcpu);
      },
      pages: [[ES_GUEST.code, 0x1000]],
    });
    try {
      assert.equal((await m.vcpu.run()).reason, 'HLT', 'the #VC handler halts');
      const report = m.memory.view(); // the GHCB page is shared: the host reads it in clear
      assert.equal(report.readBigUInt64LE(ES_GUEST.report), 0x7bn, 'SVM_EXIT_IOIO');
      assert.equal(Number(report.readBigUInt64LE(ES_GUEST.report + 8)), guest.symbols.out_insn);
    } finally {
      m.close();
    }
  });
});
