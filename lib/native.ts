// The compiled addon (build/Release/sev_addon.node), loaded from there directly (or, for another
// build layout, through `bindings`, which probes several paths and costs start-up), with the types of
// what its C++ objects return. Only lib/ modules talk to it; users get the typed classes.
import * as path from 'node:path';

/** What every native ioctl call reports: errno (0 = success) and the firmware status word. */
export interface NativeOutcome {
  errno: number;
  fwError: number;
}

export interface NativePlatformStatus extends NativeOutcome {
  apiMajor: number;
  apiMinor: number;
  state: number;
  flags: number;
  build: number;
  guestCount: number;
}

export interface NativeSnpStatus extends NativeOutcome {
  apiMajor: number;
  apiMinor: number;
  state: number;
  isRmpInitialized: boolean;
  buildId: number;
  featureFlags: number;
  guestCount: number;
  currentTcbVersion: bigint;
  reportedTcbVersion: bigint;
}

type Maybe<T, A extends boolean> = A extends true ? Promise<T> : T;

/** One open /dev/sev fd (native/addon/sev_device.cc). Last argument: run on a worker thread. */
export interface NativeSevDevice {
  readonly fd: number;
  readonly closed: boolean;
  readonly writable: boolean;
  factoryReset<A extends boolean>(async: A): Maybe<NativeOutcome, A>;
  platformStatus<A extends boolean>(async: A): Maybe<NativePlatformStatus, A>;
  pekGen<A extends boolean>(async: A): Maybe<NativeOutcome, A>;
  pdhGen<A extends boolean>(async: A): Maybe<NativeOutcome, A>;
  pekCsr<A extends boolean>(buf: Uint8Array | null, async: A): Maybe<NativeOutcome & { length: number }, A>;
  pdhCertExport<A extends boolean>(
    pdh: Uint8Array | null,
    chain: Uint8Array | null,
    async: A,
  ): Maybe<NativeOutcome & { pdhLength: number; chainLength: number }, A>;
  pekCertImport<A extends boolean>(pek: Uint8Array, oca: Uint8Array, async: A): Maybe<NativeOutcome, A>;
  getId<A extends boolean>(async: A): Maybe<NativeOutcome & { socket1: Buffer; socket2: Buffer }, A>;
  getId2<A extends boolean>(buf: Uint8Array | null, async: A): Maybe<NativeOutcome & { length: number }, A>;
  snpPlatformStatus<A extends boolean>(async: A): Maybe<NativeSnpStatus, A>;
  snpCommit<A extends boolean>(async: A): Maybe<NativeOutcome, A>;
  snpSetConfig<A extends boolean>(reportedTcb: bigint, flags: number, async: A): Maybe<NativeOutcome, A>;
  snpVlekLoad<A extends boolean>(hashstick: Uint8Array, async: A): Maybe<NativeOutcome, A>;
  /** Conformance tests only: raw SEV_ISSUE_CMD with buffer addresses patched into payload. */
  issueRaw<A extends boolean>(
    cmd: number,
    payload: Uint8Array | null,
    pointers: Array<[number, Uint8Array]>,
    async: A,
  ): Maybe<NativeOutcome, A>;
  close(): void;
}

/** What every /dev/sev-guest ioctl reports besides errno: SW_EXITINFO2 and its two halves. */
export interface NativeGuestOutcome extends NativeOutcome {
  /** exitinfo2 as the kernel copied it back (0 when it did not: it copies only non-zero values). */
  exitinfo2: bigint;
  /** Bits 63:32 of exitinfo2 (SNP_GUEST_VMM_ERR_*). fwError holds bits 31:0. */
  vmmError: number;
}

/** One open /dev/sev-guest fd (native/addon/sev_guest_device.cc). Last argument: run on a worker thread. */
export interface NativeSevGuestDevice {
  readonly fd: number;
  readonly closed: boolean;
  /** SNP_GET_REPORT: req is a 96-byte snp_report_req, resp a 4000-byte snp_report_resp (null → 0). */
  getReport<A extends boolean>(msgVersion: number, req: Uint8Array | null, resp: Uint8Array | null, async: A): Maybe<NativeGuestOutcome, A>;
  /** SNP_GET_DERIVED_KEY: req is a 32-byte snp_derived_key_req, resp a 64-byte snp_derived_key_resp. */
  getDerivedKey<A extends boolean>(msgVersion: number, req: Uint8Array | null, resp: Uint8Array | null, async: A): Maybe<NativeGuestOutcome, A>;
  /** SNP_GET_EXT_REPORT: certs_address = certs, certs_len = certsLen (≤ certs.length); certsLen afterwards. */
  getExtReport<A extends boolean>(
    msgVersion: number,
    req: Uint8Array | null,
    resp: Uint8Array | null,
    certs: Uint8Array | null,
    certsLen: number,
    async: A,
  ): Maybe<NativeGuestOutcome & { certsLen: number }, A>;
  close(): void;
}

export interface NativeAddon {
  SevDevice: new (path: string, writable: boolean) => NativeSevDevice;
  /** open(path, flags | O_CLOEXEC); flags default O_RDWR. Throws an Error with `errno`. */
  SevGuestDevice: new (path: string, flags?: number) => NativeSevGuestDevice;
  /** CPUID (leaf, subleaf) → [eax, ebx, ecx, edx]; the emulator's values when it is loaded. */
  cpuid(leaf: number, subleaf?: number): [number, number, number, number];
  /** The emulated generation when running under `sev-emu run`, else null. */
  emulator(): string | null;
  /** Which KVM the emulator answered /dev/kvm with in this process ('host' or 'soft'), else null. */
  kvmBackend(): 'host' | 'soft' | null;
  /** Under the emulator: null when its software KVM can run here, else why not. */
  softkvmUnavailable(): string | null;
  // KVM objects are typed in lib/kvm.
  [name: string]: unknown;
}

/**
 * The addon node-gyp built (build/Release), or the file SEV_ADDON names: a differently built copy
 * of the same sources, such as the sanitizer build `npm run test:sanitize` makes.
 */
function loadAddon(): NativeAddon {
  if (process.env.SEV_ADDON) return require(path.resolve(process.env.SEV_ADDON)) as NativeAddon;
  try {
    // dist/lib/native.js → <package>/build/Release/sev_addon.node, where node-gyp puts it.
    return require(path.join(__dirname, '..', '..', 'build', 'Release', 'sev_addon.node'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    return require('bindings')('sev_addon');
  }
}

export const native: NativeAddon = loadAddon();
