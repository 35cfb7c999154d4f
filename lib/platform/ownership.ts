// Platform ownership (SEV API spec 55766, "Platform ownership"): an owner's certificate authority
// (OCA) signs the platform's PEK; PEK_CERT_IMPORT makes the platform externally owned. Also the
// owner's key rotation and reset, and chain export/verification with the AMD CA resolved.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';

import {
  type AmdCaChain,
  type ChainReport,
  getCek,
  generateOca,
  getAskArkForCek,
  loadAskArkFile,
  SevCertificate,
  type TrustedArk,
  Usage,
  verifyChain,
} from '../certs';
import { fileErrorText, SevArgumentError, SevCertificateError } from '../errors';
import { SECRET_MODE, writeOutputFiles } from '../output-files';
import { SevPlatform } from './platform';

export interface OcaKeyPair {
  cert: SevCertificate;
  privateKey: KeyObject;
}

/** A new self-signed P-384 OCA (what `sev generate` writes). */
export function createOca(apiVersion?: { major: number; minor: number }): OcaKeyPair {
  return generateOca(apiVersion ? { apiMajor: apiVersion.major, apiMinor: apiVersion.minor } : {});
}

/** Writes the OCA certificate (SEV format) and its private key (PKCS#8 PEM, mode 0600). */
export function writeOca(oca: OcaKeyPair, certPath: string, keyPath: string): void {
  const pem = oca.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeOutputFiles('generate', [
    { path: keyPath, data: pem, mode: SECRET_MODE },
    { path: certPath, data: oca.cert.toBuffer() },
  ]);
}

/**
 * Reads an OCA certificate and its private key (PEM, or DER as sevctl writes it: SEC1 or PKCS#8),
 * and checks that they belong together and that the certificate is a self-signed OCA.
 */
export function readOca(certPath: string, keyPath: string): OcaKeyPair {
  const read = (p: string, what: string) => {
    try {
      return fs.readFileSync(p);
    } catch (e) {
      throw new SevArgumentError('provision', `${what}: ${fileErrorText('read', p, e)}`);
    }
  };
  const cert = SevCertificate.parse(read(certPath, 'OCA certificate'));
  if (cert.usage !== Usage.OCA) throw new SevCertificateError('provision', `${certPath} is not an OCA certificate`);
  const self = cert.verifySignature(cert);
  if (!self.ok) throw new SevCertificateError('provision', `${certPath} is not validly self-signed: ${self.reason}`);
  const keyBytes = read(keyPath, 'OCA private key');
  let privateKey: KeyObject | undefined;
  const attempts: Array<() => KeyObject> = [
    () => createPrivateKey(keyBytes),
    () => createPrivateKey({ key: keyBytes, format: 'der', type: 'sec1' }),
    () => createPrivateKey({ key: keyBytes, format: 'der', type: 'pkcs8' }),
  ];
  for (const attempt of attempts) {
    try {
      privateKey = attempt();
      break;
    } catch {
      /* try the next encoding */
    }
  }
  if (!privateKey) throw new SevArgumentError('provision', `${keyPath} is not a PEM or DER private key`);
  const probe = SevCertificate.create({ usage: Usage.PEK, publicKey: cert.publicKey }).signedBy({ privateKey, usage: Usage.OCA });
  if (!probe.verifySignature(cert).ok) {
    throw new SevArgumentError('provision', `the key in ${keyPath} does not belong to the OCA in ${certPath}`);
  }
  return { cert, privateKey };
}

/**
 * Takes ownership: PEK_CSR → sign the PEK with the OCA → PEK_CERT_IMPORT(PEK, OCA).
 * The firmware refuses (ALREADY_OWNED) when another owner got there first.
 */
