// `sev export [--full] FILE`: the platform's certificate chain in sevctl's file layout:
// PDH ‖ PEK ‖ OCA ‖ CEK (2084 bytes each), and with --full the AMD CA chain after it: ASK ‖ ARK.
import * as fs from 'node:fs';

import { SevPlatform } from '../platform';
import { resolveCaChain } from './ca';
import { toJson, UsageError } from './output';
import type { Command } from './sev';

export const exportCommand: Command = {
  name: 'export',
  summary: 'Export the SEV certificate chain (with --full, also the AMD ASK and ARK)',
  usage: 'export [--full] [--ca FILE] [--offline] [--json] <destination>',
  options: {
    full: { type: 'boolean', short: 'f' },
    ca: { type: 'string' },
    offline: { type: 'boolean' },
  },
  async run(ctx, { values, positionals }) {
    const dest = positionals[0];
    if (!dest) throw new UsageError('export: destination file required');
    const platform = SevPlatform.open({ writable: true });
    let parts: Buffer[];
    let ca: { generation: string; source: string } | undefined;
    try {
      const exp = await platform.pdhCertExport();
      const id = values.full ? await platform.getId() : undefined;
      parts = [exp.pdh, exp.pek, exp.oca, exp.cek];
      if (values.full) {
        const resolved = await resolveCaChain({
          cek: exp.cek,
          chipId: id!,
          caFile: values.ca as string | undefined,
          offline: Boolean(values.offline),
        });
        parts[3] = resolved.cek;
        parts.push(resolved.ask, resolved.ark);
        ca = { generation: resolved.generation, source: resolved.source };
      }
    } finally {
      platform.close();
    }
    const blob = Buffer.concat(parts);
    fs.writeFileSync(dest, blob);
    if (ctx.json) ctx.out(toJson({ destination: dest, bytes: blob.length, full: Boolean(values.full), ca }));
    return 0;
  },
};
