// Helpers for the KVM suites: skip rules for /dev/kvm, tiny hand-assembled guests, and the setup
// for real-mode and long-mode vCPUs.
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

import { GuestMemory, Kvm, type Vcpu, type Vm } from '../../lib/kvm';

export const KVM_DEVICE = process.env.KVM_DEVICE || '/dev/kvm';

/**
 * mocha `before` body: skip the suite, saying why, when /dev/kvm is absent. A /dev/kvm that
 * exists but cannot be opened fails the suite under CI (it must run there) and skips elsewhere.
 */
export function requireKvm(ctx: Mocha.Context): void {
  try {
    fs.closeSync(fs.openSync(KVM_DEVICE, 'r+'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = `${KVM_DEVICE} is not usable (${code}): KVM suites need hardware virtualisation`;
    if (process.env.CI && code !== 'ENOENT') throw new Error(why);
    console.log(`      skipping: ${why}`);
    ctx.skip();
  }
}

/** A full GC, with or without --expose-gc. */
export function forceGc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** GC, then let finalizers (scheduled as immediates) run, a few times. */
export async function settleGc(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    forceGc();
    await new Promise((r) => setImmediate(r));
  }
}

export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/**
 * Under a sanitizer runtime (npm run test:sanitize preloads libasan) the allocator maps memory of
 * its own wherever the kernel puts it, so a released guest address is soon mapped again by
 * something else: "no mapping covers the address" cannot be checked there. The native mapping
 * counts (kvmNativeStats) are checked everywhere.
 */
export const addressSpaceReused = /(^|[/:])lib[a-z]*san\.so/.test(process.env.LD_PRELOAD ?? '');

/** True when some mapping in /proc/self/maps covers [addr, addr + size). */
export function mapped(addr: bigint, size: number): boolean {
  const end = addr + BigInt(size);
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      return m !== null && BigInt(`0x${m[1]}`) < end && addr < BigInt(`0x${m[2]}`);
    });
}

/** Asserts that no mapping covers [addr, addr + size) any more (not checkable under a sanitizer). */
export function assertUnmapped(addr: bigint, size: number, message?: string): void {
  if (!addressSpaceReused && mapped(addr, size)) {
    throw new Error(message ?? `0x${addr.toString(16)} (+${size}) is still mapped`);
  }
}

export const CODE_ADDR = 0x1000;

/** Puts a vCPU in flat real mode (CS = DS = 0) at `rip`. */
export function realMode(vcpu: Vcpu, rip = CODE_ADDR): void {
  const seg = { base: 0n, selector: 0 };
  vcpu.setSregs({ cs: seg, ds: seg, es: seg, ss: seg });
  vcpu.setRegs({ rip: BigInt(rip), rflags: 2n, rsp: 0x8000n });
}

/** A VM with one vCPU and its memory, closed together. */
export interface TestGuest {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  vcpu: Vcpu;
  close(): void;
}

/** A VM with `size` bytes of memory at guest-physical 0, `code` at 0x1000, vCPU 0 set up by `start`. */
function testGuest(code: number[], size: number, start: (kvm: Kvm, vcpu: Vcpu, memory: GuestMemory) => void): TestGuest {
  const kvm = Kvm.open(KVM_DEVICE);
  const vmm = kvm.createVm();
  const memory = GuestMemory.create(size);
  vmm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
  memory.bytes().set(code, CODE_ADDR);
  const vcpu = vmm.createVcpu(0);
  start(kvm, vcpu, memory);
  return {
    kvm,
    vm: vmm,
    memory,
    vcpu,
    close() {
      vmm.close();
      memory.release();
      kvm.close();
    },
  };
}

/** A real-mode guest: `size` bytes of memory, `code` at 0x1000. */
export function realModeGuest(code: number[], size = 0x10000): TestGuest {
  return testGuest(code, size, (_kvm, vcpu) => realMode(vcpu));
}

/** A long-mode guest: the first 2 MiB identity-mapped, KVM's CPUID, `code` at 0x1000. */
export function longModeGuest(code: number[], size = 2 * 1024 * 1024): TestGuest {
  return testGuest(code, size, (kvm, vcpu, memory) => {
    writeIdentityPageTables(memory);
    vcpu.setCpuid(kvm.supportedCpuid());
    longMode(vcpu);
  });
}

