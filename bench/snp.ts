// SEV-SNP report verification per second, on the real Milan report of shared/fixtures/snp, all in
// this process and in the same run:
//  - warm: SnpReportVerifier.verify (chain checked once, then signature, chip id and TCB per
//    report) against the floor, a bare crypto.verify of the same ECDSA P-384/SHA-384 signature
//    over the same 0x2A0 bytes with a cached KeyObject;
//  - against the npm peer @lit-protocol/sev-snp-utils-sdk (Rust → WASM, Milan only), which
//    verifies its built-in ARK → ASK → the given VCEK → report on every call: our warm path, and
//    verifyAttestation re-checking the chain on every call (like for like).
// Cold (the first VCEK and chain fetch, from the emulated KDS on loopback) is bench/snp-cold.ts.
import { verify, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { leToBeFixed } from '../lib/certs/keys';
import { parseCertChainPem, parseSnpCertificate } from '../lib/snp/certs';
import { REPORT_SIGNED_SIZE } from '../lib/snp/report';
import { SnpReportVerifier, verifyAttestation } from '../lib/snp/verify';
import { median, printRows, ROOT, type BenchOptions, type BenchRow } from './common';
import { snpColdBench } from './snp-cold';

const PEER = '@lit-protocol/sev-snp-utils-sdk';
const TARGET_FLOOR = 0.8;
/** "Far ahead of the peer". */
const TARGET_PEER_WARM = 10;
const TARGET_PEER_FULL = 1;

interface PeerSdk {
  initWasmSevSnpUtilsSdk(): Promise<unknown>;
  verify_attestation_report(reportBase64: string, vcekDer: Uint8Array): Promise<void>;
}

/** Calls `op` until `ms` have passed (at least `min` times); operations per second. */
async function rate(op: () => unknown, ms: number, min = 1): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (n < min || elapsed < ms) {
    await op();
    n++;
    elapsed = performance.now() - t0;
  }
  return n / (elapsed / 1000);
}

function syncRate(op: () => boolean, ms: number): Promise<number> {
  return rate(() => {
    if (!op()) throw new Error('a verification failed: the benchmark would measure the wrong path');
  }, ms);
}

/** The peer, or why it cannot be measured. */
async function loadPeer(report: Buffer, vcek: Buffer): Promise<{ sdk: PeerSdk } | { why: string }> {
  let sdk: PeerSdk;
  try {
    sdk = require(PEER) as PeerSdk;
    await sdk.initWasmSevSnpUtilsSdk();
  } catch (e) {
    return { why: `${PEER} did not load (${(e as Error).message.split('\n')[0]}); it needs pako installed beside it` };
  }
  try {
    await sdk.verify_attestation_report(report.toString('base64'), vcek);
  } catch (e) {
    return { why: `${PEER} rejects the real Milan report: ${String(e)}` };
  }
  return { sdk };
}

/** Runs the SNP verification benchmark; its rows, each with its target. */
export async function snpBench(options: BenchOptions): Promise<BenchRow[]> {
  const dir = path.join(process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures'), 'snp', 'milan');
  if (!fs.existsSync(path.join(dir, 'report.bin'))) {
    return [{ scenario: 'SNP report verification', why: `SNP fixtures not found at ${dir} (set SEV_FIXTURES)` }];
  }
  const report = fs.readFileSync(path.join(dir, 'report.bin'));
  const vcekDer = fs.readFileSync(path.join(dir, 'vcek.der'));
  const { ask, ark } = parseCertChainPem(fs.readFileSync(path.join(dir, 'cert_chain.pem')));
  const vcek = parseSnpCertificate(vcekDer);

  // The floor: one ECDSA verify, key, signature and signed bytes all prepared beforehand.
  const key: KeyObject = vcek.x509.publicKey;
  const signed = report.subarray(0, REPORT_SIGNED_SIZE);
  const rs = Buffer.concat([leToBeFixed(report.subarray(0x2a0, 0x2a0 + 72), 48)!, leToBeFixed(report.subarray(0x2a0 + 72, 0x2a0 + 144), 48)!]);
  const floor = () => verify('sha384', signed, { key, dsaEncoding: 'ieee-p1363' }, rs);

  const verifier = new SnpReportVerifier({ vcek, ask, ark });
  const warm = () => verifier.verify(report).ok;
  // Like the peer: every call verifies ARK → ASK → VCEK again (certificates already parsed).
  const full = () => verifyAttestation({ report, vcek, ask, ark }).ok;

  const peer = await loadPeer(report, vcekDer);
  const reportBase64 = report.toString('base64');
  const peerVerify = 'sdk' in peer ? () => peer.sdk.verify_attestation_report(reportBase64, vcekDer) : undefined;

  const ms = options.short ? 100 : 200;
  const reps = options.short ? 1 : Number(process.env.BENCH_REPS ?? 15);
  const runs: { floor: number[]; warm: number[]; full: number[]; peer: number[] } = { floor: [], warm: [], full: [], peer: [] };
  for (const op of [floor, warm, full]) await syncRate(op, 5); // warm up
  for (let i = 0; i < reps; i++) {
    // Alternate, so drift on a shared machine hits every side alike.
    runs.floor.push(await syncRate(floor, ms));
    runs.warm.push(await syncRate(warm, ms));
    runs.full.push(await syncRate(full, ms));
    // The peer takes ~0.1 s a call: a few calls per run.
    if (peerVerify) runs.peer.push(await rate(peerVerify, options.short ? 0 : ms, options.short ? 2 : 3));
  }
  const warmRate = median(runs.warm);
  const fullRate = median(runs.full);
  // The ratio to the floor is the median of the ratios of neighbouring runs: a shared machine's
  // load changes over seconds, and each pair ran within a fraction of one.
  const floorRatio = median(runs.warm.map((w, i) => w / runs.floor[i]));
  const rows: BenchRow[] = [
    { scenario: 'SNP verify warm (chain cached) vs crypto.verify floor', unit: '/s', value: warmRate, reference: median(runs.floor), ratio: floorRatio, target: TARGET_FLOOR },
  ];
  if (peerVerify) {
    const peerRate = median(runs.peer);
    rows.push(
      { scenario: `SNP verify warm vs ${PEER}`, unit: '/s', value: warmRate, reference: peerRate, target: TARGET_PEER_WARM },
      { scenario: `SNP verify with chain each call vs ${PEER}`, unit: '/s', value: fullRate, reference: peerRate, target: TARGET_PEER_FULL },
    );
  } else {
    rows.push({ scenario: `SNP verify vs ${PEER}`, why: (peer as { why: string }).why });
  }
  rows.push(...(await snpColdBench(options)));
  return rows;
}

if (require.main === module) {
  const short = process.argv.includes('--short');
  snpBench({ short }).then((rows) => {
    printRows(`SEV-SNP report verification (real Milan report), median of ${short ? 1 : process.env.BENCH_REPS ?? 15}`, rows, process.argv.includes('--json'));
  }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
