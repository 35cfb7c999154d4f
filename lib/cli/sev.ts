// `sev`: the sevctl-compatible command line. Subcommand names and flags follow sevctl so scripts
// port over; every command also takes --json for machine-readable output.
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { type CliContext, defaultContext, reportError, UsageError } from './output';
import { commands } from './commands';

/** A subcommand's module exports one of these; its summary is in the registry (commands.ts). */
export interface Command {
  name: string;
  usage: string;
  options?: ParseArgsConfig['options'];
  run(ctx: CliContext, args: { values: Record<string, unknown>; positionals: string[] }): Promise<number>;
}

const GLOBAL_OPTIONS = {
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'sev — AMD SEV platform management (sevctl-compatible)',
    '',
    'Usage: sev [--json] [-q] <command> [args]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  --json       machine-readable output (one JSON document)',
    '  -q, --quiet  no output; the exit code tells',
    '  -h, --help   help for sev or a command',
    '',
    'Environment: SEV_DEVICE (default /dev/sev). Without SEV hardware, run under the',
    'firmware emulator: sev-emu run -- sev show flags',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // Global flags may come before the command name.
  const globalJson = argv.includes('--json');
  const globalQuiet = argv.includes('-q') || argv.includes('--quiet');
  const ctx = defaultContext(globalJson, globalQuiet);
  try {
    const rest = argv.filter((a) => a !== '--json' && a !== '-q' && a !== '--quiet');
    const name = rest.find((a) => !a.startsWith('-'));
    if (!name) {
      if (rest.includes('--help') || rest.includes('-h') || rest.length === 0) {
        ctx.out(mainHelp());
        return rest.length === 0 ? 2 : 0;
      }
      if (rest.includes('--version') || rest.includes('-V')) {
        ctx.out(require('../../../package.json').version);
        return 0;
      }
      throw new UsageError(`unknown option ${rest[0]}`);
    }
    const entry = commands.find((c) => c.name === name);
    if (!entry) throw new UsageError(`unknown command '${name}'`);
    const command = entry.load();
    const args = rest.slice(rest.indexOf(name) + 1);
    let parsed;
    try {
      parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
    } catch (e) {
      throw new UsageError(`${name}: ${(e as Error).message}`);
    }
    if (parsed.values.help) {
      ctx.out(`Usage: sev ${command.usage}\n\n${entry.summary}`);
      return 0;
    }
    const quietCtx: CliContext = ctx.quiet ? { ...ctx, out: () => {} } : ctx;
    return await command.run(quietCtx, parsed as { values: Record<string, unknown>; positionals: string[] });
  } catch (e) {
    return reportError(ctx.quiet ? { ...ctx, err: () => {}, out: () => {} } : ctx, e);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
