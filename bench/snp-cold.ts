// SEV-SNP report verification cold: the first verification of a chip's report, whose VCEK and
// cert_chain are not cached yet and come from the emulated KDS on loopback (`sev-emu kds`). The
// report is a real one of an emulated platform, fetched through configfs-tsm inside
// `sev-emu run --guest`. The limit, measured in the same run: the same two HTTP GETs done bare
// (fetch) plus one verifyAttestation of the already-parsed chain — what a cold verification cannot
// avoid doing. A cold verification also checks the chain before caching it (never cache what does
// not verify) and writes two cache files, so its target is below the warm path's: 0.6.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { emulatorLibrary } from '../lib/cli/sev-emu';
import { startKdsChild } from '../lib/cli/emu-kds';
import { certChainUrl, getCertChain, getVcekForReport, parseAttestationReport, parseCertChainPem, vcekUrl, verifyAttestation } from '../lib/snp';
import { median, ROOT, type BenchOptions, type BenchRow } from './common';

const TARGET = 0.6;

/** A report of the emulated platform in `state`, through configfs-tsm in an emulated guest. */
function guestReport(state: string, out: string): void {
  const script = 'R=/sys/kernel/config/tsm/report/bench; mkdir $R && head -c 64 /dev/urandom > $R/inblob && cat $R/outblob > "$1"; rmdir $R';
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sev-emu.js'), 'run', '--state', state, '--guest', '--', 'sh', '-c', script, 'sh', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`could not get a report from the emulated guest: ${r.stderr}`);
}

export async function snpColdBench(options: BenchOptions): Promise<BenchRow[]> {
  const scenario = 'SNP verify cold (VCEK + chain from the loopback KDS) vs bare GETs + verify';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-snp-cold-'));
  let stop: (() => Promise<void>) | undefined;
  try {
    const state = path.join(dir, 'state');
    const reportFile = path.join(dir, 'report.bin');
    guestReport(state, reportFile);
    const report = fs.readFileSync(reportFile);
    const kds = await startKdsChild({ ...process.env, LD_PRELOAD: emulatorLibrary(), SEV_EMU_STATE: state }, { rateLimit: 0 });
    stop = kds.stop;
    const trustedArks = [kds.info.arkFingerprint];
    const parsed = parseAttestationReport(report, { generation: 'milan' });
    const urls = [vcekUrl('milan', parsed.chipId, parsed.reportedTcb, kds.url), certChainUrl('milan', 'vcek', kds.url)];

    let n = 0;
    const cold = async () => {
      const cacheDir = path.join(dir, `cache-${n++}`);
      const opts = { baseUrl: kds.url, trustedArks, cacheDir };
      const [vcek, chain] = await Promise.all([getVcekForReport(report, opts), getCertChain('milan', opts)]);
      const ok = verifyAttestation({ report, vcek: vcek.bytes, ask: chain.ask.der, ark: chain.ark.der, trustedArks }).ok;
      if (!ok) throw new Error('cold verification failed: the benchmark would measure the wrong path');
    };
    const floor = async () => {
      const [vcek, pem] = await Promise.all(urls.map(async (u) => Buffer.from(await (await fetch(u)).arrayBuffer())));
      const { ask, ark } = parseCertChainPem(pem);
      if (!verifyAttestation({ report, vcek, ask: ask.der, ark: ark.der, trustedArks }).ok) throw new Error('floor verification failed');
    };
    const rate = async (op: () => Promise<void>, ms: number) => {
      let k = 0;
      const t0 = performance.now();
      while (k < 3 || performance.now() - t0 < ms) {
        await op();
        k++;
      }
      return k / ((performance.now() - t0) / 1000);
    };
    await cold();
    await floor();
    const reps = options.short ? 1 : Number(process.env.BENCH_REPS ?? 7);
    const ms = options.short ? 200 : 500;
    const colds: number[] = [];
    const floors: number[] = [];
    for (let i = 0; i < reps; i++) {
      colds.push(await rate(cold, ms));
      floors.push(await rate(floor, ms));
    }
    return [{ scenario, unit: '/s', value: median(colds), reference: median(floors), ratio: median(colds.map((c, i) => c / floors[i])), target: TARGET }];
  } catch (e) {
    return [{ scenario, why: (e as Error).message.split('\n')[0] }];
  } finally {
    await stop?.();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
