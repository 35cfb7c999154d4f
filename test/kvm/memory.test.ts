// Guest memory lifetime: zero-copy views, GC while a VM uses the memory, release(), readFile,
// and no leaks of fds or mappings across many VMs (checked in /proc/self/fd and /proc/self/maps).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SevClosedError } from '../../lib/errors';
import { GuestMemory, Kvm, kvmNativeStats, type Vcpu, type Vm } from '../../lib/kvm';
import {
  addressSpaceReused,
  assertUnmapped,
  CODE_ADDR,
  ECHO_STRING,
  ECHO_STRING_ADDR,
  KVM_DEVICE,
  mapped,
  OUT_42,
  openFdCount,
  realMode,
  realModeGuest,
  requireKvm,
  settleGc,
  SPIN_FOREVER,
  WAIT_FOR_FLAG,
} from './guest';

/** Runs the echo guest from 0x1000 and returns what it printed. */
function echo(vcpu: Vcpu): string {
  vcpu.setRegs({ rip: BigInt(CODE_ADDR) });
  let out = '';
  for (;;) {
    const e = vcpu.runSync();
    if (e.reason === 'HLT') return out;
    assert.ok(e.reason === 'IO', `unexpected exit ${e.reason}`);
    if (e.data[0] !== 0) out += String.fromCharCode(e.data[0]);
  }
}

/** Open fds of this process whose target names a KVM object kind (anon_inode:kvm-vcpu:0 ...). */
function fdsOfKind(kind: string): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).includes(kind);
    } catch {
      return false;
    }
  }).length;
}

