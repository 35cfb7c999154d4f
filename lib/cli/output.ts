// How CLI commands report: human text by default, one JSON document with --json; errors go to
// stderr (or as {"error": ...} with --json) and set a non-zero exit code.
import { SevError } from '../errors';

export interface CliContext {
  json: boolean;
  quiet: boolean;
  out: (line: string) => void;
  err: (line: string) => void;
}

export function defaultContext(json: boolean, quiet = false): CliContext {
  return {
    json,
    quiet,
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
  };
}

/** JSON.stringify that writes bigint as decimal strings and Buffers as hex. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) => {
      if (typeof v === 'bigint') return v.toString();
      if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
        return Buffer.from((v as { data: number[] }).data).toString('hex');
      }
      return v;
    },
    2,
  );
}

/** A usage mistake: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function reportError(ctx: CliContext, e: unknown): number {
  const usage = e instanceof UsageError;
  if (ctx.json) {
    const body =
      e instanceof SevError
        ? e.toJSON()
        : { name: (e as Error)?.name ?? 'Error', message: (e as Error)?.message ?? String(e) };
    ctx.out(toJson({ error: body }));
  } else {
    ctx.err(`error: ${(e as Error)?.message ?? String(e)}`);
    if (usage) ctx.err('Run with --help for usage.');
  }
  return usage ? 2 : 1;
}
