// `sev export [--full] FILE`: the platform's certificate chain in sevctl's file layout:
// PDH ‖ PEK ‖ OCA ‖ CEK (2084 bytes each), and with --full the AMD CA chain after it: ASK ‖ ARK.

import { writeOutputFile } from '../output-files';
import { SevPlatform } from '../platform';
import { exportChain } from '../platform/ownership';
import { toJson, UsageError } from './output';
import type { Command } from './sev';
import { CA_HELP, CA_OPTIONS, CA_USAGE, caOptionsFrom } from './trust';

export const exportCommand: Command = {
  name: 'export',
  usage: `export [--full] ${CA_USAGE} [--json] <destination>\n\n${CA_HELP}`,
  options: { full: { type: 'boolean', short: 'f' }, ...CA_OPTIONS },
  async run(ctx, { values, positionals }) {
    const dest = positionals[0];
    if (!dest) throw new UsageError('export: destination file required');
    const platform = SevPlatform.open({ writable: true });
    let chain;
    try {
      chain = await exportChain(platform, { full: Boolean(values.full), ...caOptionsFrom(values) });
    } finally {
      platform.close();
    }
    const parts = [chain.pdh, chain.pek, chain.oca, chain.cek];
    if (values.full) parts.push(chain.ask!, chain.ark!);
    const blob = Buffer.concat(parts);
    writeOutputFile('export', dest, blob);
    if (ctx.json) {
      ctx.out(toJson({
        destination: dest,
        bytes: blob.length,
        full: Boolean(values.full),
        cek: chain.cekSource,
        ca: chain.ca ? { generation: chain.ca.generation ?? null, source: chain.ca.source } : undefined,
      }));
    }
    return 0;
  },
};
