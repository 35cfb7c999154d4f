// The SEV guest policy (SEV API spec 55766, "Guest Policy"): a 32-bit word the guest owner sets
// at LAUNCH_START and the firmware enforces for the guest's whole life.
import { SevArgumentError } from '../errors';

export interface PolicyFlags {
  /** Debugging of the guest is disallowed (DBG_DECRYPT / DBG_ENCRYPT refused). */
  noDebug?: boolean;
  /** Sharing keys with other guests is disallowed. */
  noKeySharing?: boolean;
  /** The guest must run with SEV-ES (encrypted register state). */
  es?: boolean;
  /** Sending the guest to another platform is disallowed. */
  noSend?: boolean;
  /** The guest may only be sent to platforms in the same domain. */
  domain?: boolean;
  /** The guest may only be sent to platforms that support SEV. */
  sev?: boolean;
  /** Minimum firmware API version the guest may run on. */
  apiMajor?: number;
  apiMinor?: number;
}

export const POLICY_BITS = {
  NODBG: 1 << 0,
  NOKS: 1 << 1,
  ES: 1 << 2,
  NOSEND: 1 << 3,
  DOMAIN: 1 << 4,
  SEV: 1 << 5,
} as const;

const POLICY_FLAG_NAMES = ['noDebug', 'noKeySharing', 'es', 'noSend', 'domain', 'sev', 'apiMajor', 'apiMinor'];

const RESERVED_MASK = 0x0000ffc0; // bits 15:6 must be zero

export class Policy {
  readonly value: number;

  private constructor(value: number) {
    this.value = value >>> 0;
  }

  static fromValue(value: number): Policy {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new SevArgumentError('policy', `policy must be a 32-bit unsigned integer, got ${value}`);
    }
    if (value & RESERVED_MASK) {
      throw new SevArgumentError('policy', `policy 0x${value.toString(16)} sets reserved bits 15:6`);
    }
    return new Policy(value);
  }

  static from(flags: PolicyFlags | number | Policy): Policy {
    if (flags instanceof Policy) return flags;
    if (typeof flags === 'number') return Policy.fromValue(flags);
    if (typeof flags !== 'object' || flags === null || Array.isArray(flags)) {
      throw new SevArgumentError('policy', `expected a policy number, a Policy or named flags, got ${flags === null ? 'null' : Array.isArray(flags) ? 'an array' : typeof flags}`);
    }
    const unknown = Object.keys(flags).filter((k) => !POLICY_FLAG_NAMES.includes(k));
    if (unknown.length) {
      throw new SevArgumentError('policy', `unknown policy flag(s) ${unknown.join(', ')}; known: ${POLICY_FLAG_NAMES.join(', ')}`);
    }
    const byte = (name: string, v: number | undefined) => {
      if (v === undefined) return 0;
      if (!Number.isInteger(v) || v < 0 || v > 255) throw new SevArgumentError('policy', `${name} must be 0..255`);
      return v;
    };
    let v = 0;
    if (flags.noDebug) v |= POLICY_BITS.NODBG;
    if (flags.noKeySharing) v |= POLICY_BITS.NOKS;
    if (flags.es) v |= POLICY_BITS.ES;
    if (flags.noSend) v |= POLICY_BITS.NOSEND;
    if (flags.domain) v |= POLICY_BITS.DOMAIN;
    if (flags.sev) v |= POLICY_BITS.SEV;
    v |= byte('apiMajor', flags.apiMajor) << 16;
    v = (v | (byte('apiMinor', flags.apiMinor) << 24)) >>> 0;
    return new Policy(v);
  }

  get noDebug(): boolean {
    return (this.value & POLICY_BITS.NODBG) !== 0;
  }
  get noKeySharing(): boolean {
    return (this.value & POLICY_BITS.NOKS) !== 0;
  }
  get es(): boolean {
    return (this.value & POLICY_BITS.ES) !== 0;
  }
  get noSend(): boolean {
    return (this.value & POLICY_BITS.NOSEND) !== 0;
  }
  get domain(): boolean {
    return (this.value & POLICY_BITS.DOMAIN) !== 0;
  }
  get sev(): boolean {
    return (this.value & POLICY_BITS.SEV) !== 0;
  }
  get apiMajor(): number {
    return (this.value >>> 16) & 0xff;
  }
  get apiMinor(): number {
    return (this.value >>> 24) & 0xff;
  }

  toFlags(): Required<PolicyFlags> {
    return {
      noDebug: this.noDebug,
      noKeySharing: this.noKeySharing,
      es: this.es,
      noSend: this.noSend,
      domain: this.domain,
      sev: this.sev,
      apiMajor: this.apiMajor,
      apiMinor: this.apiMinor,
    };
  }

  toString(): string {
    const names = Object.entries(POLICY_BITS).filter(([, bit]) => this.value & bit).map(([n]) => n);
    return `0x${this.value.toString(16).padStart(8, '0')}${names.length ? ` (${names.join(' | ')})` : ''}`;
  }
}
