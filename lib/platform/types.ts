// Plain data types returned by SevPlatform.

/** Platform state as PLATFORM_STATUS reports it (SEV API spec, table "Platform states"). */
export type PlatformStateName = 'UNINIT' | 'INIT' | 'WORKING';
export const PLATFORM_STATES: readonly PlatformStateName[] = ['UNINIT', 'INIT', 'WORKING'];

export interface PlatformStatus {
  /** Firmware API version, e.g. { major: 1, minor: 55 }. */
  api: { major: number; minor: number };
  /** Firmware build id for that API version. */
  build: number;
  /** "major.minor.build", as sevctl's `show version` prints it. */
  version: string;
  state: PlatformStateName | `UNKNOWN_${number}`;
  /** True when an external owner's OCA signed the PEK (flags bit 0). */
  owned: boolean;
  /** True when SEV-ES is configured (flags bit 8). */
  es: boolean;
  /** The raw flags word. */
  flags: number;
  /** Number of guests the firmware currently manages. */
  guestCount: number;
}

export interface SnpPlatformStatus {
  api: { major: number; minor: number };
  state: number;
  isRmpInitialized: boolean;
  buildId: number;
  maskChipId: boolean;
  maskChipKey: boolean;
  vlekEnabled: boolean;
  featureInfo: boolean;
  raplDisabled: boolean;
  ciphertextHidingCapable: boolean;
  ciphertextHidingEnabled: boolean;
  guestCount: number;
  currentTcbVersion: bigint;
  reportedTcbVersion: bigint;
}

export interface SnpConfig {
  /** TCB version to put in attestation reports (must not exceed the current TCB). */
  reportedTcb: bigint;
  maskChipId?: boolean;
  maskChipKey?: boolean;
}

/** PDH_CERT_EXPORT result: the PDH and the chain the firmware exports with it. */
export interface PdhExport {
  /** PDH certificate (SEV format, 2084 bytes). */
  pdh: Buffer;
  /** The raw chain blob: PEK ‖ OCA ‖ CEK. */
  chain: Buffer;
  pek: Buffer;
  oca: Buffer;
  cek: Buffer;
}

export interface OpenOptions {
  /** Device path; default `/dev/sev` (or env SEV_DEVICE). */
  path?: string;
  /** Open read-write (needed for commands that change the platform); default true. */
  writable?: boolean;
}
