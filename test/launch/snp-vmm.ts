// Runs one QEMU-style SNP launch (scripts/snp-vmm.ts) for snp-launch.test.ts, in the fresh
// emulator that test starts: `node snp-vmm.js '<json args>'` prints one JSON line.
import { runSnpVmm, type SnpVmmArgs } from '../../scripts/snp-vmm';

runSnpVmm(JSON.parse(process.argv[2]) as SnpVmmArgs).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    console.log(JSON.stringify({ ok: false, error: String(e) }));
    process.exitCode = 1;
  },
);
