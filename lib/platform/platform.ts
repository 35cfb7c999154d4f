// SevPlatform: the /dev/sev platform commands (SEV_ISSUE_CMD), each with a Promise form whose
// ioctl runs off the event loop and a *Sync form. Lengths follow the kernel's protocol: ask the
// firmware how much it needs (INVALID_LEN + length), then fetch into a buffer of that size.
import { constants as osConstants } from 'node:os';

import { ENOTSUPP, SevArgumentError, SevClosedError, SevError } from '../errors';
import { native, type NativeOutcome, type NativePlatformStatus, type NativeSevDevice } from '../native';
import { call, check, type Flow, queriedLength, runAsync, runSync } from '../flow';
import {
  type OpenOptions,
  type PdhExport,
  PLATFORM_STATES,
  type PlatformStatus,
  type SnpConfig,
  type SnpPlatformStatus,
} from './types';

import { SEV_CERT_SIZE } from '../certs/constants';
/** The largest blob the kernel bounces for the platform (SEV_FW_BLOB_MAX_SIZE). */
export const SEV_FW_BLOB_MAX_SIZE = 0x4000;
/** struct sev_user_data_snp_wrapped_vlek_hashstick: what SNP_VLEK_LOAD takes. */
export const VLEK_HASHSTICK_SIZE = 432;
const { EIO, EINVAL, ENOENT, EACCES, EPERM } = osConstants.errno;

export const DEFAULT_SEV_DEVICE = '/dev/sev';

/** The typed PLATFORM_STATUS result from the addon's fields. */
function platformStatusOf(s: NativePlatformStatus): PlatformStatus {
  return {
    api: { major: s.apiMajor, minor: s.apiMinor },
    build: s.build,
    version: `${s.apiMajor}.${s.apiMinor}.${s.build}`,
    state: PLATFORM_STATES[s.state] ?? `UNKNOWN_${s.state}`,
    owned: (s.flags & 0x1) !== 0,
    es: (s.flags & 0x100) !== 0,
    flags: s.flags,
    guestCount: s.guestCount,
  };
}

function defaultDevicePath(): string {
  return process.env.SEV_DEVICE || DEFAULT_SEV_DEVICE;
}

function openError(path: string, errno: number): SevError {
  const hints: Record<number, string> = {
    [ENOENT]:
      'no SEV device: load kvm_amd with sev=1 (and the ccp module), check BIOS SEV/SMEE settings, ' +
      'or run under the emulator: `sev-emu run -- <command>`',
    [EACCES]: 'permission denied: run as root or grant access to the device',
    [EPERM]: 'operation not permitted: run as root or grant access to the device',
  };
  const hint = hints[errno];
  const err = SevError.fromIoctl(`open ${path}`, errno, 0);
  return hint ? new SevError(`${err.message}: ${hint}`, { command: `open ${path}`, errno }) : err;
}

export class SevPlatform {
  readonly path: string;
  private readonly dev: NativeSevDevice;
  /** Promise-form commands still running: close() releases the fd only after they finish. */
  private inFlight = 0;
  private closeRequested = false;

  private constructor(path: string, dev: NativeSevDevice) {
    this.path = path;
    this.dev = dev;
  }

