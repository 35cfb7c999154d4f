// `npm run demo -- --snp`: an SEV-SNP guest on the software machine (run by scripts/demo.ts in a
// fresh emulator with SNP enabled and the emulated AMD key distribution service on loopback):
//   host:     launches the demo guest (guests/snp, shaped like OVMF) through guest_memfd and
//             KVM_SEV_SNP_LAUNCH_*, and runs it, converting the pages it asks to share
//   guest:    validates memory, asks the firmware (through the GHCB, messages encrypted with its
//             VMPCK) for a key and for its attestation report, binding an X25519 key to it
//   verifier: checks the report — VCEK and chain from the KDS, signature, the measurement that
//             `sev snp measure` predicts for the same image, its nonce, host data, policy — and
//             only then encrypts a secret to the guest's key
//   guest:    decrypts the secret and prints it.
// The verifier trusts nothing the host says: the report and the guest's key are all it uses.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { KVM_CAP, Kvm, type VcpuExit } from '../lib/kvm';
import { native } from '../lib/native';
import { SevPlatform } from '../lib/platform';
import { buildCertTable, parseCertTable } from '../lib/snp/cert-table';
import { parseSnpCertificate } from '../lib/snp/certs';
import { getCertChain, getVcek, getVcekForReport, type KdsOptions } from '../lib/snp/kds';
import { decodeTcbVersion, parseAttestationReport, SNP_GENERATIONS, type SnpGeneration } from '../lib/snp/report';
import { formatAttestation, verifyAttestation } from '../lib/snp/verify';
import { snpDemoFirmware, SNP_GUEST } from './guest-images';
import { launchSnpFirmware, type SnpFirmwareGuest } from './snp-vmm';

const json = process.argv.includes('--json');
const say = (who: string, text: string) => {
  if (!json) console.log(`${`[${who}]`.padEnd(10)} ${text}`);
};
const short = (b: Uint8Array | string) => `${(typeof b === 'string' ? b : Buffer.from(b).toString('hex')).slice(0, 24)}…`;
const SEV_BIN = path.resolve(__dirname, '..', '..', 'bin', 'sev.js');
const KEY_INFO = 'node-sev snp demo: secret';
const X = SNP_GUEST.x;
const HC_MAP_GPA_RANGE = 12n;
const ENOSPC = 28;
const MAP_GPA_RANGE_ENCRYPTED = 0x10n;

export interface Verdict {
  ok: boolean;
  checks: Array<{ check: string; ok: boolean; detail: string }>;
}

const kdsOptions = (cacheDir: string): KdsOptions => ({ trustedArks: (process.env.SEV_TRUST_ARK ?? '').split(',').filter(Boolean), cacheDir });

/**
 * The host's certificate table for its guests' extended reports (what `sev snp cert-table
 * import` builds for snphost users): this chip's VCEK at the reported TCB, the ASK and the ARK,
 * from the KDS.
 */
export async function hostCertTable(platform: SevPlatform, cacheDir: string): Promise<Buffer> {
  const emulated = native.emulator();
  const generation: SnpGeneration = SNP_GENERATIONS.includes(emulated as SnpGeneration) ? (emulated as SnpGeneration) : 'milan';
  const tcb = decodeTcbVersion((await platform.snpStatus()).reportedTcbVersion, generation);
  const kds = kdsOptions(cacheDir);
  const { vcek } = await getVcek(generation, await platform.getId(), tcb, kds);
  const { ask, ark } = await getCertChain(generation, kds);
  return buildCertTable([{ guid: 'vcek', data: vcek.der }, { guid: 'ask', data: ask.der }, { guid: 'ark', data: ark.der }]);
}

/**
 * The verifier: everything it knows is its nonce, the expected measurement and host data. The
 * certificates come with the report (the guest's extended request) or, when the host served
 * none, from the KDS; either way the chain must end at a trusted ARK.
 */
