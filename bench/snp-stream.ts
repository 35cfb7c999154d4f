// SNP_LAUNCH_UPDATE streaming (an SEV-SNP guest's image into guest_memfd) of the Node API
// (SnpLaunch#streamFile: the next chunk's read overlaps this chunk's launch) against the C loop
// (bench/snp_stream_ref.c: pread, launch, repeat) and against the overlap limit
// max(read time, launch time) — the read measured by a Node process only reading the file into
// memory, the launch by the C client launching data already in memory — all on the same
// emulator (--host-snp, software KVM: SNP VMs are its), same image and chunk, in the same run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

import { median, ROOT, underEmulator } from './common';

const MiB = 1 << 20;
const CHUNK = 8 * MiB;
const TARGET_VS_LIMIT = 0.95;
const TARGET_VS_C = 1.0;
const TARGET_RSS_MIB = 64;
const SNP_EMU = ['--host-snp', '--kvm', 'soft'];

interface RunResult {
  bytes: number;
  seconds: number;
  loopMaxMs?: number;
  rssGrowthMiB?: number;
}

/** The Node side, run under `sev-emu run --host-snp --kvm soft`: one SNP launch, one streamed file. */
async function nodeChild(image: string, chunk: number): Promise<void> {
  const lib = require(path.join(ROOT, 'dist', 'lib'));
  const size = fs.statSync(image).size;
  global.gc?.();
  const rssBase = process.memoryUsage().rss;
  const platform = lib.SevPlatform.open();
  const kvm = lib.Kvm.open();
  const vm = kvm.createVm({ type: 'snp' });
  const memory = lib.GuestMemory.create(size);
  const gmem = vm.createGuestMemfd({ size });
  vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory, guestMemfd: gmem });
  vm.setMemoryAttributes({ address: 0, size, private: true });
  const launch = await lib.SnpLaunch.init(vm, platform);
  const started = await launch.start({ policy: 0x30000n });
  let rssPeak = process.memoryUsage().rss;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const t0 = performance.now();
  await started.streamFile(image, {
    guestPhysAddr: 0,
    memory,
    memoryOffset: 0,
    chunkSize: chunk,
    onProgress: () => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  loop.disable();
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  // guest_memfd is memory of this process too (the emulator maps it): both copies are expected.
  const result: RunResult = { bytes: size, seconds, loopMaxMs: loop.max / 1e6, rssGrowthMiB: (rssPeak - rssBase - 2 * size) / MiB };
  vm.close();
  gmem.close();
  memory.release();
  kvm.close();
  platform.close();
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Runs the SNP streaming benchmark and prints its table; true when the targets are met. */
export function snpStreamBench(): boolean {
  const sizes = (process.env.BENCH_SIZES_MIB ?? '64,256,1024').split(',').map(Number);
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bench-snp-'));
  const streamJs = path.join(__dirname, 'stream.js');
  let ok = true;
  try {
    const ref = path.join(dir, 'snp_stream_ref');
    execFileSync('cc', ['-O2', '-o', ref, path.join(ROOT, 'bench', 'snp_stream_ref.c')]);
    console.log(`SNP_LAUNCH_UPDATE streaming on the emulator (software KVM): Node API vs C loop and vs the overlap limit, chunk ${CHUNK / MiB} MiB, median of ${reps}`);
    console.log('size      C MB/s   Node MB/s  vs C   limit MB/s  vs limit   RSS beyond guest memory');
    for (const mib of sizes) {
      const image = path.join(dir, `image-${mib}.bin`);
      const fd = fs.openSync(image, 'w');
      const block = randomBytes(MiB);
      for (let i = 0; i < mib; i++) fs.writeSync(fd, block);
      fs.closeSync(fd);
      const c: RunResult[] = [];
      const n: RunResult[] = [];
      const reads: RunResult[] = [];
      const launches: RunResult[] = [];
      for (let i = 0; i < reps; i++) {
        // Alternate, so drift on a shared machine hits all sides alike.
        c.push(underEmulator<RunResult>([ref, image, String(CHUNK)], SNP_EMU));
        n.push(underEmulator<RunResult>([process.execPath, '--expose-gc', __filename, '--child', image, String(CHUNK)], SNP_EMU));
        reads.push(underEmulator<RunResult>([process.execPath, streamJs, '--reads-only', image, String(CHUNK)], SNP_EMU));
        launches.push(underEmulator<RunResult>([ref, image, String(CHUNK), '--no-read'], SNP_EMU));
      }
      const rate = (runs: RunResult[]) => (mib * MiB) / median(runs.map((r) => r.seconds)) / 1e6;
      const limitSeconds = Math.max(median(reads.map((r) => r.seconds)), median(launches.map((r) => r.seconds)));
      const cRate = rate(c);
      const nRate = rate(n);
      const limitRate = (mib * MiB) / limitSeconds / 1e6;
      const rss = Math.max(...n.map((r) => r.rssGrowthMiB!));
      console.log(
        `${String(mib).padStart(5)} MiB ${cRate.toFixed(0).padStart(8)} ${nRate.toFixed(0).padStart(10)} ${(nRate / cRate).toFixed(3).padStart(6)} ` +
          `${limitRate.toFixed(0).padStart(10)} ${(nRate / limitRate).toFixed(3).padStart(9)} ${rss.toFixed(1).padStart(14)} MiB`,
      );
      const last = mib === Math.max(...sizes);
      if (last && (nRate / limitRate < TARGET_VS_LIMIT || nRate / cRate < TARGET_VS_C)) ok = false;
      if (rss > TARGET_RSS_MIB) ok = false;
      fs.rmSync(image);
    }
    console.log(
      `targets: ≥ ${TARGET_VS_LIMIT}× the overlap limit and ≥ ${TARGET_VS_C}× the C loop at the largest size, RSS growth ≤ ` +
        `${TARGET_RSS_MIB} MiB beyond guest memory (the VMM's copy and guest_memfd): ${ok ? 'met' : 'NOT met'}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return ok;
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    nodeChild(process.argv[3], Number(process.argv[4])).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  } else {
    process.exitCode = snpStreamBench() ? 0 : 1;
  }
}
