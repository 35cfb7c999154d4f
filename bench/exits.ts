// Guest exits per second: a real-mode guest loops on `out 0x10, al; jmp` so every KVM_RUN returns
// with KVM_EXIT_IO. The Node API's vCPU loop (Vcpu.runSync, and the awaited Vcpu.run that keeps
// the event loop free) against a C loop calling KVM_RUN (bench/exits_ref.c), on each KVM this
// machine has: the emulator's software KVM, and the host's /dev/kvm where it is usable.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { kvmBackends, median, ROOT, underEmulator } from './common';

const LOOP = [0xe6, 0x10, 0xeb, 0xfc]; // l: out 0x10, al; jmp l

interface ExitsResult {
  backend: string;
  sync: number;
  async: number;
}

/** The Node side: exits per second through runSync, then through the awaited run. */
async function nodeChild(exits: number): Promise<void> {
  const lib = require(path.join(ROOT, 'dist', 'lib'));
  const native = require(path.join(ROOT, 'dist', 'lib', 'native')).native;
  const kvm = lib.Kvm.open();
  const vm = kvm.createVm();
  const memory = lib.GuestMemory.create(0x10000);
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
  memory.bytes().set(LOOP, 0x1000);
  const vcpu = vm.createVcpu(0);
  vcpu.setSregs({ cs: { base: 0n, selector: 0 } });
  vcpu.setRegs({ rip: 0x1000n, rflags: 2n });
  const check = (e: { reason: string; port?: number }) => {
    if (e.reason !== 'IO' || e.port !== 0x10) throw new Error(`unexpected exit ${JSON.stringify(e)}`);
  };
  for (let i = 0; i < 1000; i++) check(vcpu.runSync()); // warm up, as the C loop does
  let t = performance.now();
  for (let i = 0; i < exits; i++) check(vcpu.runSync());
  const sync = exits / ((performance.now() - t) / 1000);
  const awaited = Math.max(1000, exits >> 2);
  t = performance.now();
  for (let i = 0; i < awaited; i++) check(await vcpu.run());
  const async = awaited / ((performance.now() - t) / 1000);
  const result: ExitsResult = { backend: native.kvmBackend() ?? 'kernel', sync, async };
  vm.close();
  memory.release();
  kvm.close();
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Runs the exits benchmark and prints its table. Informational: there is no target. */
export function exitsBench(): boolean {
  const exits = Number(process.env.BENCH_EXITS ?? 100_000);
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const { backends, missing } = kvmBackends();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bench-exits-'));
  try {
    const ref = path.join(dir, 'exits_ref');
    execFileSync('cc', ['-O2', '-o', ref, path.join(ROOT, 'bench', 'exits_ref.c')]);
    console.log(`\nGuest exits per second (KVM_EXIT_IO loop): Node API vs C loop, ${exits} exits, median of ${reps}`);
    for (const why of missing) console.log(`not measured: ${why}`);
    console.log('KVM        C exits/s   runSync   ratio   await run()   ratio');
    for (const backend of backends) {
      const c: number[] = [];
      const n: ExitsResult[] = [];
      for (let i = 0; i < reps; i++) {
        c.push(underEmulator<number>([ref, String(exits)], ['--kvm', backend]));
        n.push(underEmulator<ExitsResult>([process.execPath, __filename, '--child', String(exits)], ['--kvm', backend]));
      }
      if (n.some((r) => r.backend !== backend)) throw new Error(`the Node child did not run on the ${backend} KVM`);
      const cRate = median(c);
      const sync = median(n.map((r) => r.sync));
      const async = median(n.map((r) => r.async));
      console.log(
        `${backend.padEnd(8)} ${cRate.toFixed(0).padStart(11)} ${sync.toFixed(0).padStart(9)} ${(sync / cRate).toFixed(3).padStart(7)} ` +
          `${async.toFixed(0).padStart(13)} ${(async / cRate).toFixed(3).padStart(7)}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return backends.length > 0;
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    nodeChild(Number(process.argv[3])).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  } else {
    process.exitCode = exitsBench() ? 0 : 1;
  }
}