export async function verify(
  reportBytes: Buffer, guestKey: Buffer, nonce: Buffer, expected: { measurement: string; hostData: Buffer }, cacheDir: string, certTable?: Buffer,
): Promise<Verdict> {
  const report = parseAttestationReport(reportBytes);
  const kds = kdsOptions(cacheDir);
  const trustedArks = kds.trustedArks!;
  const served = certTable ? parseCertTable(certTable) : [];
  const pick = (name: string) => {
    const e = served.find((c) => c.name === name);
    return e ? parseSnpCertificate(certTable!.subarray(e.offset, e.offset + e.length)) : undefined;
  };
  let vcek = pick('vcek');
  let ask = pick('ask');
  let ark = pick('ark');
  if (vcek && ask && ark) {
    say('verifier', `VCEK, ASK and ARK came with the report (the host served them: KVM_EXIT_SNP_REQ_CERTS)`);
  } else {
    const fetched = await getVcekForReport(report, kds);
    ({ ask, ark } = await getCertChain(report.generation, kds));
    vcek = fetched.vcek;
    say('verifier', `VCEK for chip ${short(report.chipId)} at TCB 0x${report.reportedTcb.raw.toString(16)} from ${new URL(fetched.source).origin} (KDS)`);
  }
  const chain = verifyAttestation({ report: reportBytes, vcek, ask, ark, trustedArks });
  if (!json) console.log(formatAttestation(chain).replace(/^/gm, '           '));
  const bound = Buffer.concat([nonce, createHash('sha256').update(guestKey).digest()]);
  const checks = [
    { check: 'signature and chain', ok: chain.ok, detail: `ARK ${short(chain.arkFingerprint ?? '')} (the emulator's, trusted explicitly)` },
    { check: 'measurement', ok: report.measurement.toString('hex') === expected.measurement, detail: `${short(report.measurement)} = sev snp measure's` },
    { check: 'report data', ok: report.reportData.equals(bound), detail: 'our nonce and the SHA-256 of the guest\'s key' },
    { check: 'host data', ok: report.hostData.equals(expected.hostData), detail: short(report.hostData) },
    { check: 'policy', ok: !report.policy.debug && report.vmpl === 0, detail: `0x${report.policy.raw.toString(16)}, no debugging, VMPL 0` },
  ];
  for (const c of checks) say('verifier', `${c.ok ? '✅' : '❌'} ${c.check}: ${c.detail}`);
  return { ok: checks.every((c) => c.ok), checks };
}

/** X25519 to the guest's key, HKDF-SHA256 with the nonce, AES-256-GCM bound to the guest's key. */
export function sealSecret(secret: Buffer, guestKey: Buffer, nonce: Buffer) {
  const peer = generateKeyPairSync('x25519');
  const peerRaw = Buffer.from(peer.publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const guestPublic = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: guestKey.toString('base64url') }, format: 'jwk' });
  const shared = diffieHellman({ privateKey: peer.privateKey, publicKey: guestPublic });
  const key = Buffer.from(hkdfSync('sha256', shared, nonce, KEY_INFO, 32));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(guestKey);
  const ct = Buffer.concat([cipher.update(secret), cipher.final()]);
  return { peer: peerRaw, iv, tag: cipher.getAuthTag(), ct };
}

/**
 * Runs the demo guest to HLT as its host: page-state changes become memory attribute changes
 * (or `hooks.onPageState` decides), its text is collected, and when its report is ready
 * `onReport` says which secret to seal to the guest's key (null: none, the guest stays waiting).
 */
export async function runGuest(
  guest: SnpFirmwareGuest,
  nonce: Buffer,
  onReport: (report: Buffer, key: Buffer, certTable: Buffer) => Promise<Buffer | null>,
  hooks: {
    onPageState?: (gpa: bigint, priv: boolean) => number;
    onSealed?: (exchange: Buffer) => void;
    /** The certificate table the host serves for an extended report (KVM_EXIT_SNP_REQ_CERTS). */
    certTable?: Buffer;
  } = {},
): Promise<{ printed: string; halted: boolean; exit?: VcpuExit }> {
  const xchg = (offset: number, length: number) => Buffer.from(guest.ram.bytes(SNP_GUEST.exchange + offset, length).buffer, guest.ram.bytes(SNP_GUEST.exchange + offset, length).byteOffset, length);
  xchg(X.nonce, 32).set(nonce);
  const vcpu = guest.vcpus[0];
  let printed = '';
  let shared = 0;
  for (let i = 0; i < 10000; i++) {
    const e = await vcpu.run();
    if (e.reason === 'HYPERCALL' && e.nr === HC_MAP_GPA_RANGE) {
      // A page-state change: the guest wants these pages private or shared.
      const priv = (e.args[2] & MAP_GPA_RANGE_ENCRYPTED) !== 0n;
      const refused = hooks.onPageState?.(e.args[0], priv) ?? 0;
      if (!refused) guest.vm.setMemoryAttributes({ address: e.args[0], size: e.args[1] * 4096n, private: priv });
      if (!priv && !refused) shared++;
      vcpu.completeHypercall(refused);
    } else if (e.reason === 'IO' && e.port === SNP_GUEST.portText) {
      printed += Buffer.from(e.data).toString('utf8');
    } else if (e.reason === 'IO' && e.port === SNP_GUEST.portEvent && e.data[0] === SNP_GUEST.eventReportReady) {
      say('host', `the guest made ${shared} pages shared (GHCB, request, response, exchange, certificates) and validated one itself`);
      const released = await onReport(Buffer.from(xchg(X.report, 0x4a0)), Buffer.from(xchg(X.pub, 32)),
        Buffer.from(guest.ram.bytes(SNP_GUEST.certs.gpa, SNP_GUEST.certs.pages * 4096)));
      if (!released) return { printed, halted: false, exit: e };
      const sealed = sealSecret(released, Buffer.from(xchg(X.pub, 32)), nonce);
      xchg(X.peer, 32).set(sealed.peer);
      xchg(X.iv, 12).set(sealed.iv);
      xchg(X.tag, 16).set(sealed.tag);
      xchg(X.ctLen, 4).writeUInt32LE(sealed.ct.length);
      xchg(X.ct, sealed.ct.length).set(sealed.ct);
      hooks.onSealed?.(xchg(0, 0x1000));
      say('host', `passed ${sealed.ct.length} bytes of ciphertext to the guest: ${short(sealed.ct)}`);
    } else if (e.reason === 'SNP_REQ_CERTS') {
      // The guest's extended report request: its certificate buffer, in its shared memory.
      const table = hooks.certTable ?? Buffer.alloc(0);
      const room = Number(e.npages) * 4096;
      if (table.length > room) {
        vcpu.completeSnpReqCerts(ENOSPC, Math.ceil(table.length / 4096));
      } else {
        guest.ram.bytes(Number(e.gpa), room).fill(0).set(table);
        vcpu.completeSnpReqCerts(0);
      }
    } else if (e.reason === 'HLT') {
      return { printed, halted: true };
    } else {
      return { printed, halted: false, exit: e }; // anything else ends the run: the caller decides
    }
  }
  throw new Error('the guest did not halt');
}

