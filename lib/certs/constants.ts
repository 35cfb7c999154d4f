// Key usages and algorithms shared by the SEV certificate format and the AMD CA format
// (SEV API spec, pub. 55766, appendix C: "Key Usage" and "Algorithm" tables).

/** Who a key belongs to / what it is for. The same numbers appear in CA certs and SEV signature slots. */
export enum Usage {
  /** AMD Root Key. */
  ARK = 0x0,
  /** AMD SEV Signing Key. */
  ASK = 0x13,
  /** An unused signature slot ("invalid" in the spec). */
  NONE = 0x1000,
  /** Owner Certificate Authority. */
  OCA = 0x1001,
  /** Platform Endorsement Key. */
  PEK = 0x1002,
  /** Platform Diffie-Hellman key. */
  PDH = 0x1003,
  /** Chip Endorsement Key. */
  CEK = 0x1004,
}

/** Public key / signature algorithms. */
export enum Algorithm {
  NONE = 0x0,
  RSA_SHA256 = 0x1,
  ECDSA_SHA256 = 0x2,
  ECDH_SHA256 = 0x3,
  RSA_SHA384 = 0x101,
  ECDSA_SHA384 = 0x102,
  ECDH_SHA384 = 0x103,
}

/** Short names used in chain reports: 'ARK', 'ASK', 'CEK', 'PEK', 'OCA', 'PDH'. */
export type CertName = 'ARK' | 'ASK' | 'CEK' | 'PEK' | 'OCA' | 'PDH';

/** Name of a usage value, or a hex spelling for unknown values. */
export function usageName(usage: number): string {
  return Usage[usage] ?? `0x${usage.toString(16)}`;
}

/** Name of an algorithm value, or a hex spelling for unknown values. */
export function algorithmName(algorithm: number): string {
  return Algorithm[algorithm] ?? `0x${algorithm.toString(16)}`;
}

export type HashName = 'sha256' | 'sha384';
export type KeyKind = 'rsa' | 'ecdsa' | 'ecdh';

/** Key kind and digest an algorithm stands for; null for NONE and unknown values. */
export function algorithmInfo(algorithm: number): { kind: KeyKind; hash: HashName } | null {
  switch (algorithm) {
    case Algorithm.RSA_SHA256: return { kind: 'rsa', hash: 'sha256' };
    case Algorithm.RSA_SHA384: return { kind: 'rsa', hash: 'sha384' };
    case Algorithm.ECDSA_SHA256: return { kind: 'ecdsa', hash: 'sha256' };
    case Algorithm.ECDSA_SHA384: return { kind: 'ecdsa', hash: 'sha384' };
    case Algorithm.ECDH_SHA256: return { kind: 'ecdh', hash: 'sha256' };
    case Algorithm.ECDH_SHA384: return { kind: 'ecdh', hash: 'sha384' };
    default: return null;
  }
}

/** The algorithm value for a key kind and digest. */
export function algorithmFor(kind: KeyKind, hash: HashName): Algorithm {
  const table: Record<KeyKind, Record<HashName, Algorithm>> = {
    rsa: { sha256: Algorithm.RSA_SHA256, sha384: Algorithm.RSA_SHA384 },
    ecdsa: { sha256: Algorithm.ECDSA_SHA256, sha384: Algorithm.ECDSA_SHA384 },
    ecdh: { sha256: Algorithm.ECDH_SHA256, sha384: Algorithm.ECDH_SHA384 },
  };
  return table[kind][hash];
}

/** Digest sizes in bytes; RSA-PSS in both formats uses a salt as long as the digest. */
export const HASH_BYTES: Readonly<Record<HashName, number>> = Object.freeze({ sha256: 32, sha384: 48 });

/** Size of an SEV-format certificate (here, a leaf module: the platform needs it without the crypto). */
export const SEV_CERT_SIZE = 0x824; // 2084