export async function provision(platform: SevPlatform, oca: OcaKeyPair): Promise<void> {
  const csr = SevCertificate.parse(await platform.pekCsr());
  if (csr.usage !== Usage.PEK) throw new SevCertificateError('provision', 'PEK_CSR did not return a PEK');
  const signed = csr.signedBy({ privateKey: oca.privateKey, usage: Usage.OCA }, 0);
  await platform.pekCertImport(signed.toBuffer(), oca.cert.toBuffer());
}

/** Options for finding the AMD CA chain (ASK/ARK) and an ASK-signed CEK. */
export interface CaOptions {
  /** An ask_ark file (ASK ‖ ARK). Otherwise the cache, then AMD's servers. */
  caFile?: string;
  /** Never use the network. */
  offline?: boolean;
  /** Non-AMD ARKs to trust (e.g. the emulator's); AMD's ARKs are pinned and always trusted. */
  trustedArks?: readonly TrustedArk[];
  cacheDir?: string | null;
  timeoutMs?: number;
}

export interface PlatformChain {
  pdh: Buffer;
  pek: Buffer;
  oca: Buffer;
  cek: Buffer;
  ask?: Buffer;
  ark?: Buffer;
  /** Where the CEK came from: the platform's export, or AMD's KDS. */
  cekSource: 'platform' | 'kds';
  ca?: AmdCaChain;
}

/**
 * The platform's chain as `sev export` writes it. The CEK that firmware exports may lack the
 * ASK's signature (AMD signs CEKs off-chip): then the signed CEK comes from AMD's KDS by chip id.
 * With `full`, the ASK and ARK are resolved too.
 */
export async function exportChain(platform: SevPlatform, opts: CaOptions & { full?: boolean } = {}): Promise<PlatformChain> {
  const exp = await platform.pdhCertExport();
  let cek = SevCertificate.parse(exp.cek);
  let cekSource: PlatformChain['cekSource'] = 'platform';
  const askSigned = cek.signatures.some((s) => s.usage === Usage.ASK);
  if (!askSigned && opts.full) {
    if (opts.offline) {
      throw new SevCertificateError('export', 'the firmware exported an unsigned CEK and --offline forbids fetching the signed one from AMD KDS');
    }
    cek = await getCek(await platform.getId(), { timeoutMs: opts.timeoutMs, cacheDir: opts.cacheDir });
    cekSource = 'kds';
  }
  const chain: PlatformChain = { pdh: exp.pdh, pek: exp.pek, oca: exp.oca, cek: cek.toBuffer(), cekSource };
  if (opts.full) {
    const ca = await resolveCa(cek, opts);
    chain.ca = ca;
    chain.ask = ca.ask.toBuffer();
    chain.ark = ca.ark.toBuffer();
  }
  return chain;
}

/** The verified ASK/ARK that signed `cek`, from a file, the cache or AMD. */
export async function resolveCa(cek: SevCertificate | Buffer, opts: CaOptions): Promise<AmdCaChain> {
  if (opts.caFile) {
    const chain = loadAskArkFile(opts.caFile, { trustedArks: opts.trustedArks });
    const cert = cek instanceof SevCertificate ? cek : SevCertificate.parse(cek);
    const check = cert.verifySignature(chain.ask);
    if (!check.ok) throw new SevCertificateError('CA_CHAIN', `the ASK in ${opts.caFile} did not sign this platform's CEK (${check.reason})`);
    return chain;
  }
  return getAskArkForCek(cek, {
    offline: opts.offline,
    trustedArks: opts.trustedArks,
    cacheDir: opts.cacheDir,
    timeoutMs: opts.timeoutMs,
  });
}

/** Verifies a chain link by link (ARK→ASK→CEK→PEK←OCA, PEK→PDH) — see lib/certs verifyChain. */
export function verifyPlatformChain(chain: Partial<PlatformChain>, trustedArks?: readonly TrustedArk[]): ChainReport {
  return verifyChain(
    { pdh: chain.pdh, pek: chain.pek, oca: chain.oca, cek: chain.cek, ask: chain.ask, ark: chain.ark },
    { trustedArks },
  );
}
