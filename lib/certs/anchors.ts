// Trust anchors: AMD's root keys (ARKs), pinned by fingerprint. node-sev ships no AMD
// certificate files; a chain is trusted when its ARK's public key hashes to one of these values
// (or to a key the caller explicitly trusts, e.g. the firmware emulator's own ARK).
//
// Fingerprint = SHA-256 of the ARK public key's SubjectPublicKeyInfo DER, the same value as
// `openssl pkey -pubin -outform DER | sha256sum` on the key. Computed from AMD's published
// ask_ark_<generation>.cert files.
import type { KeyObject } from 'node:crypto';

import { SevArgumentError } from '../errors';
import { CaCertificate } from './ca-cert';
import { Usage } from './constants';
import { spkiSha256 } from './keys';

/** Processor generations with an SEV CA chain. */
export type Generation = 'naples' | 'rome' | 'milan' | 'genoa' | 'turin';
export const GENERATIONS: readonly Generation[] = Object.freeze(['naples', 'rome', 'milan', 'genoa', 'turin']);

/** What node-sev pins for one generation's ARK. */
export interface ArkPin {
  generation: Generation;
  /** The ARK's key_id (hex): lets an ASK name its generation through its certifying_id. */
  keyId: string;
  /** SHA-256 (hex) of the ARK public key's SPKI DER. */
  spkiSha256: string;
  /** Modulus size of the ARK (and ASK). */
  bits: 2048 | 4096;
}

/** AMD's ARKs by generation. */
export const AMD_ARK_PINS: readonly ArkPin[] = Object.freeze([
  { generation: 'naples', bits: 2048, keyId: '1bb987c359494606b174945601c9ea5b', spkiSha256: '3a04f8f1347de206c9206a81148ba4ef0a233b245d43a15dd82de043bb3e4f69' },
  { generation: 'rome', bits: 4096, keyId: 'e6002122fb58419399d15fee7b131351', spkiSha256: '7447ffa21e2b938bfade89f5e9066c00a328813bfc43685605cceabd18da6fde' },
  { generation: 'milan', bits: 4096, keyId: '94c38e4177d0479292a7ae671d083fb6', spkiSha256: '9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9' },
  { generation: 'genoa', bits: 4096, keyId: '9f9d4a8fe761456599f6946c4c010f3a', spkiSha256: '429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831' },
  { generation: 'turin', bits: 4096, keyId: 'd05c3a8bde484904b49552422ceb3942', spkiSha256: '4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08' },
].map((p) => Object.freeze(p as ArkPin)));

/** An extra root the caller trusts: an ARK certificate, its public key, or its SPKI SHA-256 fingerprint (hex). */
export type TrustedArk = CaCertificate | KeyObject | string;

/** The canonical fingerprint of an ARK (certificate or key): SHA-256 hex of the SPKI DER. */
export function arkFingerprint(ark: CaCertificate | KeyObject): string {
  return spkiSha256(ark instanceof CaCertificate ? ark.publicKey : ark);
}

/** How an ARK was judged against the pins. */
export interface AnchorCheck {
  /** True when the ARK is a pinned AMD ARK or one of the caller's extra trusted ARKs. */
  trusted: boolean;
  /** The AMD generation when it is a pinned AMD ARK. */
  generation?: Generation;
  /** True when trusted only through the caller's extra ARKs. */
  extra: boolean;
  fingerprint: string;
  reason?: string;
}

/** Checks an ARK against AMD's pins and, only if given, the caller's extra trusted ARKs. */
export function checkArkAnchor(ark: CaCertificate, trustedArks: readonly TrustedArk[] = []): AnchorCheck {
  const fingerprint = arkFingerprint(ark);
  if (ark.usage !== Usage.ARK) return { trusted: false, extra: false, fingerprint, reason: 'the root certificate is not an ARK' };
  const pin = AMD_ARK_PINS.find((p) => p.spkiSha256 === fingerprint);
  if (pin) return { trusted: true, generation: pin.generation, extra: false, fingerprint };
  const extra = trustedArks.some((t) => (typeof t === 'string' ? t.toLowerCase() : arkFingerprint(t)) === fingerprint);
  if (extra) return { trusted: true, extra: true, fingerprint };
  return {
    trusted: false,
    extra: false,
    fingerprint,
    reason: `ARK ${fingerprint} is not a pinned AMD ARK (pass it as a trusted ARK to accept it explicitly)`,
  };
}

/** The pin for a generation. */
export function arkPin(generation: Generation): ArkPin {
  const pin = AMD_ARK_PINS.find((p) => p.generation === generation);
  if (!pin) throw new SevArgumentError('arkPin', `unknown generation ${String(generation)} (expected ${GENERATIONS.join(', ')})`);
  return pin;
}

/**
 * The generation an ARK or ASK belongs to: an ARK by its pinned fingerprint, an ASK by the
 * pinned ARK key id it names as certifier. This is identification only; trust comes from
 * verifying the ASK's signature with a pinned ARK.
 */
export function detectGeneration(cert: CaCertificate): Generation | undefined {
  if (cert.usage === Usage.ARK) return AMD_ARK_PINS.find((p) => p.spkiSha256 === arkFingerprint(cert))?.generation;
  const certifier = cert.certifyingId.toString('hex');
  return AMD_ARK_PINS.find((p) => p.keyId === certifier && p.bits === cert.modulusBits)?.generation;
}

/** True for a known generation name. */
export function isGeneration(value: unknown): value is Generation {
  return typeof value === 'string' && (GENERATIONS as readonly string[]).includes(value);
}