  /** Opens the SEV device (default `/dev/sev`, or env SEV_DEVICE), read-write unless told not to. */
  static open(options: OpenOptions | null = {}): SevPlatform {
    const path = options?.path ?? defaultDevicePath();
    if (typeof path !== 'string' || path.length === 0) {
      throw new SevArgumentError('open', 'path must be a non-empty string');
    }
    const writable = options?.writable ?? true;
    try {
      return new SevPlatform(path, new native.SevDevice(path, writable));
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno === 'number') throw openError(path, errno);
      throw e;
    }
  }

  get writable(): boolean {
    return this.dev.writable;
  }

  get closed(): boolean {
    return this.closeRequested || this.dev.closed;
  }

  /** The open fd number: KVM's SEV commands take it as `sev_fd` to reach the same firmware. */
  get fd(): number {
    return this.device('fd').fd;
  }

  /**
   * Closes the fd. Commands already started (including the later steps of a length query) finish
   * first; new ones fail with SevClosedError. Idempotent.
   */
  close(): void {
    this.closeRequested = true;
    if (this.inFlight === 0) this.dev.close();
  }

  private device(command: string): NativeSevDevice {
    if (this.closed) throw new SevClosedError(command, `SevPlatform(${this.path})`);
    return this.dev;
  }

  /** Runs a command's flow on the thread pool, keeping the fd open until it completes. */
  private async run<T>(flow: () => Flow<T>): Promise<T> {
    this.inFlight++;
    try {
      return await runAsync(flow()); // its first step checks for a closed platform
    } finally {
      if (--this.inFlight === 0 && this.closeRequested) this.dev.close();
    }
  }

  // ---- PLATFORM_STATUS ------------------------------------------------------------------------

  /** PLATFORM_STATUS: API version, build, state, owner and ES flags, guest count. */
  status(): Promise<PlatformStatus> {
    return this.run(() => this.statusFlow());
  }
  statusSync(): PlatformStatus {
    // One call, no flow to drive: the hot synchronous path skips the generator machinery.
    return platformStatusOf(check('PLATFORM_STATUS', this.device('PLATFORM_STATUS').platformStatus(false)));
  }
  private *statusFlow(): Flow<PlatformStatus> {
    const dev = this.device('PLATFORM_STATUS');
    return platformStatusOf(check('PLATFORM_STATUS', yield* call((a) => dev.platformStatus(a))));
  }

  // ---- key generation / reset -----------------------------------------------------------------

  /** PEK_GEN: new PEK (and self-owned OCA, new PDH); drops any external owner. */
  pekGen(): Promise<void> {
    return this.run(() => this.simpleFlow('PEK_GEN', (a) => this.device('PEK_GEN').pekGen(a)));
  }
  pekGenSync(): void {
    runSync(this.simpleFlow('PEK_GEN', (a) => this.device('PEK_GEN').pekGen(a)));
  }

  /** PDH_GEN: new PDH signed by the current PEK. */
  pdhGen(): Promise<void> {
    return this.run(() => this.simpleFlow('PDH_GEN', (a) => this.device('PDH_GEN').pdhGen(a)));
  }
  pdhGenSync(): void {
    runSync(this.simpleFlow('PDH_GEN', (a) => this.device('PDH_GEN').pdhGen(a)));
  }

  /** FACTORY_RESET: deletes the platform's keys and owner. Refused (EBUSY) while guests run. */
  factoryReset(): Promise<void> {
    return this.run(() => this.simpleFlow('FACTORY_RESET', (a) => this.device('FACTORY_RESET').factoryReset(a)));
  }
  factoryResetSync(): void {
    runSync(this.simpleFlow('FACTORY_RESET', (a) => this.device('FACTORY_RESET').factoryReset(a)));
  }

  private *simpleFlow(command: string, c: (a: boolean) => NativeOutcome | Promise<NativeOutcome>): Flow<void> {
    check(command, yield* call(c));
  }

  // ---- certificates ---------------------------------------------------------------------------

  /** PEK_CSR: the PEK as an unsigned SEV certificate, to be signed by an owner's OCA. */
  pekCsr(): Promise<Buffer> {
    return this.run(() => this.pekCsrFlow());
  }
  pekCsrSync(): Buffer {
    return runSync(this.pekCsrFlow());
  }
  private *pekCsrFlow(): Flow<Buffer> {
    const dev = this.device('PEK_CSR');
    const q = yield* call((a) => dev.pekCsr(null, a));
    const buf = Buffer.alloc(queriedLength('PEK_CSR', q, q.length));
    const r = check('PEK_CSR', yield* call((a) => dev.pekCsr(buf, a)));
    return buf.subarray(0, r.length);
  }

  /** PDH_CERT_EXPORT: the PDH and its chain (PEK, OCA, CEK). */
  pdhCertExport(): Promise<PdhExport> {
    return this.run(() => this.pdhCertExportFlow());
  }
  pdhCertExportSync(): PdhExport {
    return runSync(this.pdhCertExportFlow());
  }
  private *pdhCertExportFlow(): Flow<PdhExport> {
    const dev = this.device('PDH_CERT_EXPORT');
    const q = yield* call((a) => dev.pdhCertExport(null, null, a));
    const pdh = Buffer.alloc(queriedLength('PDH_CERT_EXPORT', q, q.pdhLength));
    const chain = Buffer.alloc(queriedLength('PDH_CERT_EXPORT', q, q.chainLength));
    const r = check('PDH_CERT_EXPORT', yield* call((a) => dev.pdhCertExport(pdh, chain, a)));
    const pdhOut = pdh.subarray(0, r.pdhLength);
    const chainOut = chain.subarray(0, r.chainLength);
    if (chainOut.length !== 3 * SEV_CERT_SIZE) {
      throw new SevError(`PDH_CERT_EXPORT: expected a ${3 * SEV_CERT_SIZE}-byte chain, got ${chainOut.length}`, {
        command: 'PDH_CERT_EXPORT',
        errno: EIO,
      });
    }
    return {
      pdh: pdhOut,
      chain: chainOut,
      pek: chainOut.subarray(0, SEV_CERT_SIZE),
      oca: chainOut.subarray(SEV_CERT_SIZE, 2 * SEV_CERT_SIZE),
      cek: chainOut.subarray(2 * SEV_CERT_SIZE, 3 * SEV_CERT_SIZE),
    };
  }

  /** PEK_CERT_IMPORT: take ownership with an OCA-signed PEK certificate and the OCA certificate. */
  pekCertImport(pek: Uint8Array, oca: Uint8Array): Promise<void> {
    return this.run(() => this.pekCertImportFlow(pek, oca));
  }
  pekCertImportSync(pek: Uint8Array, oca: Uint8Array): void {
    runSync(this.pekCertImportFlow(pek, oca));
  }
  private *pekCertImportFlow(pek: Uint8Array, oca: Uint8Array): Flow<void> {
    for (const [name, cert] of [['PEK', pek], ['OCA', oca]] as const) {
      if (!(cert instanceof Uint8Array)) {
        throw new SevArgumentError('PEK_CERT_IMPORT', `${name} certificate must be a Buffer`);
      }
      if (cert.length !== SEV_CERT_SIZE) {
        throw new SevArgumentError(
          'PEK_CERT_IMPORT',
          `${name} certificate must be ${SEV_CERT_SIZE} bytes (SEV format), got ${cert.length}`,
        );
      }
    }
    const dev = this.device('PEK_CERT_IMPORT');
    check('PEK_CERT_IMPORT', yield* call((a) => dev.pekCertImport(pek, oca, a)));
  }

  // ---- identity -------------------------------------------------------------------------------

  /**
   * The chip's unique id (what AMD's KDS indexes CEKs by): GET_ID2, falling back to the deprecated
   * GET_ID on kernels that predate GET_ID2. 64 bytes per socket.
   */
  getId(): Promise<Buffer> {
    return this.run(() => this.getIdFlow());
  }
  getIdSync(): Buffer {
    return runSync(this.getIdFlow());
  }
  private *getIdFlow(): Flow<Buffer> {
    const dev = this.device('GET_ID2');
    const q = yield* call((a) => dev.getId2(null, a));
    if (q.errno === EINVAL) {
      // Kernels before GET_ID2 reject the unknown command with EINVAL: use GET_ID.
      const old = check('GET_ID', yield* call((a) => dev.getId(a)));
      return old.socket2.some((b) => b !== 0) ? Buffer.concat([old.socket1, old.socket2]) : old.socket1;
    }
    if (q.errno === ENOTSUPP) {
      throw new SevError('GET_ID2 failed: the firmware API is older than 0.16 and has no chip id', {
        command: 'GET_ID2',
        errno: q.errno,
      });
    }
    const buf = Buffer.alloc(queriedLength('GET_ID2', q, q.length));
    const r = check('GET_ID2', yield* call((a) => dev.getId2(buf, a)));
    return buf.subarray(0, r.length);
  }

  // ---- SEV-SNP --------------------------------------------------------------------------------

  /** SNP_PLATFORM_STATUS (kernels with SEV-SNP support, on SNP-capable firmware). */
  snpStatus(): Promise<SnpPlatformStatus> {
    return this.run(() => this.snpStatusFlow());
  }
  snpStatusSync(): SnpPlatformStatus {
    return runSync(this.snpStatusFlow());
  }
  private *snpStatusFlow(): Flow<SnpPlatformStatus> {
    const dev = this.device('SNP_PLATFORM_STATUS');
    const s = check('SNP_PLATFORM_STATUS', yield* call((a) => dev.snpPlatformStatus(a)));
    const bit = (n: number) => (s.featureFlags & (1 << n)) !== 0;
    return {
      api: { major: s.apiMajor, minor: s.apiMinor },
      state: s.state,
      isRmpInitialized: s.isRmpInitialized,
      buildId: s.buildId,
      maskChipId: bit(0),
      maskChipKey: bit(1),
      vlekEnabled: bit(2),
      featureInfo: bit(3),
      raplDisabled: bit(4),
      ciphertextHidingCapable: bit(5),
      ciphertextHidingEnabled: bit(6),
      guestCount: s.guestCount,
      currentTcbVersion: s.currentTcbVersion,
      reportedTcbVersion: s.reportedTcbVersion,
    };
  }

  /** SNP_COMMIT: commit the current firmware so it cannot be rolled back. */
  snpCommit(): Promise<void> {
    return this.run(() => this.simpleFlow('SNP_COMMIT', (a) => this.device('SNP_COMMIT').snpCommit(a)));
  }
  snpCommitSync(): void {
    runSync(this.simpleFlow('SNP_COMMIT', (a) => this.device('SNP_COMMIT').snpCommit(a)));
  }

  /** SNP_SET_CONFIG: reported TCB and chip id / chip key masking for attestation reports. */
  snpSetConfig(config: SnpConfig): Promise<void> {
    return this.run(() => this.snpSetConfigFlow(config));
  }
  snpSetConfigSync(config: SnpConfig): void {
    runSync(this.snpSetConfigFlow(config));
  }
  private *snpSetConfigFlow(config: SnpConfig): Flow<void> {
    if (typeof config?.reportedTcb !== 'bigint' || config.reportedTcb < 0n || config.reportedTcb >= 1n << 64n) {
      throw new SevArgumentError('SNP_SET_CONFIG', 'reportedTcb must be a bigint in [0, 2^64)');
    }
    const flags = (config.maskChipId ? 1 : 0) | (config.maskChipKey ? 2 : 0);
    const dev = this.device('SNP_SET_CONFIG');
    check('SNP_SET_CONFIG', yield* call((a) => dev.snpSetConfig(config.reportedTcb, flags, a)));
  }

  /**
   * SNP_VLEK_LOAD: load a VLEK from the wrapped hashstick AMD's KDS issued for this platform (432
   * bytes; only the firmware can unwrap it). Needs SNP initialized (ENODEV otherwise, as 7.2).
   */
  snpVlekLoad(hashstick: Uint8Array): Promise<void> {
    return this.run(() => this.snpVlekLoadFlow(hashstick));
  }
  snpVlekLoadSync(hashstick: Uint8Array): void {
    runSync(this.snpVlekLoadFlow(hashstick));
  }
  private *snpVlekLoadFlow(hashstick: Uint8Array): Flow<void> {
    if (!(hashstick instanceof Uint8Array) || hashstick.length !== VLEK_HASHSTICK_SIZE) {
      throw new SevArgumentError('SNP_VLEK_LOAD', `a wrapped VLEK hashstick is ${VLEK_HASHSTICK_SIZE} bytes, got ${hashstick instanceof Uint8Array ? hashstick.length : typeof hashstick}`);
    }
    const dev = this.device('SNP_VLEK_LOAD');
    check('SNP_VLEK_LOAD', yield* call((a) => dev.snpVlekLoad(hashstick, a)));
  }

  /** @internal Raw SEV_ISSUE_CMD for conformance tests; see NativeSevDevice.issueRaw. */
  issueRawSync(cmd: number, payload: Uint8Array | null, pointers: Array<[number, Uint8Array]> = []): NativeOutcome {
    const command = `SEV_ISSUE_CMD(${cmd})`;
    const dev = this.device(command);
    try {
      return dev.issueRaw(cmd, payload, pointers, false);
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError) throw new SevArgumentError(command, e.message);
      throw e;
    }
  }
}
