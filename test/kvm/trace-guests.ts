// Guests whose behaviour is recorded as a trace — every exit with its data, then the registers
// and a digest of guest memory at HLT — for the differential suite: the same guests run on every
// KVM present (the emulator's software KVM, the host's /dev/kvm) and the traces must agree with
// each other and with what each guest is written to do. Run as a script it prints the traces.
import { createHash } from 'node:crypto';

import { GuestMemory, Kvm, type Vcpu } from '../../lib/kvm';
import { native } from '../../lib/native';
import { CODE_ADDR, ECHO_STRING, IN_ADD_OUT, LONG_MODE_CODE, longMode, MMIO_WRITE_READ, OUT_42, realMode, writeIdentityPageTables } from './guest';

export interface Trace {
  exits: string[];
  regs: Record<string, string>;
  /** Digest of the guest's first 64 KiB after the run. */
  memory: string;
  dump?: string;
}

export interface TracedGuest {
  name: string;
  longMode?: boolean;
  code: number[];
  /** Memory the guest reads, written before it runs. */
  data?: { at: number; bytes: number[] };
  /** Answers to IN and MMIO reads, in order. */
  answers?: number[];
  /** The registers compared after HLT. */
  regs: string[];
  /** Guest memory recorded in the trace, in hex. */
  dump?: { at: number; length: number };
}

const show = (v: bigint) => `0x${v.toString(16)}`;

const MASK = (1n << 64n) - 1n;
const RANDOM_DATA = 0x6000; // 32 quadwords the random programs load and store (clear of the page tables)
const RANDOM_REGS = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi'];

export interface RandomProgram {
  code: number[];
  /** What the program must do, computed by a model independent of any CPU emulator. */
  expected: { exits: string[]; regs: Record<string, string>; data: string };
}

/**
 * A seeded generator of straight-line 64-bit code — ALU, shifts, multiplies, loads and stores,
 * carry-dependent instructions, OUTs of intermediate values — together with its expected trace,
 * computed here instruction by instruction. Only architecturally defined flags are read (CF after
 * every flag writer; never ZF after IMUL, nor OF after a multi-bit shift), so every correct x86
 * must give the same trace.
 */