/** Runs a guest to HLT and returns the data of its OUTs to `port`; any other exit is an error. */
export async function outputsToHlt(vcpu: Vcpu, port: number, maxExits = 200): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < maxExits; i++) {
    const e = await vcpu.run();
    if (e.reason === 'HLT') return out;
    if (e.reason !== 'IO' || e.port !== port) {
      throw new Error(`unexpected exit ${JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    out.push(Buffer.from(e.data));
  }
  throw new Error('the guest did not halt');
}

// ---- hand-assembled 16-bit code ---------------------------------------------------------------

/** mov al, 0x42; out 0x10, al; hlt */
export const OUT_42 = [0xb0, 0x42, 0xe6, 0x10, 0xf4];

/**
 * Echo a NUL-terminated string from memory to a port:
 *   mov bx, 0x2000 / loop: mov al, [bx]; out 0x11, al; cmp al, 0; je done; inc bx; jmp loop / done: hlt
 */
export const ECHO_STRING = [0xbb, 0x00, 0x20, 0x8a, 0x07, 0xe6, 0x11, 0x3c, 0x00, 0x74, 0x03, 0x43, 0xeb, 0xf5, 0xf4];
export const ECHO_STRING_ADDR = 0x2000;

/** mov byte [0x3000], 0x99; mov word [0x3002], 0xbeef; hlt */
export const WRITE_MEMORY = [0xc6, 0x06, 0x00, 0x30, 0x99, 0xc7, 0x06, 0x02, 0x30, 0xef, 0xbe, 0xf4];

/** in al, 0x20; add al, 1; out 0x21, al; hlt */
export const IN_ADD_OUT = [0xe4, 0x20, 0x04, 0x01, 0xe6, 0x21, 0xf4];

/**
 * MMIO at 0x10000 (outside a 64 KiB memslot):
 *   mov ax, 0x1000; mov ds, ax; mov byte [0], 0x77; mov al, [4]; out 0x12, al; hlt
 */
export const MMIO_WRITE_READ = [0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x00, 0x77, 0xa0, 0x04, 0x00, 0xe6, 0x12, 0xf4];

/**
 * Wait for a flag in another memslot: mov ax,0x1000; mov ds,ax; l: mov al,[0]; test al,al; jz l;
 * out 0x10,al; hlt (the flag byte at guest-physical 0x10000).
 */
export const WAIT_FOR_FLAG = [0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0x84, 0xc0, 0x74, 0xf9, 0xe6, 0x10, 0xf4];

/** An endless loop: jmp $ */
export const SPIN_FOREVER = [0xeb, 0xfe];

// ---- long mode --------------------------------------------------------------------------------

export const LM_PML4 = 0x2000;
export const LM_DATA = 0x5000;

/**
 * 64-bit code: mov rax, 0x1122334455667788; mov [0x5000], rax; mov dx, 0x3f8;
 * mov eax, 0x11223344; out dx, eax; hlt
 */
export const LONG_MODE_CODE = [
  0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
  0x48, 0x89, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00,
  0x66, 0xba, 0xf8, 0x03,
  0xb8, 0x44, 0x33, 0x22, 0x11,
  0xef,
  0xf4,
];

/** Identity-maps the first 2 MiB with one large page (PML4 0x2000 → PDPT 0x3000 → PD 0x4000). */
export function writeIdentityPageTables(memory: GuestMemory): void {
  const view = memory.view();
  view.writeBigUInt64LE(0x3000n | 3n, LM_PML4);
  view.writeBigUInt64LE(0x4000n | 3n, 0x3000);
  view.writeBigUInt64LE(0x0n | 0x83n, 0x4000); // present, writable, 2 MiB page
}

/** 64-bit flat segments, paging on with PAE, EFER.LME|LMA. */
export function longMode(vcpu: Vcpu, rip = CODE_ADDR): void {
  const code = { base: 0n, limit: 0xffffffff, selector: 0x8, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1 };
  const data = { base: 0n, limit: 0xffffffff, selector: 0x10, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1 };
  vcpu.setSregs({
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    cr3: BigInt(LM_PML4),
    cr4: 0x20n, // PAE
    cr0: 0x80000001n | 0x10n | 0x20n, // PG | PE | ET | NE
    efer: 0x500n, // LME | LMA
  });
  vcpu.setRegs({ rip: BigInt(rip), rflags: 2n, rsp: 0x8000n });
}
