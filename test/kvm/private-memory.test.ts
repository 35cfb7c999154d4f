// KVM's private-memory primitives on a software-protected VM (KVM_X86_SW_PROTECTED_VM, Linux 7.2):
// guest_memfd, KVM_SET_USER_MEMORY_REGION2, KVM_SET_MEMORY_ATTRIBUTES and KVM_EXIT_MEMORY_FAULT,
// through the typed API; bad input is refused before the ioctl, nothing leaks.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';

import { SevArgumentError, SevClosedError } from '../../lib/errors';
import {
  GUEST_MEMFD_FLAG,
  GuestMemfd,
  GuestMemory,
  Kvm,
  KVM_CAP,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  kvmNativeStats,
  VM_TYPE,
  type Vm,
} from '../../lib/kvm';
import { CODE_ADDR, KVM_DEVICE, openFdCount, realMode, requireKvm } from './guest';

const PAGE = 4096;

/**
 * Real mode at 0x1000, DS = 0: mov byte [0x3000], 0x99; mov al, [0x3000]; out 0x10, al;
 * mov byte [0x2000], 0x55; mov ax, 0x1000; mov ds, ax; mov byte [0], 0x77 (gpa 0x10000); hlt
 */
const GUEST = [
  0xc6, 0x06, 0x00, 0x30, 0x99, 0xa0, 0x00, 0x30, 0xe6, 0x10, 0xc6, 0x06, 0x00, 0x20, 0x55, 0xb8, 0x00, 0x10, 0x8e, 0xd8,
  0xc6, 0x06, 0x00, 0x00, 0x77, 0xf4,
];

/** memfd mappings of guest_memfds (the emulator's, or none on a real KVM) in this process. */
function gmemMappings(): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('kvm-gmem')).length;
}

