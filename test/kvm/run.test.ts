// Real guests on the real /dev/kvm: hand-assembled real-mode and long-mode code, I/O and MMIO
// exits (both directions), HLT, registers, sync and async runs.
import * as assert from 'node:assert/strict';

import { SevArgumentError, SevClosedError } from '../../lib/errors';
import {
  CODE_ADDR,
  ECHO_STRING,
  ECHO_STRING_ADDR,
  IN_ADD_OUT,
  LM_DATA,
  LONG_MODE_CODE,
  longModeGuest,
  MMIO_WRITE_READ,
  OUT_42,
  realMode,
  realModeGuest,
  requireKvm,
  SPIN_FOREVER,
  openFdCount,
  WRITE_MEMORY,
} from './guest';

describe('kvm: running guests (/dev/kvm)', function () {
  before(function () {
    requireKvm(this);
  });

  it('runs mov al,0x42; out 0x10,al; hlt — IO exit with the data, then HLT (sync)', () => {
    const g = realModeGuest(OUT_42);
    try {
      const e1 = g.vcpu.runSync();
      assert.equal(e1.reason, 'IO');
      if (e1.reason !== 'IO') return;
      assert.equal(e1.direction, 'out');
      assert.equal(e1.port, 0x10);
      assert.equal(e1.size, 1);
      assert.equal(e1.count, 1);
      assert.deepEqual([...e1.data], [0x42]);
      assert.equal(g.vcpu.runSync().reason, 'HLT');
      assert.equal(g.vcpu.getRegs().rip, BigInt(CODE_ADDR + OUT_42.length));
      assert.equal(g.vcpu.getRegs().rax & 0xffn, 0x42n);
    } finally {
      g.close();
    }
  });

  it('runs the same guest with the Promise API on the thread pool', async () => {
    const g = realModeGuest(OUT_42);
    try {
      const p = g.vcpu.run();
      assert.equal(g.vcpu.running, true);
      assert.throws(() => g.vcpu.getRegs(), SevArgumentError, 'registers are refused while running');
      const e1 = await p;
      assert.equal(g.vcpu.running, false);
      assert.ok(e1.reason === 'IO' && e1.data[0] === 0x42);
      assert.equal((await g.vcpu.run()).reason, 'HLT');
    } finally {
      g.close();
    }
  });

  it('a guest loop reads memory JS wrote through the ArrayBuffer (zero copy, JS → guest)', () => {
    const g = realModeGuest(ECHO_STRING);
    try {
      const echo = (s: string): string => {
        g.memory.view().write(`${s}\0`, ECHO_STRING_ADDR, 'latin1');
        g.vcpu.setRegs({ rip: BigInt(CODE_ADDR) });
        let out = '';
        for (;;) {
          const e = g.vcpu.runSync();
          if (e.reason === 'HLT') return out;
          assert.ok(e.reason === 'IO' && e.port === 0x11, `unexpected exit ${e.reason}`);
          if (e.data[0] !== 0) out += String.fromCharCode(e.data[0]);
        }
      };
      assert.equal(echo('Hello'), 'Hello');
      // Change the memory from JS between runs: the guest sees the new bytes, no copy involved.
      assert.equal(echo('node-sev!'), 'node-sev!');
    } finally {
      g.close();
    }
  });

  it('guest writes to memory are visible in the ArrayBuffer (guest → JS)', () => {
    const g = realModeGuest(WRITE_MEMORY);
    try {
      const view = new DataView(g.memory.buffer);
      assert.equal(view.getUint8(0x3000), 0);
      assert.equal(g.vcpu.runSync().reason, 'HLT');
      assert.equal(view.getUint8(0x3000), 0x99);
      assert.equal(view.getUint16(0x3002, true), 0xbeef);
    } finally {
      g.close();
    }
  });

  it('completes an IO in exit with data for the next run', async () => {
    const g = realModeGuest(IN_ADD_OUT);
    try {
      const e1 = await g.vcpu.run();
      assert.ok(e1.reason === 'IO' && e1.direction === 'in' && e1.port === 0x20 && e1.size === 1, JSON.stringify(e1, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
      assert.throws(() => g.vcpu.completeIoIn(Buffer.from([1, 2])), SevArgumentError);
      g.vcpu.completeIoIn(0x41);
      const e2 = await g.vcpu.run();
      assert.ok(e2.reason === 'IO' && e2.direction === 'out' && e2.port === 0x21);
      if (e2.reason === 'IO') assert.equal(e2.data[0], 0x42);
      assert.throws(() => g.vcpu.completeIoIn(1), /not an IO in/);
      assert.equal((await g.vcpu.run()).reason, 'HLT');
    } finally {
      g.close();
    }
  });

  it('reports MMIO writes and completes MMIO reads outside memslots', () => {
    const g = realModeGuest(MMIO_WRITE_READ);
    try {
      const w = g.vcpu.runSync();
      assert.equal(w.reason, 'MMIO');
      if (w.reason !== 'MMIO') return;
      assert.equal(w.address, 0x10000n);
      assert.equal(w.isWrite, true);
      assert.equal(w.length, 1);
      assert.deepEqual([...w.data], [0x77]);
      assert.throws(() => g.vcpu.completeMmioRead(1), /not an MMIO read/);
      const r = g.vcpu.runSync();
      assert.ok(r.reason === 'MMIO' && !r.isWrite && r.address === 0x10004n && r.length === 1);
      g.vcpu.completeMmioRead(0x5a);
      const o = g.vcpu.runSync();
      assert.ok(o.reason === 'IO' && o.port === 0x12 && o.data[0] === 0x5a);
      assert.equal(g.vcpu.runSync().reason, 'HLT');
    } finally {
      g.close();
    }
  });

  it('reads and writes registers as bigints, partial updates merged', () => {
    const g = realModeGuest(OUT_42);
    try {
      g.vcpu.setRegs({ rbx: 0x1234_5678_9abc_def0n, r15: 42 });
      const r = g.vcpu.getRegs();
      assert.equal(r.rbx, 0x1234_5678_9abc_def0n);
      assert.equal(r.r15, 42n);
      assert.equal(r.rip, BigInt(CODE_ADDR));
      const s = g.vcpu.getSregs();
      assert.equal(s.cs.base, 0n);
      assert.equal(typeof s.cs.limit, 'number');
      assert.equal(s.interruptBitmap.length, 4);
      g.vcpu.setSregs({ es: { base: 0x20000n, selector: 0x2000 } });
      assert.equal(g.vcpu.getSregs().es.selector, 0x2000);
      assert.equal(g.vcpu.getSregs().es.base, 0x20000n);
    } finally {
      g.close();
    }
  });

  it('runs a long-mode guest with 2 MiB identity paging', () => {
    const g = longModeGuest(LONG_MODE_CODE);
    try {
      const e = g.vcpu.runSync();
      assert.equal(e.reason, 'IO', JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
      if (e.reason !== 'IO') return;
      assert.equal(e.port, 0x3f8);
      assert.equal(e.size, 4);
      assert.equal(e.data.readUInt32LE(0), 0x11223344);
      assert.equal(g.memory.view().readBigUInt64LE(LM_DATA), 0x1122334455667788n);
      assert.equal(g.vcpu.runSync().reason, 'HLT');
      const s = g.vcpu.getSregs();
      assert.equal(s.efer & 0x400n, 0x400n, 'EFER.LMA');
      assert.equal(s.cs.l, 1);
    } finally {
      g.close();
    }
  });

  it('two vCPUs of one VM run concurrently on the thread pool', async () => {
    const g = realModeGuest(OUT_42);
    try {
      const v1 = g.vm.createVcpu(1);
      realMode(v1);
      const [a, b] = await Promise.all([g.vcpu.run(), v1.run()]);
      assert.ok(a.reason === 'IO' && b.reason === 'IO');
      assert.deepEqual(g.vm.vcpus.map((v) => v.id), [0, 1]);
      assert.throws(() => g.vm.createVcpu(1), SevArgumentError);
    } finally {
      g.close();
    }
  });

  it('kick() interrupts an endless guest with INTR; run() continues it', async () => {
    const g = realModeGuest(SPIN_FOREVER);
    try {
      const p = g.vcpu.run();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(g.vcpu.running, true);
      g.vcpu.kick();
      const e = await p;
      assert.equal(e.reason, 'INTR');
      assert.equal(g.vcpu.getRegs().rip, BigInt(CODE_ADDR), 'still on the jmp $');
      // A kick with no run in progress makes the next run return at once.
      g.vcpu.kick();
      assert.equal((await g.vcpu.run()).reason, 'INTR');
      const again = g.vcpu.run();
      await new Promise((r) => setTimeout(r, 10));
      g.vcpu.kick();
      assert.equal((await again).reason, 'INTR');
    } finally {
      g.close();
    }
  });

  it('kicks land between instructions: a loop with stack accesses keeps its stack balanced across 1500 kicks', async () => {
    // l: add rsp, 0x40; mov rbx, [rsp]; mov [rsp], rbx; sub rsp, 0x40; inc rax; jmp l
    const g = longModeGuest([0x48, 0x83, 0xc4, 0x40, 0x48, 0x8b, 0x1c, 0x24, 0x48, 0x89, 0x1c, 0x24, 0x48, 0x83, 0xec, 0x40,
      0x48, 0xff, 0xc0, 0xeb, 0xeb]);
    try {
      g.vcpu.setRegs({ rsp: 0x8000n, rax: 0n });
      for (let i = 0; i < 1500; i++) {
        const run = g.vcpu.run();
        setImmediate(() => g.vcpu.kick());
        assert.equal((await run).reason, 'INTR');
        const r = g.vcpu.getRegs();
        // Between instructions, RSP is 0x8000 except right after the add (RIP at the load or the store).
        const inside = r.rip === BigInt(CODE_ADDR + 4) || r.rip === BigInt(CODE_ADDR + 8) || r.rip === BigInt(CODE_ADDR + 12);
        assert.equal(r.rsp, inside ? 0x8040n : 0x8000n, `kick ${i}: rip 0x${r.rip.toString(16)}`);
      }
      assert.ok(g.vcpu.getRegs().rax > 0n, 'the loop ran');
    } finally {
      g.close();
    }
  });

  it('closing the Vm of an endlessly running guest kicks it out and releases everything', async () => {
    const fds = openFdCount();
    const g = realModeGuest(SPIN_FOREVER);
    const p = g.vcpu.run();
    await new Promise((r) => setTimeout(r, 10));
    g.close();
    assert.equal((await p).reason, 'INTR');
    await new Promise((r) => setImmediate(r));
    assert.equal(openFdCount(), fds);
  });

  it('refuses a second run of the same vCPU while one is in flight, and use after close', async () => {
    const g = realModeGuest(OUT_42);
    try {
      const p = g.vcpu.run();
      await assert.rejects(() => g.vcpu.run(), SevArgumentError);
      await p;
      g.vcpu.close();
      assert.throws(() => g.vcpu.runSync(), SevClosedError);
      await assert.rejects(() => g.vcpu.run(), SevClosedError);
      assert.equal(g.vm.vcpus.length, 0);
    } finally {
      g.close();
    }
  });
});
