// The vCPU as KVM presents it, whichever KVM answers /dev/kvm (the host's or the emulator's
// software KVM): exceptions delivered through the guest's IDT, triple faults, failed entries,
// emulation failures, CPUID from KVM_SET_CPUID2, MSRs, hypercalls, string I/O, read-only and
// moved memslots. Expectations are the kernel's (Documentation/virt/kvm/api.rst, x86.c, svm.c).
// Where the KVMs differ — a vendor module's hardware (VM-entry checks, VMMCALL), or the software
// KVM's model where it is not the kernel's — the expectation is per KVM (kvmImpl()): the software
// KVM ('soft'), or the host's kvm_amd, kvm_intel or kvm_pvm, named by `sev-emu info` outside the
// emulator (inside it, /proc/cpuinfo and CPUID are the emulated EPYC's whatever the host is).
import * as assert from 'node:assert/strict';

import { GuestMemory } from '../../lib/kvm';
import { hostFacts, kvmImpl } from '../helpers/env';
import { CODE_ADDR, longModeGuest, outputsToHlt, realModeGuest, requireKvm } from './guest';

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

  it('an interrupt in SET_SREGS interrupt_bitmap is delivered through the IVT: at once with IF set; with IF clear as each KVM does it', () => {
    // cli; mov cx, 3; loop $; sti; nop; out 0x10, al; hlt — vector 0x20's handler: out 0x66, al; hlt
    const code = [0xfa, 0xb9, 0x03, 0x00, 0xe2, 0xfe, 0xfb, 0x90, 0xe6, 0x10, 0xf4];
    // The bitmap holds the interrupt KVM was in the middle of delivering: __set_sregs_common
    // queues it as already injected (kvm_queue_interrupt), and inject_pending_event re-injects
    // it at the next entry without asking whether the guest accepts interrupts. So with IF clear:
    // - kvm_amd writes it to the VMCB's EVENTINJ, which IF does not mask, and kvm_pvm delivers it
    //   (measured on kvm_pvm): taken before the first instruction, IF clear in the frame;
    // - kvm_intel (with unrestricted_guest, which runs real mode natively) writes it to the VMCS,
    //   and VM entry refuses an external interrupt while RFLAGS.IF = 0 (SDM, checks on guest RIP
    //   and RFLAGS; seen from KVM in edk2 issue #91): KVM_EXIT_FAIL_ENTRY;
    // - the software KVM does as kvm_amd.
    const impl = kvmImpl();
    const cases = [
      { rflags: 0x202n, ip: 0x1000, ifInFrame: true },
      impl === 'kvm_intel' ? { rflags: 0x2n, failEntry: true } : { rflags: 0x2n, ip: 0x1000, ifInFrame: false },
    ];
    for (const c of cases) {
      const g = realModeWithHandler(code, 0x20, [0xe6, 0x66, 0xf4]);
      try {
        g.vcpu.setRegs({ rflags: c.rflags });
        g.vcpu.setSregs({ interruptBitmap: [1n << 0x20n, 0n, 0n, 0n] });
        const e = g.vcpu.runSync();
        if ('failEntry' in c) {
          assert.equal(e.reason, 'FAIL_ENTRY', `${impl}, rflags ${c.rflags}: ${show(e)}`);
          continue;
        }
        assert.ok(e.reason === 'IO' && e.port === 0x66, `${impl}, rflags ${c.rflags}: ${show(e)}`);
        const frame = g.memory.view();
        assert.equal(frame.readUInt16LE(0x8000 - 6), c.ip, `${impl}, rflags ${c.rflags}: the interrupted IP`);
        assert.equal((frame.readUInt16LE(0x8000 - 2) & 0x200) !== 0, c.ifInFrame, `${impl}, rflags ${c.rflags}: IF in the frame`);
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

  it('a 64-bit code segment with D set fails VM entry: KVM_EXIT_FAIL_ENTRY (kvm_pvm, which has no VM entry, runs it)', () => {
    const g = longModeGuest([0xf4]);
    try {
      const s = g.vcpu.getSregs();
      g.vcpu.setSregs({ cs: { ...s.cs, db: 1 } });
      const e = g.vcpu.runSync();
      // VMRUN's consistency checks (APM: long mode with CS.L and CS.D both set) and VMX's guest
      // state checks (SDM: IA-32e mode guest, CS.L = 1 requires CS.D = 0) refuse the entry, and the
      // software KVM does as VMRUN. kvm_pvm enters no VMCB or VMCS: the guest's 64-bit code runs
      // on the host CPU in the segments PVM gives it, CS.D is never checked, and the guest halts.
      assert.equal(e.reason, kvmImpl() === 'kvm_pvm' ? 'HLT' : 'FAIL_ENTRY', show(e));
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

  it('CPUID answers from KVM_SET_CPUID2 (zeros before): the emulated EPYC\'s vendor on the software KVM, the host CPU\'s on the host\'s', async () => {
    // xor eax, eax; cpuid; mov eax, ebx; out 0x11, eax; mov eax, edx; out 0x11, eax;
    // mov eax, ecx; out 0x11, eax; hlt — the vendor string, as CPUID leaf 0 spells it
    const code = [0x66, 0x31, 0xc0, 0x0f, 0xa2, 0x66, 0x89, 0xd8, 0x66, 0xe7, 0x11, 0x66, 0x89, 0xd0, 0x66, 0xe7, 0x11,
      0x66, 0x89, 0xc8, 0x66, 0xe7, 0x11, 0xf4];
    // Two vCPUs: KVM refuses to change the CPUID of a vCPU that has run (since Linux 5.16; from
    // 6.0 only an identical table is accepted): KVM_SET_CPUID2 after KVM_RUN is EINVAL.
    const bare = realModeGuest(code);
    try {
      const out = await outputsToHlt(bare.vcpu, 0x11);
      assert.deepEqual(out.map((b) => b.readUInt32LE(0)), [0, 0, 0], 'no CPUID table: zeros');
    } finally {
      bare.close();
    }
    const g = realModeGuest(code);
    try {
      g.vcpu.setCpuid(g.kvm.supportedCpuid());
      const vendor = Buffer.concat(await outputsToHlt(g.vcpu, 0x11)).toString('latin1');
      // KVM_GET_SUPPORTED_CPUID passes the host CPU's vendor; the software KVM's is the EPYC's.
      const impl = kvmImpl();
      assert.equal(vendor, impl === 'soft' ? 'AuthenticAMD' : hostFacts().hostCpuVendor, `${impl}: CPUID 0 vendor`);
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

  it('VMMCALL in real mode: -KVM_ENOSYS for an unknown hypercall where it is intercepted (kvm_amd); #UD where KVM emulates it (kvm_intel, kvm_pvm)', () => {
    // vmmcall; out 0x11, eax; hlt — #UD handler: out 0x66, al; hlt
    const g = realModeWithHandler([0x0f, 0x01, 0xd9, 0x66, 0xe7, 0x11, 0xf4], 6, [0xe6, 0x66, 0xf4]);
    try {
      const e = g.vcpu.runSync();
      const impl = kvmImpl();
      if (impl === 'kvm_intel' || impl === 'kvm_pvm') {
        // VMX has no VMMCALL: its #UD goes to KVM's instruction emulator (kvm_pvm runs all
        // real-mode code there), whose VMMCALL is protected-mode only (emulate.c group7_rm3:
        // Prot): #UD for the guest, through the IVT, the frame at the VMMCALL. Measured on kvm_pvm.
        assert.ok(e.reason === 'IO' && e.port === 0x66, `${impl}: ${show(e)}`);
        assert.equal(g.memory.view().readUInt16LE(0x8000 - 6), 0x1000, 'the frame holds the VMMCALL\'s IP');
      } else {
        // SVM intercepts VMMCALL in every mode (and so does the software KVM):
        // kvm_emulate_hypercall answers an unknown number with -KVM_ENOSYS.
        assert.ok(e.reason === 'IO' && e.port === 0x11 && e.size === 4, `${impl}: ${show(e)}`);
        assert.equal(e.data.readInt32LE(0), -1000, 'RAX: -KVM_ENOSYS');
      }
    } finally {
      g.close();
    }
  });

  it('rep outsb / rep insb: exits as KVM\'s instruction emulator makes them, the registers advanced on completion', () => {
    // mov si, 0x3000; mov cx, 5; mov dx, 0x11; rep outsb; mov di, 0x3100; mov cx, 3; rep insb; hlt
    const code = [0xbe, 0x00, 0x30, 0xb9, 0x05, 0x00, 0xba, 0x11, 0x00, 0xf3, 0x6e,
      0xbf, 0x00, 0x31, 0xb9, 0x03, 0x00, 0xf3, 0x6c, 0xf4];
    const g = realModeGuest(code);
    try {
      g.memory.view().write('hello', 0x3000, 'latin1');
      const impl = kvmImpl();
      // Every x86 KVM (svm.c io_interception and vmx.c handle_io, unless the guest is SEV-ES;
      // kvm_pvm emulates all real-mode code), and the software KVM as they do, hands string I/O
      // to the instruction emulator, whose OUTS passes one element per KVM_EXIT_IO (emulate.c
      // em_out: count 1): five exits, RIP on the rep outsb, RSI and RCX advanced by one each time.
      for (let i = 0; i < 5; i++) {
        const out = g.vcpu.runSync();
        assert.ok(out.reason === 'IO' && out.direction === 'out' && out.port === 0x11 && out.count === 1 &&
          out.data.toString('latin1') === 'hello'[i], `${impl}, element ${i}: ${show(out)}`);
        const r = g.vcpu.getRegs();
        assert.deepEqual([r.rip, r.rsi & 0xffffn, r.rcx & 0xffffn], [0x1009n, BigInt(0x3001 + i), BigInt(4 - i)], `${impl}, element ${i}: rip, si, cx`);
      }
      // INS reads ahead (emulate.c pio_in_emulated: up to RCX elements, 1 KiB, the rest of the
      // page) in one exit, everywhere.
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