describe('kvm: private memory (guest_memfd, memory attributes, memory faults)', function () {
  let kvm: Kvm;
  let swProtected = false;

  before(function () {
    requireKvm(this);
    kvm = Kvm.open(KVM_DEVICE);
    swProtected = kvm.supportedVmTypes().includes(VM_TYPE.SW_PROTECTED);
    if (!swProtected) {
      console.log('      skipping: this KVM offers no KVM_X86_SW_PROTECTED_VM (CONFIG_KVM_SW_PROTECTED_VM)');
      this.skip();
    }
  });
  after(() => kvm?.close());

  it('capabilities: guest_memfd and REGION2 everywhere, PRIVATE attributes on a sw-protected VM only', () => {
    assert.equal(kvm.checkExtension(KVM_CAP.GUEST_MEMFD), 1);
    assert.equal(kvm.checkExtension(KVM_CAP.USER_MEMORY2), 1);
    assert.equal(kvm.checkExtension(KVM_CAP.MEMORY_ATTRIBUTES), KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const sw = kvm.createVm({ type: 'sw-protected' });
    const plain = kvm.createVm();
    try {
      assert.equal(sw.typeName, 'sw-protected');
      assert.equal(sw.checkExtension(KVM_CAP.MEMORY_ATTRIBUTES), KVM_MEMORY_ATTRIBUTE_PRIVATE);
      assert.equal(sw.checkExtension(KVM_CAP.GUEST_MEMFD_FLAGS), GUEST_MEMFD_FLAG.MMAP);
      assert.equal(plain.checkExtension(KVM_CAP.MEMORY_ATTRIBUTES), 0);
      assert.equal(plain.checkExtension(KVM_CAP.GUEST_MEMFD_FLAGS), GUEST_MEMFD_FLAG.MMAP | GUEST_MEMFD_FLAG.INIT_SHARED);
    } finally {
      sw.close();
      plain.close();
    }
  });

  describe('a guest on private and shared memory', () => {
    let vm: Vm;
    let low: GuestMemory;
    let high: GuestMemory;
    let gmem: GuestMemfd;

    before(() => {
      vm = kvm.createVm({ type: 'sw-protected' });
      low = GuestMemory.create(0x10000);
      high = GuestMemory.create(0x10000);
      gmem = vm.createGuestMemfd({ size: 0x10000 });
      vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: low, guestMemfd: gmem, guestMemfdOffset: 0 });
      vm.setUserMemoryRegion2({ slot: 1, guestPhysAddr: 0x10000, memory: high });
      low.bytes().set(GUEST, CODE_ADDR);
    });
    after(() => {
      vm?.close();
      gmem?.close();
      low?.release();
      high?.release();
    });

    it('writes a private gfn (guest_memfd) and a shared one, faults on a private gfn without guest_memfd, resumes once shared', async () => {
      vm.setMemoryAttributes({ address: 0x3000, size: PAGE, private: true });
      vm.setMemoryAttributes({ address: 0x10000, size: PAGE, private: true });
      const vcpu = vm.createVcpu(0);
      realMode(vcpu);

      const out = await vcpu.run();
      assert.equal(out.reason, 'IO');
      assert.equal(out.reason === 'IO' && out.data[0], 0x99, 'the guest reads back its private write');
      assert.equal(low.bytes()[0x3000], 0, 'the private write is in guest_memfd, not in the VMM mapping');

      const fault = await vcpu.run();
      assert.equal(fault.reason, 'MEMORY_FAULT');
      if (fault.reason !== 'MEMORY_FAULT') return;
      assert.equal(fault.private, true);
      assert.equal(fault.gpa, 0x10000n);
      assert.equal(fault.size, BigInt(PAGE));
      assert.equal(low.bytes()[0x2000], 0x55, 'the shared write before the fault went to the VMM mapping');
      assert.equal(high.bytes()[0], 0, 'the faulting write did not happen');

      vm.setMemoryAttributes({ address: 0x10000, size: PAGE, private: false });
      const done = await vcpu.run();
      assert.equal(done.reason, 'HLT');
      assert.equal(high.bytes()[0], 0x77, 'after the conversion the write completed in shared memory');

      // Converting 0x3000 to shared: the same code now writes the VMM's mapping.
      vm.setMemoryAttributes({ address: 0x3000, size: PAGE, private: false });
      realMode(vcpu);
      const again = vcpu.runSync();
      assert.equal(again.reason === 'IO' && again.data[0], 0x99);
      assert.equal(low.bytes()[0x3000], 0x99, 'a shared gfn is the VMM mapping');
      // … and back to private: guest_memfd still holds what the guest wrote there.
      low.bytes()[0x3000] = 0x11;
      vm.setMemoryAttributes({ address: 0x3000, size: PAGE, private: true });
      realMode(vcpu);
      const back = vcpu.runSync();
      assert.equal(back.reason === 'IO' && back.data[0], 0x99);
      assert.equal(low.bytes()[0x3000], 0x11);
      vcpu.close();
    });

    it('a bound GuestMemfd closed by its owner stays open for its memslot', () => {
      const vcpu = vm.createVcpu(1);
      const fdsBefore = openFdCount();
      gmem.close();
      assert.equal(gmem.closed, true);
      assert.equal(openFdCount(), fdsBefore, 'the Vm still holds the guest_memfd fd');
      realMode(vcpu);
      const e = vcpu.runSync();
      assert.equal(e.reason === 'IO' && e.data[0], 0x99, 'private memory still there');
      vcpu.close();
      assert.throws(() => gmem.punchHole(0, PAGE), SevClosedError);
    });
  });

  it('refuses bad input before the ioctl', () => {
    const vm = kvm.createVm({ type: 'sw-protected' });
    const other = kvm.createVm({ type: 'sw-protected' });
    const plain = kvm.createVm();
    const mem = GuestMemory.create(0x20000);
    try {
      assert.throws(() => vm.createGuestMemfd({ size: 0x1001 }), SevArgumentError);
      assert.throws(() => vm.createGuestMemfd({ size: 0 }), SevArgumentError);
      assert.throws(() => vm.createGuestMemfd({ size: PAGE, mmap: true, initShared: true }), /not supported by this sw-protected VM/);
      const gmem = vm.createGuestMemfd({ size: 0x10000 });
      const foreign = other.createGuestMemfd({ size: 0x10000 });
      assert.throws(() => vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x10000, guestMemfd: foreign }), /another VM/);
      assert.throws(
        () => vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x10000, guestMemfd: gmem, guestMemfdOffset: 0x800 }),
        SevArgumentError,
      );
      assert.throws(
        () => vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x10000, guestMemfd: gmem, guestMemfdOffset: PAGE }),
        /outside the guest_memfd/,
      );
      assert.throws(() => vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x10000, guestMemfd: gmem, readonly: true }), /read-only/);
      assert.throws(
        () => vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory: mem, guestMemfd: gmem } as Parameters<Vm['setUserMemoryRegion']>[0]),
        /setUserMemoryRegion2/,
      );
      vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x8000, guestMemfd: gmem });
      assert.throws(
        () => vm.setUserMemoryRegion2({ slot: 1, guestPhysAddr: 0x100000, memory: mem, memoryOffset: 0x8000, size: 0x8000, guestMemfd: gmem, guestMemfdOffset: 0x4000 }),
        /bound to slot 0/,
      );
      assert.throws(() => vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0x200000, memory: mem, size: 0x8000, guestMemfd: gmem }), /remove it first/);
      vm.setUserMemoryRegion2({ slot: 1, guestPhysAddr: 0x100000, memory: mem, memoryOffset: 0x8000, size: 0x8000, guestMemfd: gmem, guestMemfdOffset: 0x8000 });
      vm.removeUserMemoryRegion(0);
      vm.setUserMemoryRegion2({ slot: 2, guestPhysAddr: 0x200000, memory: mem, size: 0x8000, guestMemfd: gmem });

      assert.throws(() => vm.setMemoryAttributes({ address: 0x800, size: PAGE, private: true }), /multiple of 0x1000/);
      assert.throws(() => vm.setMemoryAttributes({ address: 0, size: 0, private: true }), /size must be > 0/);
      assert.throws(() => vm.setMemoryAttributes({ address: (1n << 64n) - 4096n, size: 0x2000, private: true }), /wraps/);
      assert.throws(() => plain.setMemoryAttributes({ address: 0, size: PAGE, private: true }), /no private memory/);
      plain.setMemoryAttributes({ address: 0, size: PAGE, private: false });

      gmem.punchHole(0, 0x2000);
      gmem.allocate(0, 0x10000);
      assert.throws(() => gmem.punchHole(0x800, PAGE), SevArgumentError);
      assert.throws(() => gmem.punchHole(0, 0x20000), /outside the guest_memfd/);
      foreign.close();
      assert.throws(() => other.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, size: 0x10000, guestMemfd: foreign }), SevClosedError);
      gmem.close();
    } finally {
      vm.close();
      other.close();
      plain.close();
      mem.release();
    }
  });

  it('leaks no fd or mapping across many VMs with guest_memfds', () => {
    const fds = openFdCount();
    const maps = gmemMappings();
    const stats = kvmNativeStats();
    for (let i = 0; i < 40; i++) {
      const vm = kvm.createVm({ type: 'sw-protected' });
      const mem = GuestMemory.create(0x10000);
      const gmem = vm.createGuestMemfd({ size: 0x10000 });
      vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: mem, guestMemfd: gmem });
      vm.setMemoryAttributes({ address: 0, size: 0x10000, private: true });
      if (i % 2) gmem.close();
      vm.close();
      gmem.close();
      mem.release();
    }
    assert.equal(openFdCount(), fds);
    assert.equal(gmemMappings(), maps);
    assert.equal(kvmNativeStats().fds, stats.fds);
  });
});