export function randomProgram(seed: number, length = 60): RandomProgram {
  let s = seed >>> 0 || 1;
  const rnd = (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
  const used = [0, 1, 2, 3, 5, 6, 7]; // rax rcx rdx rbx rbp rsi rdi (not rsp)
  const reg = () => used[rnd(used.length)];
  const r: bigint[] = new Array(8).fill(0n);
  const memory = new Map<number, bigint>();
  const exits: string[] = [];
  let cf = 0n;
  const signed = (v: bigint) => BigInt.asIntN(64, v);
  const code: number[] = [0x48, 0xc7, 0xc4, 0x00, 0x80, 0x00, 0x00]; // mov rsp, 0x8000
  r[4] = 0x8000n;
  for (const x of used) {
    const imm = [rnd(256), rnd(256), rnd(256), rnd(256)];
    code.push(0x48, 0xc7, 0xc0 | x, ...imm); // mov r64, simm32
    r[x] = BigInt.asUintN(64, BigInt(Buffer.from(imm).readInt32LE()));
  }
  for (let i = 0; i < length; i++) {
    const a = reg(), b = reg();
    const rr = (dst: number, src: number) => 0xc0 | (src << 3) | dst; // ModRM reg-reg, dst in r/m
    switch (rnd(21)) {
      case 0: { // add a, b
        code.push(0x48, 0x01, rr(a, b));
        const sum = r[a] + r[b];
        cf = sum >> 64n; r[a] = sum & MASK; break;
      }
      case 1: // sub a, b
        code.push(0x48, 0x29, rr(a, b));
        cf = r[a] < r[b] ? 1n : 0n; r[a] = (r[a] - r[b]) & MASK; break;
      case 2: // xor a, b
        code.push(0x48, 0x31, rr(a, b));
        r[a] ^= r[b]; cf = 0n; break;
      case 3: { // imul a, b
        code.push(0x48, 0x0f, 0xaf, rr(b, a));
        const full = signed(r[a]) * signed(r[b]);
        cf = full === signed(full & MASK) ? 0n : 1n; r[a] = full & MASK; break;
      }
      case 4: { // shl a, imm8
        const n = rnd(4) ? rnd(8) : rnd(64);
        code.push(0x48, 0xc1, 0xe0 | a, n);
        if (n) { cf = (r[a] >> BigInt(64 - n)) & 1n; r[a] = (r[a] << BigInt(n)) & MASK; }
        break;
      }
      case 5: { // shr a, imm8
        const n = rnd(4) ? rnd(8) : rnd(64);
        code.push(0x48, 0xc1, 0xe8 | a, n);
        if (n) { cf = (r[a] >> BigInt(n - 1)) & 1n; r[a] >>= BigInt(n); }
        break;
      }
      case 6: { // adc a, b
        code.push(0x48, 0x11, rr(a, b));
        const sum = r[a] + r[b] + cf;
        cf = sum >> 64n; r[a] = sum & MASK; break;
      }
      case 7: // cmovc a, b
        code.push(0x48, 0x0f, 0x42, rr(b, a));
        if (cf) r[a] = r[b];
        break;
      case 8: { // mov [RANDOM_DATA + 8k], a
        const at = RANDOM_DATA + 8 * rnd(32);
        code.push(0x48, 0x89, 0x04 | (a << 3), 0x25, at & 0xff, at >> 8, 0, 0);
        memory.set(at, r[a]); break;
      }
      case 9: { // mov a, [RANDOM_DATA + 8k]
        const at = RANDOM_DATA + 8 * rnd(32);
        code.push(0x48, 0x8b, 0x04 | (a << 3), 0x25, at & 0xff, at >> 8, 0, 0);
        r[a] = memory.get(at) ?? 0n; break;
      }
      case 10: { // bswap a
        code.push(0x48, 0x0f, 0xc8 | a);
        const bytes = Buffer.alloc(8);
        bytes.writeBigUInt64LE(r[a]);
        r[a] = bytes.readBigUInt64BE(); break;
      }
      case 11: { // mov rax, a; out 0x10, eax
        code.push(0x48, 0x89, rr(0, a), 0xe7, 0x10);
        r[0] = r[a];
        const data = Buffer.alloc(4);
        data.writeUInt32LE(Number(r[0] & 0xffffffffn));
        exits.push(`io out port=0x10 size=4 count=1 data=${data.toString('hex')}`); break;
      }
      case 12: // neg a
        code.push(0x48, 0xf7, 0xd8 | a);
        cf = r[a] ? 1n : 0n; r[a] = (-r[a]) & MASK; break;
      case 13: // not a
        code.push(0x48, 0xf7, 0xd0 | a);
        r[a] ^= MASK; break;
      case 14: { // add a32, b32: the upper half is cleared
        code.push(0x01, rr(a, b));
        const sum = (r[a] & 0xffffffffn) + (r[b] & 0xffffffffn);
        cf = sum >> 32n; r[a] = sum & 0xffffffffn; break;
      }
      case 15: { // rol a, imm8 / ror a, imm8
        const n = rnd(64), left = rnd(2) === 0;
        code.push(0x48, 0xc1, (left ? 0xc0 : 0xc8) | a, n);
        if (n) {
          const k = BigInt(left ? n : 64 - n);
          r[a] = ((r[a] << k) | (r[a] >> (64n - k))) & MASK;
          cf = left ? r[a] & 1n : r[a] >> 63n;
        }
        break;
      }
      case 16: { // sbb a, b
        code.push(0x48, 0x19, rr(a, b));
        const sub = r[b] + cf;
        const borrow = r[a] < sub ? 1n : 0n;
        r[a] = (r[a] - sub) & MASK; cf = borrow; break;
      }
      case 17: // setc a8 (REX: spl-dil rather than ah-bh)
        code.push(0x40, 0x0f, 0x92, 0xc0 | a);
        r[a] = (r[a] & ~0xffn) | cf; break;
      case 18: { // lea a, [b + 4*c + disp8]
        const c = reg(), disp = rnd(256);
        code.push(0x48, 0x8d, 0x44 | (a << 3), 0x80 | (c << 3) | b, disp);
        r[a] = (r[b] + 4n * r[c] + BigInt(disp < 128 ? disp : disp - 256)) & MASK; break;
      }
      case 19: // push a; pop b
        code.push(0x50 | a, 0x58 | b);
        r[b] = r[a]; break;
      case 20: { // mul b: rdx:rax = rax * b
        code.push(0x48, 0xf7, 0xe0 | b);
        const full = r[0] * r[b];
        r[0] = full & MASK; r[2] = full >> 64n; cf = r[2] ? 1n : 0n; break;
      }
    }
  }
  code.push(0xf4);
  exits.push('hlt');
  const regs: Record<string, string> = {};
  for (let x = 0; x < 8; x++) regs[RANDOM_REGS[x]] = show(r[x]);
  regs.rip = show(BigInt(CODE_ADDR + code.length));
  const data = Buffer.alloc(256);
  for (const [at, v] of memory) data.writeBigUInt64LE(v, at - RANDOM_DATA);
  return { code, expected: { exits, regs, data: data.toString('hex') } };
}

/** The random program `seed` as a traced guest. */
export function randomGuest(seed: number): TracedGuest {
  const p = randomProgram(seed);
  return { name: `random-${seed}`, longMode: true, code: p.code, regs: Object.keys(p.expected.regs), dump: { at: RANDOM_DATA, length: 256 } };
}

const io = (dir: 'in' | 'out', port: number, size: number, count: number, data?: string) =>
  `io ${dir} port=0x${port.toString(16)} size=${size} count=${count}${data === undefined ? '' : ` data=${data}`}`;

/**
 * Hand-written guests with the trace each is written to produce, on every KVM alike. (String I/O
 * goes through KVM's instruction emulator, whose OUTS exits once per element — emulate.c em_out:
 * count 1 — while INS reads ahead in one exit.)
 */
export const CORPUS: (TracedGuest & { expected: Pick<Trace, 'exits' | 'regs' | 'dump'> })[] = [
  { name: 'out', code: OUT_42, regs: ['rip', 'rax'],
    expected: { exits: [io('out', 0x10, 1, 1, '42'), 'hlt'], regs: { rip: '0x1005', rax: '0x42' } } },
  { name: 'in-add-out', code: IN_ADD_OUT, answers: [0x41], regs: ['rip', 'rax'],
    expected: { exits: [io('in', 0x20, 1, 1), io('out', 0x21, 1, 1, '42'), 'hlt'], regs: { rip: '0x1007', rax: '0x42' } } },
  // ds = 0x1000: the byte store goes to 0x10000 and the load to 0x10004, past the 64 KiB of RAM
  { name: 'mmio', code: MMIO_WRITE_READ, answers: [0x5a], regs: ['rip', 'rax'],
    expected: { exits: ['mmio write 0x10000 len=1 data=77', 'mmio read 0x10004 len=1', io('out', 0x12, 1, 1, '5a'), 'hlt'],
      regs: { rip: '0x1010', rax: '0x105a' } } },
  { name: 'echo', code: ECHO_STRING, data: { at: 0x2000, bytes: [...Buffer.from('traced\0')] }, regs: ['rip', 'rax', 'rbx'],
    expected: { exits: [...Buffer.from('traced\0')].map((c) => io('out', 0x11, 1, 1, c.toString(16).padStart(2, '0'))).concat('hlt'),
      regs: { rip: '0x100f', rax: '0x0', rbx: '0x2006' } } },
  { name: 'long-mode', longMode: true, code: LONG_MODE_CODE, regs: ['rip', 'rax', 'rdx'],
    expected: { exits: [io('out', 0x3f8, 4, 1, '44332211'), 'hlt'], regs: { rip: '0x101d', rax: '0x11223344', rdx: '0x3f8' } } },
  // rep outsb of 5 bytes from 0x3000, then rep insb of 3 into 0x3100
  { name: 'string-io', code: [0xbe, 0x00, 0x30, 0xb9, 0x05, 0x00, 0xba, 0x11, 0x00, 0xf3, 0x6e, 0xbf, 0x00, 0x31, 0xb9,
    0x03, 0x00, 0xf3, 0x6c, 0xf4], data: { at: 0x3000, bytes: [...Buffer.from('hello')] }, answers: [...Buffer.from('abc')],
    regs: ['rip', 'rsi', 'rdi', 'rcx'], dump: { at: 0x3100, length: 4 },
    expected: { exits: [...Buffer.from('hello')].map((c) => io('out', 0x11, 1, 1, c.toString(16).padStart(2, '0'))).concat(io('in', 0x11, 1, 3), 'hlt'),
      regs: { rip: '0x1014', rsi: '0x3005', rdi: '0x3103', rcx: '0x0' }, dump: `${Buffer.from('abc').toString('hex')}00` } },
];

/** Runs one guest on /dev/kvm (whichever KVM answers it) and records its trace. */
export async function trace(kvm: Kvm, g: TracedGuest): Promise<Trace> {
  const vm = kvm.createVm();
  const memory = GuestMemory.create(g.longMode ? 2 * 1024 * 1024 : 0x10000);
  try {
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    memory.bytes().set(g.code, CODE_ADDR);
    if (g.data) memory.bytes().set(g.data.bytes, g.data.at);
    const vcpu: Vcpu = vm.createVcpu(0);
    if (g.longMode) {
      writeIdentityPageTables(memory);
      vcpu.setCpuid(kvm.supportedCpuid());
      longMode(vcpu);
    } else {
      realMode(vcpu);
    }
    const answers = [...(g.answers ?? [])];
    const exits: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const e = await vcpu.run();
      if (e.reason === 'IO') {
        exits.push(io(e.direction, e.port, e.size, e.count, e.direction === 'out' ? e.data.toString('hex') : undefined));
        if (e.direction === 'in') vcpu.completeIoIn(Buffer.from(answers.splice(0, e.count * e.size)));
      } else if (e.reason === 'MMIO') {
        exits.push(`mmio ${e.isWrite ? 'write' : 'read'} ${show(e.address)} len=${e.length}${e.isWrite ? ` data=${e.data.toString('hex')}` : ''}`);
        if (!e.isWrite) vcpu.completeMmioRead(Buffer.from(answers.splice(0, e.length)));
      } else {
        exits.push(e.reason.toLowerCase());
        break;
      }
    }
    const r = vcpu.getRegs() as unknown as Record<string, bigint>;
    const regs: Record<string, string> = {};
    for (const name of g.regs) regs[name] = show(r[name] & (g.longMode ? ~0n : 0xffffn));
    const mem = createHash('sha256').update(memory.bytes(0, 0x10000)).digest('hex').slice(0, 16);
    const dump = g.dump && Buffer.from(memory.bytes(g.dump.at, g.dump.length)).toString('hex');
    return { exits, regs, memory: mem, ...(dump === undefined ? {} : { dump }) };
  } finally {
    vm.close();
    memory.release();
  }
}

/** As a script: the traces of the corpus and of `count` random programs, as JSON. */
async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20);
  const kvm = Kvm.open();
  const out: Record<string, Trace> = {};
  for (const g of CORPUS) out[g.name] = await trace(kvm, g);
  for (let seed = 1; seed <= count; seed++) out[`random-${seed}`] = await trace(kvm, randomGuest(seed));
  kvm.close();
  process.stdout.write(JSON.stringify({ backend: native.kvmBackend() ?? 'kernel', traces: out }));
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  });
}
