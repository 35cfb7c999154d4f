// `sev session [--name N] PDH_OR_CHAIN POLICY`: the guest owner's launch session, written as
// sevctl writes it — <name>_godh.b64, <name>_session.b64 (base64), <name>_tek.bin, <name>_tik.bin.
// Given a chain (what `sev export --full` writes), the chain is verified before its PDH is used.

import { formatChainReport, SEV_CERT_SIZE, splitChainFile, type TrustedArk } from '../certs';
import { SevCertificateError } from '../errors';
import { SECRET_MODE, writeOutputFiles } from '../output-files';
import { parseIntOrHex, readFileArg } from '../owner/inputs';
import { createLaunchSession } from '../owner/session';
import { resolveCa, verifyPlatformChain } from '../platform/ownership';
import { toJson, UsageError } from './output';
import type { Command } from './sev';
import { CA_HELP, CA_OPTIONS, CA_USAGE, caOptionsFrom } from './trust';

export const sessionCommand: Command = {
  name: 'session',
  usage: `session [--name NAME] ${CA_USAGE} [--json] <pdh-or-chain> <policy>\n\n` +
    '<pdh-or-chain>: a PDH certificate (2084 bytes; cannot be verified on its own), or the chain\n' +
    'from `sev export` / `sev export --full`, which is verified link by link first.\n' +
    'Writes NAME_godh.b64, NAME_session.b64, NAME_tek.bin, NAME_tik.bin (NAME defaults to vm).\n' + CA_HELP,
  options: { name: { type: 'string', short: 'n' }, ...CA_OPTIONS },
  async run(ctx, { values, positionals }) {
    const [file, policyText] = positionals;
    if (!file || policyText === undefined) throw new UsageError('session: PDH (or chain) file and policy required');
    const policy = parseIntOrHex('session', 'policy', policyText);
    const bytes = readFileArg('session', 'PDH_OR_CHAIN', file);
    let pdh: Buffer;
    let verified = false;
    if (bytes.length === SEV_CERT_SIZE) {
      pdh = bytes;
      if (!ctx.json) ctx.err('warning: a PDH on its own cannot be verified; pass the chain from `sev export --full` to verify it');
    } else {
      const chain = splitChainFile(bytes);
      const ca = caOptionsFrom(values);
      const trusted: TrustedArk[] = [...(ca.trustedArks ?? [])];
      if (values.ca || !chain.ark) {
        const resolved = await resolveCa(chain.cek, ca);
        chain.ask = resolved.ask.toBuffer();
        chain.ark = resolved.ark.toBuffer();
      }
      const report = verifyPlatformChain(chain, trusted);
      if (!report.ok) {
        throw new SevCertificateError('session', `the platform chain does not verify:\n${formatChainReport(report)}`);
      }
      pdh = chain.pdh;
      verified = true;
    }
    const s = createLaunchSession(pdh, policy);
    const name = (values.name as string | undefined) ?? 'vm';
    const files = {
      godh: `${name}_godh.b64`,
      session: `${name}_session.b64`,
      tek: `${name}_tek.bin`,
      tik: `${name}_tik.bin`,
    };
    writeOutputFiles('session', [
      { path: files.tek, data: s.tek, mode: SECRET_MODE },
      { path: files.tik, data: s.tik, mode: SECRET_MODE },
      { path: files.session, data: s.session.toString('base64') },
      { path: files.godh, data: s.godhCert.toString('base64') },
    ]);
    if (ctx.json) ctx.out(toJson({ files, policy, chainVerified: verified }));
    return 0;
  },
};
