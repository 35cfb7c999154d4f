// `sev ok [sev|es|snp]`: the host probe, one line per check with PASS / FAIL / SKIP.
import { probe, type ProbeLevel } from '../platform/probe';
import { toJson, UsageError } from './output';
import type { Command } from './sev';

export const okCommand: Command = {
  name: 'ok',
  usage: 'ok [sev|es|snp] [--json]',
  async run(ctx, { positionals }) {
    const level = (positionals[0] ?? 'sev') as ProbeLevel;
    if (!['sev', 'es', 'snp'].includes(level)) throw new UsageError('ok: level must be sev, es or snp');
    const report = await probe(level);
    if (ctx.json) {
      ctx.out(toJson(report));
    } else {
      if (report.emulated) ctx.out(`(running under the SEV firmware emulator: ${report.emulated})`);
      for (const c of report.checks) {
        ctx.out(`[ ${c.state} ] ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
        if (c.state === 'FAIL' && c.fix) ctx.out(`         fix: ${c.fix}`);
      }
      ctx.out(report.ok ? `All ${level.toUpperCase()} checks passed.` : `Some ${level.toUpperCase()} checks failed.`);
    }
    return report.ok ? 0 : 1;
  },
};