describe('kvm: guest memory lifetime (/dev/kvm)', function () {
  let kvm: Kvm;

  before(function () {
    requireKvm(this);
    kvm = Kvm.open(KVM_DEVICE);
  });
  after(() => kvm?.close());

  it('buffer is the same external ArrayBuffer every time, over the mapping itself', () => {
    const m = GuestMemory.create(0x4000);
    try {
      assert.equal(m.buffer, m.buffer);
      assert.equal(m.buffer.byteLength, 0x4000);
      assert.ok(mapped(m.address, m.size));
      m.bytes(0x100, 4).set([1, 2, 3, 4]);
      assert.deepEqual([...m.view(0x100, 4)], [1, 2, 3, 4]);
      assert.deepEqual([...new Uint8Array(m.buffer, 0x100, 4)], [1, 2, 3, 4]);
    } finally {
      m.release();
    }
  });

  it('release() detaches the ArrayBuffer and unmaps; later use is a SevClosedError', async () => {
    const before = kvmNativeStats().mappings;
    const m = GuestMemory.create(0x40000);
    const view = m.bytes();
    const addr = m.address;
    assert.ok(mapped(addr, m.size));
    m.release();
    m.release(); // idempotent
    assert.equal(view.length, 0, 'views of a released memory are empty');
    assert.equal(m.released, true);
    assert.throws(() => m.buffer, SevClosedError);
    assert.throws(() => m.bytes(), SevClosedError);
    await assert.rejects(() => m.readFile(0), SevClosedError);
    await settleGc(); // the ArrayBuffer finalizer drops the last reference
    assert.equal(kvmNativeStats().mappings, before);
    assertUnmapped(addr, m.size);
  });

  it('a VM keeps its memory mapped after every JS reference to it is dropped and GC runs', async () => {
    const before = kvmNativeStats().mappings;
    let vm: Vm | undefined = kvm.createVm();
    let addr = 0n;
    const vcpu = ((): Vcpu => {
      // Every JS handle to the memory lives only in this scope (the Vm's region list aside, which
      // we also drop by removing nothing — the native Vm's reference is what matters).
      const memory = GuestMemory.create(0x10000);
      addr = memory.address;
      memory.bytes().set(ECHO_STRING, CODE_ADDR);
      memory.view().write('still here\0', ECHO_STRING_ADDR, 'latin1');
      vm!.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
      // Detach the buffer and drop our hold: only the VM's memslot keeps the pages now.
      memory.release();
      const v = vm!.createVcpu(0);
      realMode(v);
      return v;
    })();
    await settleGc();
    assert.ok(mapped(addr, 0x10000), 'the memslot keeps the mapping');
    assert.equal(kvmNativeStats().mappings, before + 1);
    assert.equal(echo(vcpu), 'still here');
    // Closing the Vm closes its vCPUs; then nothing holds the memory any more.
    vm.close();
    vm = undefined;
    assert.equal(vcpu.closed, true);
    assert.throws(() => vcpu.runSync(), SevClosedError);
    await settleGc();
    assert.equal(kvmNativeStats().mappings, before);
    assertUnmapped(addr, 0x10000);
  });

  it('a run in flight keeps the VM memory after the Vm is closed and the memory released', async () => {
    const before = kvmNativeStats().mappings;
    // The guest spins until a flag at 0x10000 (a second memslot, kept) is set, then OUTs it.
    const g = realModeGuest(WAIT_FOR_FLAG);
    const flag = GuestMemory.create(0x1000);
    g.vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x10000, memory: flag });
    const addr = g.memory.address;
    const p = g.vcpu.run();
    // Close at the native level (the TS close() would kick the guest out): the in-flight run must
    // keep the vCPU fd, the VM's memslots and so the mapping alive on its own.
    const nativeOf = (o: object) => (o as { nv: { close(): void } }).nv;
    nativeOf(g.vcpu).close();
    nativeOf(g.vm).close();
    g.memory.release();
    await settleGc();
    assert.ok(mapped(addr, g.memory.size), 'the running vCPU job holds the mapping');
    flag.bytes()[0] = 0x10;
    const e = await p;
    assert.ok(e.reason === 'IO' && e.port === 0x10 && e.data[0] === 0x10, 'the guest ran to completion on its memory');
    g.close();
    flag.release();
    await settleGc();
    assert.equal(kvmNativeStats().mappings, before);
    assertUnmapped(addr, g.memory.size);
  });

  it('removing a memslot drops the VM’s reference; the memory stays while JS holds it', async () => {
    const vm = kvm.createVm();
    const memory = GuestMemory.create(0x10000);
    try {
      vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 0x100000, memory });
      assert.deepEqual(vm.memoryRegions.map((r) => r.slot), [3]);
      vm.removeUserMemoryRegion(3);
      assert.deepEqual(vm.memoryRegions, []);
      assert.throws(() => vm.removeUserMemoryRegion(3), SevArgumentError);
      await settleGc();
      memory.bytes()[0] = 1; // still ours
    } finally {
      vm.close();
      memory.release();
    }
  });

  it('readFile streams a file into guest memory on a worker thread (and sync), no copy', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-sev-kvm-'));
    const file = path.join(dir, 'image.bin');
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    fs.writeFileSync(file, data);
    const m = GuestMemory.create(0x80000);
    try {
      assert.equal(await m.readFile(file, { offset: 0x1000 }), data.length);
      assert.ok(m.view(0x1000, data.length).equals(data));
      const fd = fs.openSync(file, 'r');
      try {
        assert.equal(m.readFileSync(fd, { offset: 0x60000, fileOffset: 1000, length: 4096 }), 4096);
        assert.ok(m.view(0x60000, 4096).equals(data.subarray(1000, 5096)));
        // Past the end of the file: a short read, reported.
        assert.equal(await m.readFile(fd, { offset: 0, fileOffset: data.length - 10, length: 100 }), 10);
      } finally {
        fs.closeSync(fd);
      }
      assert.throws(() => m.readFileSync(file, { offset: 0x7f000 }), SevArgumentError, 'does not fit');
      await assert.rejects(() => m.readFile(path.join(dir, 'missing')), { code: 'ENOENT' });
      await assert.rejects(() => m.readFile(-1), SevArgumentError);
    } finally {
      m.release();
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('creating and closing many VMs leaks no fds and no mappings', async () => {
    await settleGc();
    const fds = openFdCount();
    const maps = kvmNativeStats();
    const addresses: bigint[] = [];
    for (let i = 0; i < 40; i++) {
      const g = realModeGuest(OUT_42, 0x10000);
      addresses.push(g.memory.address);
      const e = i % 2 ? await g.vcpu.run() : g.vcpu.runSync();
      assert.equal(e.reason, 'IO');
      g.vm.createVcpu(1);
      if (i % 4 === 0) await g.vm.registerEncRegion(g.memory).catch(() => undefined); // ENOTTY without SEV
      g.close();
    }
    await settleGc();
    assert.equal(openFdCount(), fds);
    assert.deepEqual(kvmNativeStats(), maps);
    const stillMapped = addressSpaceReused ? [] : addresses.filter((a) => mapped(a, 0x10000));
    assert.deepEqual(stillMapped, [], 'every guest mapping is gone from /proc/self/maps');
  });

  it('closing a VM while a run is in flight kicks it and defers the fd close until it returns', async () => {
    await settleGc();
    const fds = openFdCount();
    const g = realModeGuest(SPIN_FOREVER);
    const p = g.vcpu.run();
    g.vm.close(); // closes the vCPU too
    g.memory.release();
    assert.equal(g.vcpu.closed, true);
    assert.equal(g.vm.closed, true);
    assert.throws(() => g.vm.createVcpu(2), SevClosedError);
    // The VM fd is gone; the running vCPU's fd stays open until its run returns. (Counted by
    // kind rather than in total: an emulator preloaded under `sev-emu run` keeps fds of its own.)
    assert.equal(fdsOfKind('kvm-vm'), 0, 'the VM fd is closed');
    assert.ok(fdsOfKind('kvm-vcpu') >= 1, 'the running vCPU keeps its fd');
    const e = await p; // kicked out of the guest by close()
    assert.equal(e.reason, 'INTR');
    g.kvm.close();
    await settleGc();
    assert.equal(fdsOfKind('kvm-vcpu'), 0, 'the vCPU fd is closed once its run returned');
    assert.equal(openFdCount(), fds);
  });
});
