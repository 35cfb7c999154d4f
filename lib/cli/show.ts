// `sev show flags|guests|version|identifier` (sevctl's output format; --json for all fields).
import { SevPlatform } from '../platform/platform';
import { toJson, UsageError } from './output';
import type { Command } from './sev';

const WHAT = ['flags', 'guests', 'version', 'identifier', 'status'] as const;

export const showCommand: Command = {
  name: 'show',
  usage: 'show <flags|guests|version|identifier|status> [--json]',
  async run(ctx, { positionals }) {
    const what = positionals[0] as (typeof WHAT)[number];
    if (!WHAT.includes(what)) throw new UsageError(`show: expected one of ${WHAT.join(', ')}`);
    const platform = SevPlatform.open({ writable: false });
    try {
      if (what === 'identifier') {
        const id = (await platform.getId()).toString('hex').toUpperCase();
        ctx.out(ctx.json ? toJson({ identifier: id }) : id);
        return 0;
      }
      const s = await platform.status();
      if (ctx.json) {
        const views = {
          flags: { owned: s.owned, es: s.es, flags: s.flags },
          guests: { guests: s.guestCount },
          version: { version: s.version, api: s.api, build: s.build },
          status: s,
        };
        ctx.out(toJson(views[what]));
      } else if (what === 'flags') {
        if (s.owned) ctx.out('owned');
        if (s.es) ctx.out('es');
      } else if (what === 'guests') {
        ctx.out(String(s.guestCount));
      } else if (what === 'version') {
        ctx.out(s.version);
      } else {
        ctx.out(`api ${s.api.major}.${s.api.minor}, build ${s.build}, state ${s.state}, ` +
          `${s.owned ? 'owned' : 'self-owned'}${s.es ? ', es' : ''}, guests ${s.guestCount}`);
      }
      return 0;
    } finally {
      platform.close();
    }
  },
};
