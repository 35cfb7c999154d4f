// `sev snp ok` (snpguest's `ok`), run inside a guest: SEV, SEV-ES and SEV-SNP active according to
// the SEV_STATUS MSR, the guest features it lists, and an attestation path (/dev/sev-guest or
// configfs-tsm). One line per check with PASS / FAIL / SKIP, like the host's `sev ok`.
import { probeGuest } from '../snp/guest-probe';
import { toJson, type CliContext } from './output';

export function snpOk(ctx: CliContext): number {
  const report = probeGuest();
  if (ctx.json) {
    ctx.out(toJson({ ...report, sevStatus: report.sevStatus === undefined ? null : `0x${report.sevStatus.toString(16)}` }));
  } else {
    for (const c of report.checks) {
      ctx.out(`[ ${c.state} ] ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
      if (c.state === 'FAIL' && c.fix) ctx.out(`         fix: ${c.fix}`);
    }
    ctx.out(report.ok ? 'This is an SEV-SNP guest that can get attestation reports.' : 'Not an SEV-SNP guest with an attestation path (see above).');
  }
  return report.ok ? 0 : 1;
}