async function main(): Promise<void> {
  const platform = SevPlatform.open();
  const kvm = Kvm.open();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snp-demo-'));
  let guest: SnpFirmwareGuest | undefined;
  try {
    if (!json) console.log('node-sev demo: an SEV-SNP guest on the software machine, attested, then given a secret\n');
    const firmware = snpDemoFirmware();
    const firmwareFile = path.join(dir, 'snp-demo.fd');
    fs.writeFileSync(firmwareFile, firmware);
    const hostData = randomBytes(32);
    guest = await launchSnpFirmware(kvm, platform, { ovmf: firmware, vcpus: 1, hostData: hostData.toString('hex'), requestCertificates: true });
    say('host', `launched the ${firmware.length / 1024} KiB guest image at 0xffff0000 through guest_memfd: SNP_LAUNCH_START, UPDATE (measured, zero, secrets and CPUID pages), FINISH`);

    const m = spawnSync(process.execPath, [SEV_BIN, 'snp', 'measure', '--ovmf', firmwareFile, '--vcpus', '1', '--vcpu-sig', `0x${guest.signature.toString(16)}`], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`sev snp measure failed: ${m.stderr}`);
    const measurement = m.stdout.trim();
    say('verifier', `expects measurement ${short(measurement)} (sev snp measure --ovmf snp-demo.fd --vcpus 1 --vcpu-sig 0x${guest.signature.toString(16)})`);
    const nonce = randomBytes(32);
    const secret = Buffer.from(`the SNP launch secret is ${randomBytes(6).toString('hex')}`);

    guest.vm.enableCap(KVM_CAP.EXIT_HYPERCALL, { args: [1n << HC_MAP_GPA_RANGE] });
    let verdict: Verdict | undefined;
    const certTable = await hostCertTable(platform, path.join(dir, 'kds'));
    say('host', `certificate table for guests' extended reports: VCEK, ASK, ARK (${certTable.length} bytes, from the KDS)`);
    const run = await runGuest(guest, nonce, async (report, key, table) => {
      say('guest', `report ready (extended MSG_REPORT_REQ through the GHCB), bound to X25519 key ${short(key)}`);
      verdict = await verify(report, key, nonce, { measurement, hostData }, path.join(dir, 'kds'), table);
      if (!verdict.ok) return null;
      say('verifier', 'the report verifies: releasing the secret, encrypted to the guest\'s key');
      return secret;
    }, { certTable });
    if (run.exit) throw new Error(`unexpected guest exit ${JSON.stringify(run.exit, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
    say('guest', `"${run.printed}"`);
    const ok = !!verdict?.ok && run.halted && run.printed === secret.toString();
    if (json) console.log(JSON.stringify({ ok, measurement, checks: verdict?.checks, guestPrinted: run.printed }, null, 2));
    else console.log(ok ? '\nThe guest printed the secret that only its verified report could receive.' : '\nFAILED: the guest did not get the secret');
    if (!ok) process.exitCode = 1;
  } finally {
    guest?.close();
    kvm.close();
    platform.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e) => {
    if (json) console.log(JSON.stringify({ ok: false, error: (e as Error).message }));
    else console.error(`demo failed: ${(e as Error).stack}`);
    process.exitCode = 1;
  });
}
