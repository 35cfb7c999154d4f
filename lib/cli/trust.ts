// CLI options shared by commands that need the AMD CA chain: --ca FILE, --trust-ark, --offline.
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';

import { arkFingerprint, CaCertificate, parseAskArk, spkiSha256, type TrustedArk } from '../certs';
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
--trust-ark (a certificate file, an ASK‖ARK file, or the ARK's SPKI SHA-256 in hex), or in
SEV_TRUST_ARK (comma-separated fingerprints), which \`sev-emu run --kds\` sets to its own ARK.`;

/** SEV_TRUST_ARK: comma-separated SPKI SHA-256 fingerprints of extra roots. */
function trustedArksFromEnv(env: NodeJS.ProcessEnv): string[] {
  const items = (env.SEV_TRUST_ARK ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!/^[0-9a-fA-F]{64}$/.test(item)) throw new UsageError(`SEV_TRUST_ARK: ${item} is not a 64-hex-digit SHA-256 fingerprint`);
  }
  return items.map((s) => s.toLowerCase());
}

/** --trust-ark values (a file holding an ARK — AMD format, ASK‖ARK, or X.509 — else a fingerprint) and SEV_TRUST_ARK. */
export function trustedArksFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): TrustedArk[] {
  const items = (values['trust-ark'] as string[] | undefined) ?? [];
  return [...items.map((item) => trustedArk(item)), ...trustedArksFromEnv(env)];
}

/** The same roots as SPKI SHA-256 fingerprints, the form the SNP verifier takes. */
export function trustedArkFingerprints(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): string[] {
  return trustedArksFrom(values, env).map((t) => (typeof t === 'string' ? t : arkFingerprint(t)));
}

function trustedArk(item: string): TrustedArk {
  if (!fs.existsSync(item)) {
    if (!/^[0-9a-fA-F]{64}$/.test(item)) {
      throw new UsageError(`--trust-ark ${item}: not a file and not a 64-hex-digit SHA-256 fingerprint`);
    }
    return item.toLowerCase();
  }
  const bytes = readFileArg('trust', '--trust-ark', item);
  const readers: Array<() => TrustedArk> = [
    () => parseAskArk(bytes).ark,
    () => CaCertificate.parse(bytes),
    // An X.509 ARK (SEV-SNP), PEM or DER; in a PEM bundle (ASK then ARK) the ARK is last.
    () => {
      const pems = bytes.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
      return spkiSha256(new X509Certificate(pems ? pems[pems.length - 1] : bytes).publicKey);
    },
  ];
  for (const read of readers) {
    try {
      return read();
    } catch {
      // try the next format
    }
  }
  throw new UsageError(`--trust-ark ${item}: not an ARK certificate (AMD format, ASK‖ARK, or X.509)`);
}

export function caOptionsFrom(values: Record<string, unknown>): CaOptions {
  return {
    caFile: values.ca as string | undefined,
    offline: Boolean(values.offline),
    trustedArks: trustedArksFrom(values),
  };
}
