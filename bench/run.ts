// `npm run bench`: every benchmark, each printing its table with ratios against a reference
// measured in the same run. Exits non-zero when a target is missed.
//   --short   a quick run (what CI runs): fewer, shorter repetitions; targets shown, not enforced
//   --json    the SNP table as one JSON line
//   snp | stream | snp-stream | exits | hash | startup | calls   run only the named benchmarks
import { printRows, rowPasses } from './common';
import { callsBench } from './calls';
import { exitsBench } from './exits';
import { hashBench } from './hash';
import { snpBench } from './snp';
import { snpStreamBench } from './snp-stream';
import { startupBench } from './startup';
import { streamBench } from './stream';

async function main(): Promise<boolean> {
  const args = process.argv.slice(2);
  const short = args.includes('--short');
  const json = args.includes('--json');
  const only = args.filter((a) => !a.startsWith('--'));
  const wanted = (name: string) => only.length === 0 || only.includes(name);
  if (short) {
    // The streaming and exits benchmarks read their sizes from the environment.
    process.env.BENCH_SIZES_MIB ??= '16';
    process.env.BENCH_REPS ??= '1';
    process.env.BENCH_EXITS ??= '10000';
  }
  const results: boolean[] = [];
  if (wanted('stream')) results.push(streamBench());
  if (wanted('snp-stream')) results.push(snpStreamBench());
  if (wanted('exits')) results.push(exitsBench());
  if (wanted('hash')) {
    const rows = hashBench({ short });
    printRows(`Owner-side hashing vs openssl dgst on the same files, page cache warm${short ? ', short run' : ''}`, rows, json);
    results.push(rows.every((r) => rowPasses(r) !== false));
  }
  if (wanted('startup')) {
    const rows = startupBench({ short });
    printRows(`Start-up against a bare node, under the emulator${short ? ', short run' : ''}`, rows, json);
    results.push(rows.every((r) => rowPasses(r) !== false));
  }
  if (wanted('calls')) {
    const rows = callsBench({ short });
    printRows(`Call overhead against C, under the emulator${short ? ', short run' : ''}`, rows, json);
    results.push(rows.every((r) => rowPasses(r) !== false));
  }
  if (wanted('snp')) {
    const rows = await snpBench({ short });
    printRows(`SEV-SNP report verification per second (real Milan report)${short ? ', short run' : ''}`, rows, json);
    results.push(rows.every((r) => rowPasses(r) !== false));
  }
  return short || results.every(Boolean);
}

main().then(
  (ok) => {
    process.exitCode = ok ? 0 : 1;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
