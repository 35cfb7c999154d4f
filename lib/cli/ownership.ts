// sevctl's ownership commands: generate, provision, rotate, reset, verify.

import { formatChainReport, spkiSha256, splitChainFile } from '../certs';
import { readFileArg } from '../owner/inputs';
import { SevPlatform } from '../platform';
import { createOca, exportChain, readOca, provision, resolveCa, verifyPlatformChain, writeOca } from '../platform/ownership';
import { toJson, UsageError } from './output';
import type { Command } from './sev';
import { CA_HELP, CA_OPTIONS, CA_USAGE, caOptionsFrom } from './trust';

function withPlatform<T>(writable: boolean, f: (p: SevPlatform) => Promise<T>): Promise<T> {
  const platform = SevPlatform.open({ writable });
  return f(platform).finally(() => platform.close());
}

export const generateCommand: Command = {
  name: 'generate',
  usage: 'generate [--json] <cert> <key>   (the key is written as PKCS#8 PEM, mode 0600)',
  async run(ctx, { positionals }) {
    const [cert, key] = positionals;
    if (!cert || !key) throw new UsageError('generate: OCA certificate and key paths required');
    const oca = createOca();
    writeOca(oca, cert, key);
    if (ctx.json) ctx.out(toJson({ cert, key, fingerprint: spkiSha256(oca.cert.publicKey) }));
    return 0;
  },
};

export const provisionCommand: Command = {
  name: 'provision',
  usage: 'provision [--json] <cert> <key>',
  async run(ctx, { positionals }) {
    const [cert, key] = positionals;
    if (!cert || !key) throw new UsageError('provision: OCA certificate and key paths required');
    const oca = readOca(cert, key);
    await withPlatform(true, (p) => provision(p, oca));
    if (ctx.json) ctx.out(toJson({ provisioned: true }));
    return 0;
  },
};

export const rotateCommand: Command = {
  name: 'rotate',
  usage: 'rotate [--json]',
  async run(ctx) {
    await withPlatform(true, (p) => p.pdhGen());
    if (ctx.json) ctx.out(toJson({ rotated: 'PDH' }));
    return 0;
  },
};

export const resetCommand: Command = {
  name: 'reset',
  usage: 'reset [--json]',
  async run(ctx) {
    await withPlatform(true, (p) => p.factoryReset());
    if (ctx.json) ctx.out(toJson({ reset: true }));
    return 0;
  },
};

export const verifyCommand: Command = {
  name: 'verify',
  usage: `verify [--sev CHAIN_FILE] [--oca OCA_FILE] ${CA_USAGE} [--json]\n\n` +
    'CHAIN_FILE is what `sev export` writes (PDH‖PEK‖OCA‖CEK, optionally ‖ASK‖ARK).\n' + CA_HELP,
  options: { sev: { type: 'string' }, oca: { type: 'string' }, ...CA_OPTIONS },
  async run(ctx, { values }) {
    const ca = caOptionsFrom(values);
    let chain: Parameters<typeof verifyPlatformChain>[0];
    if (values.sev) {
      chain = splitChainFile(readFileArg('verify', '--sev', values.sev as string));
    } else {
      chain = await withPlatform(true, (p) => exportChain(p, { ...ca, full: false }));
    }
    if (values.oca) chain.oca = readFileArg('verify', '--oca', values.oca as string);
    if (values.ca || !chain.ark) {
      const resolved = await resolveCa(chain.cek!, ca);
      chain.ask = resolved.ask.toBuffer();
      chain.ark = resolved.ark.toBuffer();
    }
    const report = verifyPlatformChain(chain, ca.trustedArks);
    if (ctx.json) ctx.out(toJson(report));
    else ctx.out(formatChainReport(report));
    return report.ok ? 0 : 1;
  },
};
