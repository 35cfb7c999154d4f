// The SNP demo guest (guests/snp) against honest and dishonest hosts, run by snp-guest.test.ts in
// a fresh emulator with SNP and the emulated KDS: `node snp-guest-cases.js CASE` prints one JSON
// object (what the guest printed, how its run ended, the verifier's checks).
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';

import { KVM_CAP, Kvm } from '../../lib/kvm';
import { SevPlatform } from '../../lib/platform';
import { hostCertTable, runGuest, verify, type Verdict } from '../../scripts/demo-snp';
import { snpDemoFirmware, SNP_GUEST } from '../../scripts/guest-images';
import { launchSnpFirmware } from '../../scripts/snp-vmm';
import { calcLaunchDigest } from '../../lib/snp/measurement';

const EINVAL = 22;

async function main(name: string): Promise<Record<string, unknown>> {
  const platform = SevPlatform.open();
  const kvm = Kvm.open();
  const firmware = snpDemoFirmware();
  const hostData = randomBytes(32);
  // The demo's stack is the second SEV metadata section: a host that does not launch it leaves
  // the guest a stack it has not validated.
  // The host serves certificates with extended reports (KVM_EXIT_SNP_REQ_CERTS), except in
  // 'kds-certs', where KVM answers with an empty table and the verifier goes to the KDS.
  const serveCerts = name !== 'kds-certs';
  const guest = await launchSnpFirmware(kvm, platform, {
    ovmf: firmware, vcpus: 1, hostData: hostData.toString('hex'), omitSections: name === 'stack-not-launched' ? [1] : [],
    requestCertificates: serveCerts,
  });
  const cacheDir = path.join(os.tmpdir(), `snp-kds-${process.pid}`);
  // 'certs-too-big': a table larger than the guest's 4-page buffer (ENOSPC).
  const certTable = name === 'certs-too-big' ? Buffer.alloc(5 * 4096, 1) : serveCerts ? await hostCertTable(platform, cacheDir) : undefined;
  let served = false;
  try {
    if (name !== 'no-hypercall-exit') guest.vm.enableCap(KVM_CAP.EXIT_HYPERCALL, { args: [1n << 12n] });
    const measurement = calcLaunchDigest({ mode: 'snp', ovmf: firmware, vcpus: 1, vcpuSig: guest.signature }).toString('hex');
    const nonce = randomBytes(32);
    const secret = Buffer.from(`secret ${randomBytes(4).toString('hex')}`);
    let verdict: Verdict | undefined;
    const run = await runGuest(guest, nonce, async (report, key, table) => {
      if (name === 'tampered-report') report[0x90] ^= 1; // the host edits the measurement
      served = table.readUInt32LE(16) !== 0; // a first entry with a length: certificates came along
      verdict = await verify(report, key, nonce, { measurement, hostData }, cacheDir, table);
      if (!verdict.ok) return null;
      // The host takes the GHCB page back (private) behind the guest's back.
      if (name === 'ghcb-made-private') guest.vm.setMemoryAttributes({ address: SNP_GUEST.ghcb, size: 0x1000, private: true });
      return secret;
    }, {
      onPageState: (gpa) => (name === 'refuse-page-state' && gpa === 0x27000n ? EINVAL : 0),
      // Sealed correctly, then one ciphertext byte flipped in the shared exchange page.
      onSealed: (exchange) => {
        if (name === 'tampered-secret') exchange[SNP_GUEST.x.ct] ^= 1;
      },
      certTable,
    });
    const exit = run.exit && { reason: run.exit.reason, ...('type' in run.exit ? { type: run.exit.type, data: run.exit.data.map((d) => `0x${d.toString(16)}`) } : {}),
      ...(run.exit.reason === 'MEMORY_FAULT' ? { gpa: `0x${run.exit.gpa.toString(16)}`, private: run.exit.private } : {}) };
    return { printed: run.printed, halted: run.halted, exit, secret: secret.toString(), checks: verdict?.checks.map((c) => [c.check, c.ok]), served };
  } finally {
    guest.close();
    kvm.close();
    platform.close();
  }
}

main(process.argv[2]).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    console.log(JSON.stringify({ error: String((e as Error).stack ?? e) }));
    process.exitCode = 1;
  },
);
