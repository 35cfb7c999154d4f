// The compiled addon (build/Release/sev_addon.node), loaded through `bindings`, with the types of
// what its C++ objects return. Only lib/ modules talk to it; users get the typed classes.
import bindings from 'bindings';
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
  /** Conformance tests only: raw SEV_ISSUE_CMD with buffer addresses patched into payload. */
  issueRaw<A extends boolean>(
    cmd: number,
    payload: Uint8Array | null,
    pointers: Array<[number, Uint8Array]>,
    async: A,
  ): Maybe<NativeOutcome, A>;
  close(): void;
}

export interface NativeAddon {
  SevDevice: new (path: string, writable: boolean) => NativeSevDevice;
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
 * The addon `bindings` finds (build/Release), or the file SEV_ADDON names: a differently built copy
 * of the same sources, such as the sanitizer build `npm run test:sanitize` makes.
 */
export const native: NativeAddon = process.env.SEV_ADDON
  ? (require(path.resolve(process.env.SEV_ADDON)) as NativeAddon)
  : bindings('sev_addon');
