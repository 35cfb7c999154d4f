// The vCPU as KVM presents it, whichever KVM answers /dev/kvm (the host's or the emulator's
// software KVM): exceptions delivered through the guest's IDT, triple faults, failed entries,
// emulation failures, CPUID from KVM_SET_CPUID2, MSRs, hypercalls, string I/O, read-only and
// moved memslots. Expectations are the kernel's (Documentation/virt/kvm/api.rst, x86.c, svm.c).
import * as assert from 'node:assert/strict';

import { GuestMemory } from '../../lib/kvm';
import { CODE_ADDR, longModeGuest, realModeGuest, requireKvm } from './guest';

const show = (e: unknown) => JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

/** A real-mode guest with an IVT entry `vector` → `handler` code at 0x1100 (segment 0). */
function realModeWithHandler(code: number[], vector: number, handler: number[]) {
  const g = realModeGuest(code);
  const v = g.memory.view();
  v.writeUInt16LE(0x1100, vector * 4);
  v.writeUInt16LE(0, vector * 4 + 2);
  g.memory.bytes().set(handler, 0x1100);
  return g;
}

describe('kvm: the vCPU as KVM presents it', function () {
  before(function () {
    requireKvm(this);
  });

  it('#PF in long mode: delivered through the IDT with the error code, CR2 = the faulting address', () => {
    // mov al, [0x400123]; hlt — 0x400123 is beyond the one 2 MiB page mapped.
    const g = longModeGuest([0x8a, 0x04, 0x25, 0x23, 0x01, 0x40, 0x00, 0xf4]);
    try {
      // Handler at 0x1100: mov rax, cr2; mov [0x7000], rax; pop rax; mov [0x7008], rax; hlt
      g.memory.bytes().set([0x0f, 0x20, 0xd0, 0x48, 0x89, 0x04, 0x25, 0x00, 0x70, 0x00, 0x00, 0x58,
        0x48, 0x89, 0x04, 0x25, 0x08, 0x70, 0x00, 0x00, 0xf4], 0x1100);
      const gate = g.memory.view();
      // The gate's selector 0x08 names the 64-bit code segment of a GDT at 0x500.
      gate.writeBigUInt64LE(0x00af9b000000ffffn, 0x508);
      gate.writeBigUInt64LE(0x00cf93000000ffffn, 0x510);
      gate.writeUInt16LE(0x1100, 0x6000 + 14 * 16);
      gate.writeUInt16LE(0x08, 0x6000 + 14 * 16 + 2);
      gate.writeUInt16LE(0x8e00, 0x6000 + 14 * 16 + 4); // present 64-bit interrupt gate
      g.vcpu.setSregs({ idt: { base: 0x6000n, limit: 0xfff }, gdt: { base: 0x500n, limit: 0x17 } });
      const e = g.vcpu.runSync();
      assert.equal(e.reason, 'HLT', show(e));
      assert.equal(gate.readBigUInt64LE(0x7000), 0x400123n, 'CR2');
      assert.equal(gate.readBigUInt64LE(0x7008), 0n, 'error code: not present, read, supervisor');
      assert.equal(g.vcpu.getSregs().cr2, 0x400123n);
    } finally {
      g.close();
    }
  });

  it('#UD in real mode: through the IVT, the frame holds the faulting IP', () => {
    // ud2 at 0x1000; handler: mov al, 0x66; out 0x11, al; hlt
    const g = realModeWithHandler([0x0f, 0x0b], 6, [0xb0, 0x66, 0xe6, 0x11, 0xf4]);
    try {
      const e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.port === 0x11 && e.data[0] === 0x66, show(e));
      const sp = Number(g.vcpu.getRegs().rsp);
      assert.equal(sp, 0x8000 - 6);
      assert.equal(g.memory.view().readUInt16LE(sp), 0x1000, 'IP of the ud2');
      assert.equal(g.memory.view().readUInt16LE(sp + 2), 0, 'CS');
    } finally {
      g.close();
    }
  });

  it('a pending interrupt (SET_SREGS interrupt_bitmap) is delivered through the IVT once IF is set, after the STI shadow', () => {
    // cli; mov cx, 3; loop $; sti; nop; out 0x10, al; hlt — vector 0x20's handler: out 0x66, al; hlt
    const code = [0xfa, 0xb9, 0x03, 0x00, 0xe2, 0xfe, 0xfb, 0x90, 0xe6, 0x10, 0xf4];
    for (const [rflags, frameIp] of [[0x2n, 0x1008], [0x202n, 0x1000]] as const) {
      const g = realModeWithHandler(code, 0x20, [0xe6, 0x66, 0xf4]);
      try {
        g.vcpu.setRegs({ rflags });
        g.vcpu.setSregs({ interruptBitmap: [1n << 0x20n, 0n, 0n, 0n] });
        const e = g.vcpu.runSync();
        assert.ok(e.reason === 'IO' && e.port === 0x66, `rflags ${rflags}: ${show(e)}`);
        const frame = g.memory.view();
        assert.equal(frame.readUInt16LE(0x8000 - 6), frameIp, 'the interrupted IP');
        assert.equal(frame.readUInt16LE(0x8000 - 2) & 0x200, 0x200, 'IF was set when it was taken');
        assert.deepEqual(g.vcpu.getSregs().interruptBitmap, [0n, 0n, 0n, 0n], 'no longer pending');
      } finally {
        g.close();
      }
    }
  });

  it('a fault with no way to deliver it is a triple fault: KVM_EXIT_SHUTDOWN', () => {
    const g = longModeGuest([0x0f, 0x0b]); // ud2 with an empty IDT
    try {
      g.vcpu.setSregs({ idt: { base: 0n, limit: 0 } });
      assert.equal(g.vcpu.runSync().reason, 'SHUTDOWN');
    } finally {
      g.close();
    }
  });

  it('a kernel-mode load right after arithmetic is a kernel access (supervisor page, no #PF)', () => {
    // mov rcx, 0x20000; add rbx, rcx; mov al, [0x6000]; hlt — the 2 MiB page is supervisor-only.
    // (A CPU emulator's lazily computed RFLAGS, read mid-block, has garbage where VM (bit 17) is.)
    const g = longModeGuest([0x48, 0xc7, 0xc1, 0x00, 0x00, 0x02, 0x00, 0x48, 0x01, 0xcb, 0x8a, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00, 0xf4]);
    try {
      g.memory.bytes()[0x6000] = 0x5a;
      const e = g.vcpu.runSync();
      assert.equal(e.reason, 'HLT', show(e));
      assert.equal(g.vcpu.getRegs().rax & 0xffn, 0x5an);
    } finally {
      g.close();
    }
  });

  it('a 64-bit code segment with D set fails VM entry: KVM_EXIT_FAIL_ENTRY', () => {
    const g = longModeGuest([0xf4]);
    try {
      const s = g.vcpu.getSregs();
      g.vcpu.setSregs({ cs: { ...s.cs, db: 1 } });
      assert.equal(g.vcpu.runSync().reason, 'FAIL_ENTRY');
    } finally {
      g.close();
    }
  });

  it('executing outside guest memory cannot be emulated: KVM_EXIT_INTERNAL_ERROR', () => {
    const g = realModeGuest([0xea, 0x00, 0x00, 0x00, 0xf0]); // jmp 0xf000:0 (linear 0xf0000, no memslot)
    try {
      const e = g.vcpu.runSync();
      assert.ok(e.reason === 'INTERNAL_ERROR' && e.suberror === 1, show(e));
    } finally {
      g.close();
    }
  });

  it('CPUID answers from KVM_SET_CPUID2 (zeros before), the emulated EPYC\'s vendor', () => {
    // xor eax, eax; cpuid; mov eax, ebx; out 0x11, eax; hlt
    const code = [0x66, 0x31, 0xc0, 0x0f, 0xa2, 0x66, 0x89, 0xd8, 0x66, 0xe7, 0x11, 0xf4];
    const g = realModeGuest(code);
    try {
      let e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.data.readUInt32LE(0) === 0, `no CPUID table: zeros, ${show(e)}`);
      g.vcpu.setCpuid(g.kvm.supportedCpuid());
      g.vcpu.setRegs({ rip: CODE_ADDR });
      e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.data.toString('latin1') === 'Auth', show(e));
    } finally {
      g.close();
    }
  });

  it('RDMSR: APIC_BASE as KVM keeps it; an unknown MSR is #GP', () => {
    // mov ecx, 0x1b; rdmsr; out 0x11, eax; mov ecx, 0x12345678; rdmsr; hlt — #GP handler: out 0x13, al; hlt
    const code = [0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00, 0x0f, 0x32, 0x66, 0xe7, 0x11,
      0x66, 0xb9, 0x78, 0x56, 0x34, 0x12, 0x0f, 0x32, 0xf4];
    const g = realModeWithHandler(code, 13, [0xe6, 0x13, 0xf4]);
    try {
      const e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.port === 0x11, show(e));
      if (e.reason === 'IO') assert.equal(e.data.readUInt32LE(0), 0xfee00900, 'enabled, BSP, at 0xfee00000');
      const gp = g.vcpu.runSync();
      assert.ok(gp.reason === 'IO' && gp.port === 0x13, `#GP delivered: ${show(gp)}`);
    } finally {
      g.close();
    }
  });

  it('VMMCALL: an unknown hypercall returns -KVM_ENOSYS in RAX', () => {
    const g = realModeGuest([0x0f, 0x01, 0xd9, 0x66, 0xe7, 0x11, 0xf4]); // vmmcall; out 0x11, eax; hlt
    try {
      const e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.data.readInt32LE(0) === -1000, show(e));
    } finally {
      g.close();
    }
  });

  it('rep outsb / rep insb: one exit for the string, the registers advanced on completion', () => {
    // mov si, 0x3000; mov cx, 5; mov dx, 0x11; rep outsb; mov di, 0x3100; mov cx, 3; rep insb; hlt
    const code = [0xbe, 0x00, 0x30, 0xb9, 0x05, 0x00, 0xba, 0x11, 0x00, 0xf3, 0x6e,
      0xbf, 0x00, 0x31, 0xb9, 0x03, 0x00, 0xf3, 0x6c, 0xf4];
    const g = realModeGuest(code);
    try {
      g.memory.view().write('hello', 0x3000, 'latin1');
      const out = g.vcpu.runSync();
      assert.ok(out.reason === 'IO' && out.direction === 'out' && out.count === 5 && out.data.toString('latin1') === 'hello', show(out));
      const input = g.vcpu.runSync();
      assert.ok(input.reason === 'IO' && input.direction === 'in' && input.count === 3, show(input));
      g.vcpu.completeIoIn(Buffer.from('abc'));
      assert.equal(g.vcpu.runSync().reason, 'HLT');
      assert.equal(g.memory.view().toString('latin1', 0x3100, 0x3103), 'abc');
      const r = g.vcpu.getRegs();
      assert.equal(r.rsi & 0xffffn, 0x3005n);
      assert.equal(r.rdi & 0xffffn, 0x3103n);
      assert.equal(r.rcx & 0xffffn, 0n);
    } finally {
      g.close();
    }
  });

  it('a read-only memslot reads as memory and writes exit as MMIO; a moved memslot moves the memory', () => {
    // mov ax, 0x1000; mov ds, ax; mov al, [0]; out 0x11, al; mov byte [0], 0x42; hlt
    const code = [0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xe6, 0x11, 0xc6, 0x06, 0x00, 0x00, 0x42, 0xf4];
    const g = realModeGuest(code);
    const rom = GuestMemory.create(0x1000);
    try {
      rom.bytes()[0] = 0x5a;
      g.vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x10000, memory: rom, readonly: true });
      const e = g.vcpu.runSync();
      assert.ok(e.reason === 'IO' && e.data[0] === 0x5a, show(e));
      const w = g.vcpu.runSync();
      assert.ok(w.reason === 'MMIO' && w.isWrite && w.address === 0x10000n && w.data[0] === 0x42, show(w));
      assert.equal(rom.bytes()[0], 0x5a, 'the memory is unchanged');
      assert.equal(g.vcpu.runSync().reason, 'HLT');
      // Move it away: the same read is now outside every memslot.
      g.vm.removeUserMemoryRegion(1);
      g.vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x20000, memory: rom, readonly: true });
      g.vcpu.setRegs({ rip: CODE_ADDR });
      const m = g.vcpu.runSync();
      assert.ok(m.reason === 'MMIO' && !m.isWrite && m.address === 0x10000n, show(m));
    } finally {
      g.close();
      rom.release();
    }
  });

  it('encodings the CPU refuses raise #UD, also those a CPU emulator would run or choke on', () => {
    for (const code of [
      [0xf0, 0x0f, 0xab, 0xc0], // lock bts eax, eax: LOCK needs a memory operand
      [0x66, 0xf0, 0x0f, 0xba, 0xe8, 0x01], // lock bts ax, 1
      [0xf0, 0xe4, 0x60], // lock in al, 0x60
    ]) {
      const g = realModeWithHandler([0x90, ...code, 0xf4], 6, [0xe6, 0x66, 0xf4]); // #UD handler: out 0x66
      try {
        const e = g.vcpu.runSync();
        assert.ok(e.reason === 'IO' && e.port === 0x66, `${Buffer.from(code).toString('hex')}: ${show(e)}`);
        assert.equal(g.memory.view().readUInt16LE(0x8000 - 6), 0x1001, 'the frame points at the refused instruction');
      } finally {
        g.close();
      }
    }
  });
});
