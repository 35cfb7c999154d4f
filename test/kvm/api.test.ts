// The KVM API surface: system capabilities, bad input rejected before any ioctl with typed errors,
// closed objects, the SEV commands on a VM that is not an SEV guest (the kernel's errno, no crash),
// and the native layer's own type checks.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError, SevError } from '../../lib/errors';
import { GuestMemory, KVM_CAP, Kvm, VM_TYPE, type Vm } from '../../lib/kvm';
import { native } from '../../lib/native';
import { KVM_DEVICE, OUT_42, realModeGuest, requireKvm } from './guest';

const { ENOTTY, EINVAL, EBADF, ENOENT } = osConstants.errno;
const emulated = native.emulator() !== null;

describe('kvm: API and errors (/dev/kvm)', function () {
  let kvm: Kvm;

  before(function () {
    requireKvm(this);
    kvm = Kvm.open(KVM_DEVICE);
  });
  after(() => kvm?.close());

  describe('Kvm', () => {
    it('reports API version 12, the VM types, the vCPU mmap size and CPUID', () => {
      assert.equal(kvm.apiVersion(), 12);
      const types = kvm.supportedVmTypes();
      assert.ok(types.includes(VM_TYPE.DEFAULT), `types ${types}`);
      const mask = kvm.checkExtension(KVM_CAP.VM_TYPES);
      if (mask === 0) assert.deepEqual(types, [0], 'no KVM_CAP_VM_TYPES: default VM only');
      assert.ok(kvm.vcpuMmapSize() >= 4096);
      assert.ok(kvm.checkExtension(KVM_CAP.NR_MEMSLOTS) > 0);
      const cpuid = kvm.supportedCpuid();
      assert.ok(cpuid.some((e) => e.function === 0), 'leaf 0');
    });

    it('open errors are SevErrors naming the device and errno', () => {
      assert.throws(() => Kvm.open('/nonexistent/kvm'), (e: SevError) => e instanceof SevError && e.errno === ENOENT && /no KVM/.test(e.message));
      assert.throws(() => Kvm.open(''), SevArgumentError);
    });

    it('rejects unknown VM types before the ioctl, and reports unsupported ones from the kernel', () => {
      assert.throws(() => kvm.createVm({ type: 'tdz' as never }), SevArgumentError);
      assert.throws(() => kvm.createVm({ type: -1 }), SevArgumentError);
      const supported = kvm.supportedVmTypes();
      const missing = [VM_TYPE.SEV, VM_TYPE.SEV_ES, VM_TYPE.SNP].find((t) => !supported.includes(t));
      if (missing !== undefined) {
        assert.throws(
          () => kvm.createVm({ type: missing }),
          (e: SevError) => e.command === 'KVM_CREATE_VM' && e.errno === EINVAL && /not supported here/.test(e.message),
        );
      }
    });

    it('a closed Kvm refuses calls; its VMs stay usable', () => {
      const k = Kvm.open(KVM_DEVICE);
      const vm = k.createVm();
      k.close();
      k.close();
      assert.throws(() => k.apiVersion(), SevClosedError);
      assert.throws(() => k.createVm(), SevClosedError);
      assert.ok(vm.createVcpu(0));
      vm.close();
    });
  });

  describe('memory regions: bad input', () => {
    let vm: Vm;
    let memory: GuestMemory;
    beforeEach(() => {
      vm = kvm.createVm();
      memory = GuestMemory.create(0x10000);
    });
    afterEach(() => {
      vm.close();
      memory.release();
    });

    it('rejects unaligned, out-of-range and overlapping slots with what was expected', () => {
      const bad: [object, RegExp][] = [
        [{ slot: 0, guestPhysAddr: 0x123, memory }, /guestPhysAddr must be a multiple of 0x1000/],
        [{ slot: 0, guestPhysAddr: 0, memory, memoryOffset: 0x10 }, /memoryOffset must be a multiple/],
        [{ slot: 0, guestPhysAddr: 0, memory, size: 0x1800 }, /size must be a multiple/],
        [{ slot: 0, guestPhysAddr: 0, memory, memoryOffset: 0x8000, size: 0x10000 }, /outside guest memory/],
        [{ slot: -1, guestPhysAddr: 0, memory }, /slot must be in/],
        [{ slot: 1e9, guestPhysAddr: 0, memory }, /slot must be in/],
        [{ slot: 0, guestPhysAddr: -4096, memory }, /guestPhysAddr must be a non-negative/],
        [{ slot: 0, guestPhysAddr: 0, memory: new Uint8Array(4096) }, /memory must be a GuestMemory/],
      ];
      for (const [opts, msg] of bad) {
        assert.throws(() => vm.setUserMemoryRegion(opts as never), (e: Error) => e instanceof SevArgumentError && msg.test(e.message), msg.source);
      }
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x100000, memory, size: 0x8000 });
      assert.throws(
        () => vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x107000, memory, memoryOffset: 0x8000, size: 0x8000 }),
        /slot 1 \[0x107000, 0x10f000\) overlaps slot 0 \[0x100000, 0x108000\)/,
      );
      assert.throws(() => vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x100000, memory, size: 0x4000 }), /remove it first/);
      // Moving a slot (same memory and size) is allowed, as in the kernel.
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x200000, memory, size: 0x8000 });
      vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x100000, memory, memoryOffset: 0x8000, size: 0x8000 });
      assert.deepEqual(vm.memoryRegions.map((r) => [r.slot, r.guestPhysAddr]), [[0, 0x200000n], [1, 0x100000n]]);
    });

    it('rejects a released GuestMemory and a closed Vm', () => {
      const other = GuestMemory.create(0x1000);
      other.release();
      assert.throws(() => vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory: other }), SevClosedError);
      vm.close();
      assert.throws(() => vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory }), SevClosedError);
      assert.throws(() => vm.createVcpu(0), SevClosedError);
    });

    it('rejects bad GuestMemory sizes', () => {
      assert.throws(() => GuestMemory.create(0), SevArgumentError);
      assert.throws(() => GuestMemory.create(4095), /multiple of 0x1000/);
      assert.throws(() => GuestMemory.create(0x1000, { hugePages: 'hugetlb' }), /multiple of 0x200000/);
      assert.throws(() => GuestMemory.create(0x1000, { hugePages: 'big' as never }), SevArgumentError);
      const thp = GuestMemory.create(0x400000, { hugePages: 'transparent' });
      thp.release();
    });

    it('rejects bad register input', () => {
      const v = vm.createVcpu(0);
      assert.throws(() => v.setRegs({ rax: -1 }), SevArgumentError);
      assert.throws(() => v.setRegs({ rzz: 1 } as never), /unknown register 'rzz'/);
      assert.throws(() => v.setRegs({ rax: 1n << 64n }), /64 bits/);
      assert.throws(() => v.setSregs({ cs: { dpl: 4 } }), /cs.dpl must be in \[0, 3\]/);
      assert.throws(() => v.setSregs({ cr0: 'x' as never }), SevArgumentError);
      assert.throws(() => v.completeIoIn(1), /last exit was none/);
    });
  });

  describe('SEV commands on a VM that is not an SEV guest', () => {
    let sevFd: number;
    let vm: Vm;
    let memory: GuestMemory;
    before(() => {
      sevFd = fs.openSync('/dev/null', 'r'); // the kernel refuses before it looks at sev_fd
    });
    after(() => fs.closeSync(sevFd));
    beforeEach(() => {
      vm = kvm.createVm();
      memory = GuestMemory.create(0x10000);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    });
    afterEach(() => {
      vm.close();
      memory.release();
    });

    const isKernelError = (command: string) => (e: unknown) => {
      assert.ok(e instanceof SevError && !(e instanceof SevArgumentError), String(e));
      assert.equal(e.command, command);
      assert.ok(e.errno > 0);
      if (!emulated) assert.equal(e.errno, ENOTTY, `${command}: ${e.message}`);
      return true;
    };

    it('every sub-command fails with the kernel errno as a typed SevError (sync and async)', async () => {
      const ops: [string, () => unknown, () => Promise<unknown>][] = [
        ['LAUNCH_START', () => vm.launchStartSync(sevFd, { policy: 0 }), () => vm.launchStart(sevFd, { policy: 0 })],
        ['LAUNCH_UPDATE_DATA', () => vm.launchUpdateDataSync(sevFd, memory, 0, 0x1000), () => vm.launchUpdateData(sevFd, memory, 0, 0x1000)],
        ['LAUNCH_UPDATE_VMSA', () => vm.launchUpdateVmsaSync(sevFd), () => vm.launchUpdateVmsa(sevFd)],
        ['LAUNCH_MEASURE', () => vm.launchMeasureSync(sevFd), () => vm.launchMeasure(sevFd)],
        ['LAUNCH_FINISH', () => vm.launchFinishSync(sevFd), () => vm.launchFinish(sevFd)],
        ['GUEST_STATUS', () => vm.guestStatusSync(sevFd), () => vm.guestStatus(sevFd)],
        ['DBG_DECRYPT', () => vm.dbgDecryptSync(sevFd, memory, 0, 16), () => vm.dbgDecrypt(sevFd, memory, 0, 16)],
        ['DBG_ENCRYPT', () => vm.dbgEncryptSync(sevFd, memory, 0, Buffer.alloc(16)), () => vm.dbgEncrypt(sevFd, memory, 0, Buffer.alloc(16))],
        ['GET_ATTESTATION_REPORT', () => vm.getAttestationReportSync(sevFd, Buffer.alloc(16)), () => vm.getAttestationReport(sevFd, Buffer.alloc(16))],
        [
          'LAUNCH_SECRET',
          () => vm.launchSecretSync(sevFd, { header: Buffer.alloc(52), transport: Buffer.alloc(32), memory, guestOffset: 0x800 }),
          () => vm.launchSecret(sevFd, { header: Buffer.alloc(52), transport: Buffer.alloc(32), memory, guestOffset: 0x800 }),
        ],
      ];
      for (const [command, sync, async] of ops) {
        assert.throws(sync, isKernelError(command));
        await assert.rejects(async, isKernelError(command));
      }
      if (!emulated) {
        // Not SEV-capable here: the INIT commands fail the same way.
        assert.throws(() => vm.sevInitSync(sevFd), isKernelError('KVM_SEV_INIT'));
        await assert.rejects(() => vm.sevEsInit(sevFd), isKernelError('KVM_SEV_ES_INIT'));
        await assert.rejects(() => vm.sevInit2(sevFd), isKernelError('KVM_SEV_INIT2'));
      }
    });

    it('the batch form stops at the first failing range and says how many completed', async () => {
      const ranges = [{ offset: 0, length: 0x1000 }, { offset: 0x1000, length: 0x1000 }];
      await assert.rejects(
        () => vm.launchUpdateDataBatch(sevFd, memory, ranges),
        (e: SevError & { completed?: number }) => isKernelError('LAUNCH_UPDATE_DATA')(e) && e.completed === 0 && /0 completed/.test(e.message),
      );
      assert.throws(() => vm.launchUpdateDataBatchSync(sevFd, memory, ranges), (e: SevError & { completed?: number }) => e.completed === 0);
      const ac = new AbortController();
      ac.abort();
      assert.deepEqual(await vm.launchUpdateDataBatch(sevFd, memory, ranges, { signal: ac.signal }), { completed: 0, cancelled: true });
    });

    it('rejects bad SEV input before any ioctl', async () => {
      const bad: [() => unknown, RegExp][] = [
        [() => vm.launchUpdateDataSync(sevFd, memory, 8, 0x1000), /multiples of 16/],
        [() => vm.launchUpdateDataSync(sevFd, memory, 0, 24), /multiples of 16/],
        [() => vm.launchUpdateDataSync(sevFd, memory, 0xff00, 0x200), /outside guest memory/],
        [() => vm.launchUpdateDataSync(sevFd, memory, 0, 0), /length must be in/],
        [() => vm.launchUpdateDataSync(sevFd, Buffer.alloc(16) as never, 0, 16), /memory must be a GuestMemory/],
        [() => vm.launchUpdateDataBatchSync(sevFd, memory, []), /non-empty array/],
        [() => vm.launchUpdateDataBatchSync(sevFd, memory, [{ offset: 0, length: 16 }, { offset: 0x10000, length: 16 }]), /outside guest memory .*\(range 1\)/],
        [() => vm.launchUpdateDataSync(-1, memory, 0, 16), /sev fd must be in/],
        [() => vm.launchUpdateDataSync('3' as never, memory, 0, 16), /expected an open \/dev\/sev fd/],
        [() => vm.launchUpdateDataSync({ fd: 3, closed: true }, memory, 0, 16), /SEV device is closed/],
        [() => vm.launchStartSync(sevFd, { policy: 2 ** 32 }), /policy must be in/],
        [() => vm.launchStartSync(sevFd, { policy: 0, session: 'abc' as never }), /session must be a Buffer/],
        [() => vm.getAttestationReportSync(sevFd, Buffer.alloc(8)), /mnonce must be 16 bytes/],
        [() => vm.launchSecretSync(sevFd, { header: Buffer.alloc(52), transport: Buffer.alloc(32), memory, guestOffset: 0xff0 }), /crosses a page/],
        [() => vm.sevInit2Sync(sevFd, { ghcbVersion: 0x10000 }), /ghcbVersion must be in/],
        [() => vm.dbgDecryptSync(sevFd, memory, 0xfff0, 0x20), /outside guest memory/],
        [() => vm.unregisterEncRegionSync(memory, 0, 0x1000), /is not registered/],
      ];
      for (const [f, msg] of bad) assert.throws(f, (e: Error) => (e instanceof SevArgumentError || e instanceof SevClosedError) && msg.test(e.message), msg.source);
      await assert.rejects(() => vm.launchUpdateData(sevFd, memory, 8, 16), SevArgumentError);
      vm.close();
      await assert.rejects(() => vm.launchMeasure(sevFd), SevClosedError);
      assert.throws(() => vm.guestStatusSync(sevFd), SevClosedError);
    });

    it('registers and unregisters an encrypted region, or reports the kernel errno', async () => {
      try {
        await vm.registerEncRegion(memory, 0, 0x4000);
      } catch (e) {
        assert.ok(e instanceof SevError && !(e instanceof SevArgumentError));
        if (!emulated) assert.equal(e.errno, ENOTTY);
        return;
      }
      vm.unregisterEncRegionSync(memory, 0, 0x4000);
    });
  });

  describe('native objects never crash on wrong types', () => {
    it('throws TypeError / RangeError from C++', () => {
      const n = native as unknown as Record<string, new (...a: unknown[]) => Record<string, (...a: unknown[]) => unknown>>;
      assert.throws(() => new n.Vm(), TypeError);
      assert.throws(() => new n.Vcpu({}), TypeError);
      assert.throws(() => new n.GuestMemory(4095), RangeError);
      assert.throws(() => new n.GuestMemory('x'), TypeError);
      const g = realModeGuest(OUT_42);
      try {
        const nvm = (g.vm as unknown as { nv: Record<string, (...a: unknown[]) => unknown> }).nv;
        const nvcpu = (g.vcpu as unknown as { nv: Record<string, (...a: unknown[]) => unknown> }).nv;
        const nmem = g.memory.native as unknown as object;
        // A Vm posing as GuestMemory (type tags, not prototypes, decide).
        const fake = Object.create(Object.getPrototypeOf(nmem));
        assert.throws(() => nvm.setUserMemoryRegion(1, 0, 0x100000, fake, 0, 0x1000), TypeError);
        assert.throws(() => nvm.setUserMemoryRegion(1, 0, 0x100000, nvm, 0, 0x1000), TypeError);
        assert.throws(() => nvm.setUserMemoryRegion(1, 0, 0x100000, nmem, 0x8000, 0x10000), RangeError);
        assert.throws(() => nvm.launchUpdateData(0, nmem, 0xfff0, 0x20, false), RangeError);
        assert.throws(() => nvm.launchUpdateDataBatch(0, nmem, [0, 16], null, false), TypeError);
        assert.throws(() => nvm.launchUpdateDataBatch(0, nmem, new Float64Array([0.5, 16]), null, false), RangeError);
        assert.throws(() => nvm.getAttestationReport(0, Buffer.alloc(3), null, false), RangeError);
        // The batch job reads its cancel flag from shared memory before each range.
        const control = new Int32Array(new SharedArrayBuffer(8));
        control[0] = 1;
        assert.deepEqual(nvm.launchUpdateDataBatch(0, nmem, new Float64Array([0, 16, 16, 16]), control, false), {
          errno: 0,
          fwError: 0,
          completed: 0,
          cancelled: true,
        });
        assert.throws(() => nvcpu.setRegs({}), TypeError);
        assert.throws(() => nvcpu.setSregs(null), TypeError);
        assert.throws(() => nvcpu.setIoData(Buffer.alloc(1)), /not an IO in exit/);
        assert.throws(() => (g.memory.native as unknown as Record<string, (...a: unknown[]) => unknown>).readFile(0, 0, 0x10000, 1, false), RangeError);
        // Closed native objects report EBADF instead of using a stale fd.
        g.vm.close();
        assert.equal((nvm.guestStatus(0, false) as { errno: number }).errno, EBADF);
        assert.equal((nvcpu.run(false) as { errno: number }).errno, EBADF);
      } finally {
        g.close();
      }
    });
  });
});
