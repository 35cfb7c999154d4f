// CLI options shared by commands that need the AMD CA chain: --ca FILE, --trust-ark, --offline.
import * as fs from 'node:fs';

import { CaCertificate, parseAskArk, type TrustedArk } from '../certs';
import { readFileArg } from '../owner/inputs';
import type { CaOptions } from '../platform/ownership';
import { UsageError } from './output';

export const CA_OPTIONS = {
  ca: { type: 'string' },
  'trust-ark': { type: 'string', multiple: true },
  offline: { type: 'boolean' },
} as const;

export const CA_USAGE =
  '[--ca ASK_ARK_FILE] [--trust-ark FILE|SHA256] [--offline]';

export const CA_HELP = `AMD's ARKs (Naples … Turin) are pinned by key fingerprint and always trusted. Any other root —
such as the emulator's, written by \`sev-emu ca FILE\` — is trusted only when named with
--trust-ark (a certificate file, an ASK‖ARK file, or the ARK's SPKI SHA-256 in hex).`;

/** --trust-ark values: a file holding an ARK (or ASK‖ARK), else a fingerprint. */
export function trustedArksFrom(values: Record<string, unknown>): TrustedArk[] {
  const items = (values['trust-ark'] as string[] | undefined) ?? [];
  return items.map((item) => {
    if (fs.existsSync(item)) {
      const bytes = readFileArg('trust', '--trust-ark', item);
      try {
        return parseAskArk(bytes).ark;
      } catch {
        return CaCertificate.parse(bytes);
      }
    }
    if (!/^[0-9a-fA-F]{64}$/.test(item)) {
      throw new UsageError(`--trust-ark ${item}: not a file and not a 64-hex-digit SHA-256 fingerprint`);
    }
    return item.toLowerCase();
  });
}

export function caOptionsFrom(values: Record<string, unknown>): CaOptions {
  return {
    caFile: values.ca as string | undefined,
    offline: Boolean(values.offline),
    trustedArks: trustedArksFrom(values),
  };
}
