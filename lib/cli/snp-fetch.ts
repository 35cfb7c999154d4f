// `sev snp fetch ca|vcek|crl` (snpguest's verbs): certificates and CRLs from AMD's KDS (or the
// cache, or only the cache with --offline) into a directory.
//   sev snp fetch ca --generation G [--endorser vcek|vlek] OUT_DIR     → ark.pem, ask.pem (asvk.pem)
//   sev snp fetch vcek REPORT OUT_DIR [--generation G]                 → vcek.der
//   sev snp fetch crl --generation G [--endorser vcek|vlek] OUT_DIR    → crl.der
// Everything is fetched and checked before the first file is written; files are written atomically.
import * as path from 'node:path';

import { makeOutputDir, writeOutputFiles } from '../output-files';
import { readFileArg } from '../owner/inputs';
import { getCertChain, getCrl, getVcekForReport, type Endorser, type KdsOptions } from '../snp/kds';
import { parseAttestationReport, SNP_GENERATIONS, type SnpGeneration } from '../snp/report';
import { toJson, UsageError, type CliContext } from './output';
import { trustedArkFingerprints } from './trust';

export const FETCH_OPTIONS = {
  offline: { type: 'boolean' },
  kds: { type: 'string' },
  endorser: { type: 'string' },
} as const;

export const FETCH_USAGE = [
  '       sev snp fetch ca --generation G [--endorser vcek|vlek] OUT_DIR   (ark.pem, ask.pem or asvk.pem)',
  '       sev snp fetch vcek REPORT OUT_DIR [--generation G]                (vcek.der for the report\'s chip id and TCB)',
  '       sev snp fetch crl --generation G [--endorser vcek|vlek] OUT_DIR  (crl.der)',
  '         fetch options: --offline (cache only), --kds URL (default $SEV_KDS_URL or https://kdsintf.amd.com),',
  '         --trust-ark FILE|SHA256 (a root besides AMD\'s pinned ARKs, e.g. the emulator\'s)',
];

const COMMAND = 'snp fetch';

export async function snpFetch(ctx: CliContext, v: Record<string, unknown>, noun: string | undefined, args: string[]): Promise<number> {
  const generation = v.generation as string | undefined;
  if (generation !== undefined && !(SNP_GENERATIONS as readonly string[]).includes(generation)) {
    throw new UsageError(`${COMMAND}: --generation must be one of ${SNP_GENERATIONS.join(', ')}`);
  }
  const endorser = (v.endorser as string | undefined) ?? 'vcek';
  if (endorser !== 'vcek' && endorser !== 'vlek') throw new UsageError(`${COMMAND}: --endorser must be vcek or vlek`);
  const opts: KdsOptions & { endorser: Endorser } = {
    offline: Boolean(v.offline),
    baseUrl: v.kds as string | undefined,
    endorser,
    trustedArks: trustedArkFingerprints(v),
  };
  const needGeneration = (): SnpGeneration => {
    if (!generation) throw new UsageError(`${COMMAND} ${noun}: --generation ${SNP_GENERATIONS.join('|')} is required`);
    return generation as SnpGeneration;
  };
  const outDir = (expected: number) => {
    if (args.length !== expected) throw new UsageError(`${COMMAND} ${noun}: expected ${expected === 1 ? 'OUT_DIR' : 'REPORT OUT_DIR'}`);
    return args[expected - 1];
  };

  const files: { name: string; bytes: Buffer; source: string }[] = [];
  if (noun === 'ca') {
    const dir = outDir(1);
    const chain = await getCertChain(needGeneration(), opts);
    files.push({ name: path.join(dir, 'ark.pem'), bytes: Buffer.from(chain.ark.x509.toString()), source: chain.source });
    files.push({ name: path.join(dir, endorser === 'vcek' ? 'ask.pem' : 'asvk.pem'), bytes: Buffer.from(chain.ask.x509.toString()), source: chain.source });
  } else if (noun === 'vcek') {
    const dir = outDir(2);
    const report = parseAttestationReport(readFileArg(COMMAND, 'report', args[0]), { generation: generation as SnpGeneration | undefined });
    const vcek = await getVcekForReport(report, opts);
    files.push({ name: path.join(dir, 'vcek.der'), bytes: vcek.bytes, source: vcek.source });
  } else if (noun === 'crl') {
    const dir = outDir(1);
    const crl = await getCrl(needGeneration(), opts);
    files.push({ name: path.join(dir, 'crl.der'), bytes: crl.bytes, source: crl.source });
  } else {
    throw new UsageError(`${COMMAND}: expected ca, vcek or crl, got '${noun ?? ''}'`);
  }
  // Like snpguest, the output directory is created when missing.
  for (const dir of new Set(files.map((f) => path.dirname(f.name)))) makeOutputDir(COMMAND, dir);
  writeOutputFiles(COMMAND, files.map((f) => ({ path: f.name, data: f.bytes })));
  ctx.out(ctx.json ? toJson({ files: files.map((f) => ({ file: f.name, source: f.source })) })
    : files.map((f) => `${f.name} (from ${f.source})`).join('\n'));
  return 0;
}
