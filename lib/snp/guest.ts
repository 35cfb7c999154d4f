// The SEV-SNP guest side: /dev/sev-guest (Linux drivers/virt/coco/sev-guest/sev-guest.c), what a
// guest uses to get attestation reports (plain and with the host's certificate table) and keys
// derived from the chip's or the VM's root key. The ioctls are quick: each method has a Promise
// form (ioctl on the thread pool) and a *Sync form (inline).
//
// Kernel behaviour this follows (Linux 7.2):
//  - msg_version 0 → EINVAL; a null request or response pointer → EINVAL (before the firmware);
//  - the firmware's own verdict comes inside the response (MSG_REPORT_RSP / MSG_KEY_RSP status)
//    with the ioctl succeeding: a non-zero status becomes a SnpGuestError naming the status;
//  - a failure on the request path is -errno with SW_EXITINFO2 (fw_error | vmm_error << 32),
//    copied back only when non-zero;
//  - SNP_GET_EXT_REPORT: certs_len must be 0 or page aligned and ≤ SEV_FW_BLOB_MAX_SIZE (EINVAL);
//    a too-small buffer fails with EIO and vmm_error INVALID_LEN, the needed length written back.
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError, SevError, SnpGuestError } from '../errors';
import { call, type Flow, runAsync, runSync } from '../flow';
import { bytes, describe, integer } from '../kvm/validate';
import { native, type NativeGuestOutcome, type NativeSevGuestDevice } from '../native';
import { type CertTableEntry, parseCertTable } from './cert-table';
import { type AttestationReport, parseAttestationReport, REPORT_SIZE, type SnpGeneration } from './report';

const { EACCES, EIO, ENOENT, EPERM, ENXIO, ENODEV } = osConstants.errno;

export const DEFAULT_SEV_GUEST_DEVICE = '/dev/sev-guest';
/** The most certificate data the kernel bounces (SEV_FW_BLOB_MAX_SIZE, 16 KiB). */
export const SNP_CERTS_MAX_SIZE = 0x4000;
export const GUEST_PAGE_SIZE = 4096;
export const SNP_REPORT_DATA_SIZE = 64;
export const SNP_DERIVED_KEY_SIZE = 32;
/** Sizes of the kernel's structs (include/uapi/linux/sev-guest.h). */
const REPORT_REQ_SIZE = 96;
const REPORT_RESP_SIZE = 4000;
const KEY_REQ_SIZE = 32;
const KEY_RESP_SIZE = 64;
/** MSG_REPORT_RSP / MSG_KEY_RSP: the payload after the 32-byte header. */
const RESP_HEADER_SIZE = 32;
/** SNP_GUEST_VMM_ERR_INVALID_LEN. */
export const SNP_GUEST_VMM_ERR_INVALID_LEN = 1;
export const SNP_GUEST_VMM_ERR_BUSY = 2;

/** Guest field select bits of MSG_KEY_REQ (SNP ABI spec): what is mixed into a derived key. */
export const GUEST_FIELD_SELECT_BITS = Object.freeze({
  policy: 0,
  imageId: 1,
  familyId: 2,
  measurement: 3,
  guestSvn: 4,
  tcbVersion: 5,
  launchMitVector: 6,
});
export type GuestFieldSelect = Partial<Record<keyof typeof GUEST_FIELD_SELECT_BITS, boolean>>;
/** Bits 63:7 of guest_field_select are reserved. */
const GFS_RESERVED = ~((1n << 7n) - 1n) & ((1n << 64n) - 1n);

export interface SnpGuestOpenOptions {
  /** Default /dev/sev-guest, or env SEV_GUEST_DEVICE. */
  path?: string;
}

export interface ReportRequest {
  /** 64 bytes the report carries as REPORT_DATA (a nonce, a hash of a key); zeros when omitted. */
  reportData?: Uint8Array;
  /**
   * The VMPL the report claims (default 0). The firmware refuses one below the guest's own VMPL or
   * above 3 with INVALID_PARAM; it is passed through as given so that refusal can be seen.
   */
  vmpl?: number;
  /** The message version (default 1). The kernel refuses 0 with EINVAL. */
  msgVersion?: number;
  /** The TCB layout to read the report with (version 2 reports do not say). */
  generation?: SnpGeneration;
}

export interface ExtReportRequest extends ReportRequest {
  /**
   * Size of the certificate buffer offered first (default 16 KiB, the kernel's maximum): page
   * aligned, ≤ 16 KiB. When the host needs more, the request is retried once with what it asks for.
   */
  certsLength?: number;
}

export interface GuestReport {
  /** The raw 1184-byte report, as the firmware signed it. */
  raw: Buffer;
  report: AttestationReport;
}

export interface GuestExtReport extends GuestReport {
  /** The host's certificate table (empty when the host provided none). */
  certificates: CertTableEntry[];
  /** The raw certificate buffer the table was read from. */
  certsBlob: Buffer;
}

export type RootKey = 'vcek' | 'vmrk';
/** MSG_KEY_REQ KEY_SEL (bits 2:1 of root_key_select): which chip key when the root is VCEK. */
export type KeySelect = 'default' | 'vcek' | 'vlek';
const KEY_SELECT_CODES: Record<KeySelect, number> = { default: 0, vcek: 1, vlek: 2 };

export interface DerivedKeyRequest {
  /** The root key: the chip's (VCEK) or the VM's (VMRK). */
  rootKey: RootKey;
  /** With rootKey 'vcek': 'default' (VLEK when one is loaded, else VCEK), 'vcek' or 'vlek'. */
  keySelect?: KeySelect;
  /** What to mix in: named flags, or the raw u64 (bits 63:7 reserved). */
  guestFieldSelect?: GuestFieldSelect | bigint | number;
  /** The VMPL to mix in, 0..3 (must be ≥ the guest's own; default 0). */
  vmpl?: number;
  /** The guest SVN to mix in (≤ the launch's). */
  guestSvn?: number;
  /** The TCB version to mix in (≤ the committed TCB). */
  tcbVersion?: bigint | number;
  /**
   * LAUNCH_MIT_VECTOR to mix in. Linux's snp_derived_key_req (7.2) has no field for it, so only 0
   * (what the kernel sends) is accepted.
   */
  launchMitVector?: bigint | number;
  msgVersion?: number;
}

function defaultPath(): string {
  return process.env.SEV_GUEST_DEVICE || DEFAULT_SEV_GUEST_DEVICE;
}

function openError(path: string, errno: number): SevError {
  const hints: Record<number, string> = {
    [ENOENT]:
      'no SEV-SNP guest device: this is not an SNP guest, or the sev-guest module is not loaded ' +
      '(modprobe sev-guest); or run under the emulator: `sev-emu run --guest -- <command>`',
    [ENXIO]: 'no SEV-SNP guest device behind this node: the sev-guest driver did not bind (not an SNP guest)',
    [ENODEV]: 'no SEV-SNP guest device behind this node: the sev-guest driver did not bind (not an SNP guest)',
    [EACCES]: 'permission denied: run as root or grant access to the device',
    [EPERM]: 'operation not permitted: run as root or grant access to the device',
  };
  const base = SevError.fromIoctl(`open ${path}`, errno, 0);
  const hint = hints[errno];
  return hint ? new SevError(`${base.message}: ${hint}`, { command: `open ${path}`, errno }) : base;
}

function msgVersionArg(command: string, v: unknown): number {
  return v === undefined ? 1 : integer(command, 'msgVersion', v, 0, 0xff);
}

function u64Arg(command: string, name: string, v: unknown): bigint {
  if (v === undefined) return 0n;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new SevArgumentError(command, `${name} must be a non-negative integer, got ${describe(v)}`);
    return BigInt(v);
  }
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw new SevArgumentError(command, `${name} must be a u64, got ${describe(v)}`);
  return v;
}

/** The 96-byte snp_report_req: user_data, vmpl, 28 reserved zero bytes. */
export function encodeReportRequest(command: string, req: ReportRequest): Buffer {
  const out = Buffer.alloc(REPORT_REQ_SIZE);
  if (req.reportData !== undefined) {
    bytes(command, 'reportData', req.reportData);
    if (req.reportData.length !== SNP_REPORT_DATA_SIZE) {
      throw new SevArgumentError(command, `reportData must be ${SNP_REPORT_DATA_SIZE} bytes, got ${req.reportData.length}`);
    }
    Buffer.from(req.reportData).copy(out, 0);
  }
  out.writeUInt32LE(req.vmpl === undefined ? 0 : integer(command, 'vmpl', req.vmpl, 0, 0xffffffff), 64);
  return out;
}

/** guest_field_select as a u64, from flags or a raw value; reserved bits refused. */
export function encodeGuestFieldSelect(command: string, gfs: DerivedKeyRequest['guestFieldSelect']): bigint {
  if (gfs === undefined) return 0n;
  if (typeof gfs === 'number' || typeof gfs === 'bigint') {
    const v = u64Arg(command, 'guestFieldSelect', gfs);
    if (v & GFS_RESERVED) throw new SevArgumentError(command, `guestFieldSelect 0x${v.toString(16)} sets reserved bits 63:7`);
    return v;
  }
  if (typeof gfs !== 'object' || gfs === null) throw new SevArgumentError(command, `guestFieldSelect must be flags or a number, got ${describe(gfs)}`);
  let v = 0n;
  for (const [key, on] of Object.entries(gfs)) {
    const bit = (GUEST_FIELD_SELECT_BITS as Record<string, number>)[key];
    if (bit === undefined) {
      throw new SevArgumentError(command, `guestFieldSelect has no field '${key}' (known: ${Object.keys(GUEST_FIELD_SELECT_BITS).join(', ')})`);
    }
    if (on !== undefined && typeof on !== 'boolean') throw new SevArgumentError(command, `guestFieldSelect.${key} must be a boolean`);
    if (on) v |= 1n << BigInt(bit);
  }
  return v;
}

/** The 32-byte snp_derived_key_req, validated (vmpl 0..3, reserved bits zero). */
export function encodeDerivedKeyRequest(command: string, req: DerivedKeyRequest): Buffer {
  if (typeof req !== 'object' || req === null) throw new SevArgumentError(command, 'a request object is required');
  if (req.rootKey !== 'vcek' && req.rootKey !== 'vmrk') {
    throw new SevArgumentError(command, `rootKey must be 'vcek' or 'vmrk', got ${describe(req.rootKey)}`);
  }
  const keySelect = req.keySelect ?? 'default';
  if (!(keySelect in KEY_SELECT_CODES)) throw new SevArgumentError(command, `keySelect must be one of default, vcek, vlek, got ${describe(keySelect)}`);
  if (req.rootKey === 'vmrk' && keySelect !== 'default') throw new SevArgumentError(command, 'keySelect applies to the VCEK root key only');
  const vmpl = req.vmpl === undefined ? 0 : integer(command, 'vmpl', req.vmpl, 0, 3);
  const guestSvn = req.guestSvn === undefined ? 0 : integer(command, 'guestSvn', req.guestSvn, 0, 0xffffffff);
  const tcb = u64Arg(command, 'tcbVersion', req.tcbVersion);
  const mit = u64Arg(command, 'launchMitVector', req.launchMitVector);
  if (mit !== 0n) {
    throw new SevArgumentError(command, "launchMitVector: Linux's snp_derived_key_req has no field for it (only 0 can be sent)");
  }
  const out = Buffer.alloc(KEY_REQ_SIZE);
  out.writeUInt32LE((req.rootKey === 'vmrk' ? 1 : 0) | (KEY_SELECT_CODES[keySelect] << 1), 0);
  out.writeBigUInt64LE(encodeGuestFieldSelect(command, req.guestFieldSelect), 8);
  out.writeUInt32LE(vmpl, 16);
  out.writeUInt32LE(guestSvn, 20);
  out.writeBigUInt64LE(tcb, 24);
  return out;
}

/** The report inside a MSG_REPORT_RSP payload; a non-zero status is the firmware's refusal. */
export function decodeReportResponse(command: string, resp: Uint8Array): Buffer {
  const b = Buffer.from(resp.buffer, resp.byteOffset, resp.byteLength);
  const status = b.readUInt32LE(0);
  if (status !== 0) throw SnpGuestError.fromStatus(command, status);
  const size = b.readUInt32LE(4);
  if (size > b.length - RESP_HEADER_SIZE) {
    throw new SnpGuestError(`${command}: the response claims a ${size}-byte report, more than its ${b.length - RESP_HEADER_SIZE} bytes`, { command, errno: EIO });
  }
  if (size !== REPORT_SIZE) {
    throw new SnpGuestError(`${command}: the response holds a ${size}-byte report, expected ${REPORT_SIZE}`, { command, errno: EIO });
  }
  return Buffer.from(b.subarray(RESP_HEADER_SIZE, RESP_HEADER_SIZE + size));
}

/** The key inside a MSG_KEY_RSP payload; a non-zero status is the firmware's refusal. */
export function decodeKeyResponse(command: string, resp: Uint8Array): Buffer {
  const b = Buffer.from(resp.buffer, resp.byteOffset, resp.byteLength);
  const status = b.readUInt32LE(0);
  if (status !== 0) throw SnpGuestError.fromStatus(command, status);
  return Buffer.from(b.subarray(RESP_HEADER_SIZE, RESP_HEADER_SIZE + SNP_DERIVED_KEY_SIZE));
}

function checkRequest<O extends NativeGuestOutcome>(command: string, o: O): O {
  if (o.errno !== 0) throw SnpGuestError.fromRequest(command, o.errno, o.exitinfo2 ?? 0n);
  return o;
}

function certsLengthArg(command: string, v: unknown): number {
  const n = v === undefined ? SNP_CERTS_MAX_SIZE : integer(command, 'certsLength', v, 0, SNP_CERTS_MAX_SIZE);
  if (n % GUEST_PAGE_SIZE !== 0) throw new SevArgumentError(command, `certsLength must be a multiple of ${GUEST_PAGE_SIZE}, got ${n}`);
  return n;
}

/** An open /dev/sev-guest. */
export class SnpGuestDevice {
  readonly path: string;
  private readonly dev: NativeSevGuestDevice;
  private inFlight = 0;
  private closeRequested = false;

  private constructor(path: string, dev: NativeSevGuestDevice) {
    this.path = path;
    this.dev = dev;
  }

  /** Opens the guest device (default /dev/sev-guest, or env SEV_GUEST_DEVICE) read-write. */
  static open(options: SnpGuestOpenOptions | null = {}): SnpGuestDevice {
    const path = options?.path ?? defaultPath();
    if (typeof path !== 'string' || path.length === 0) throw new SevArgumentError('open', 'path must be a non-empty string');
    try {
      return new SnpGuestDevice(path, new native.SevGuestDevice(path, fsConstants.O_RDWR));
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (typeof errno === 'number') throw openError(path, errno);
      throw e;
    }
  }

  get closed(): boolean {
    return this.closeRequested || this.dev.closed;
  }

  /** Closes the fd; requests already started finish first, new ones fail with SevClosedError. Idempotent. */
  close(): void {
    this.closeRequested = true;
    if (this.inFlight === 0) this.dev.close();
  }

  private device(command: string): NativeSevGuestDevice {
    if (this.closed) throw new SevClosedError(command, `SnpGuestDevice(${this.path})`);
    return this.dev;
  }

  private async run<T>(flow: () => Flow<T>): Promise<T> {
    this.inFlight++;
    try {
      return await runAsync(flow());
    } finally {
      if (--this.inFlight === 0 && this.closeRequested) this.dev.close();
    }
  }

  // ---- SNP_GET_REPORT ---------------------------------------------------------------------------

  /** SNP_GET_REPORT: an attestation report carrying `reportData`, signed by the VCEK (or VLEK). */
  getReport(req: ReportRequest = {}): Promise<GuestReport> {
    return this.run(() => this.reportFlow(req));
  }
  getReportSync(req: ReportRequest = {}): GuestReport {
    return runSync(this.reportFlow(req));
  }
  private *reportFlow(req: ReportRequest): Flow<GuestReport> {
    const command = 'SNP_GET_REPORT';
    const dev = this.device(command);
    const msgVersion = msgVersionArg(command, req.msgVersion);
    const request = encodeReportRequest(command, req);
    const resp = Buffer.alloc(REPORT_RESP_SIZE);
    checkRequest(command, yield* call((a) => dev.getReport(msgVersion, request, resp, a)));
    const raw = decodeReportResponse(command, resp);
    return { raw, report: parseAttestationReport(raw, { generation: req.generation }) };
  }

  // ---- SNP_GET_EXT_REPORT -----------------------------------------------------------------------

  /**
   * SNP_GET_EXT_REPORT: a report and the host's certificate table (VCEK/VLEK, ASK, ARK). When the
   * certificates do not fit the buffer, the kernel says how much they need and the request is
   * repeated once with a buffer of that size.
   */
  getExtReport(req: ExtReportRequest = {}): Promise<GuestExtReport> {
    return this.run(() => this.extReportFlow(req));
  }
  getExtReportSync(req: ExtReportRequest = {}): GuestExtReport {
    return runSync(this.extReportFlow(req));
  }
  private *extReportFlow(req: ExtReportRequest): Flow<GuestExtReport> {
    const command = 'SNP_GET_EXT_REPORT';
    const dev = this.device(command);
    const msgVersion = msgVersionArg(command, req.msgVersion);
    const request = encodeReportRequest(command, req);
    let certs = Buffer.alloc(certsLengthArg(command, req.certsLength));
    let resp = Buffer.alloc(REPORT_RESP_SIZE);
    let o = yield* call((a) => dev.getExtReport(msgVersion, request, resp, certs, certs.length, a));
    if (o.errno === EIO && o.vmmError === SNP_GUEST_VMM_ERR_INVALID_LEN) {
      const needed = o.certsLen;
      if (needed === 0 || needed % GUEST_PAGE_SIZE !== 0 || needed > SNP_CERTS_MAX_SIZE || needed <= certs.length) {
        throw new SnpGuestError(
          `${command}: the host's certificates need ${needed} bytes, which the kernel cannot pass (page aligned, more than the ${certs.length} offered, at most ${SNP_CERTS_MAX_SIZE})`,
          { command, errno: o.errno, exitinfo2: o.exitinfo2 },
        );
      }
      const retryCerts = Buffer.alloc(needed);
      const retryResp = Buffer.alloc(REPORT_RESP_SIZE);
      o = yield* call((a) => dev.getExtReport(msgVersion, request, retryResp, retryCerts, retryCerts.length, a));
      certs = retryCerts;
      resp = retryResp;
    }
    checkRequest(command, o);
    const raw = decodeReportResponse(command, resp);
    const report = parseAttestationReport(raw, { generation: req.generation });
    return { raw, report, certificates: parseCertTable(certs), certsBlob: certs };
  }

  // ---- SNP_GET_DERIVED_KEY ----------------------------------------------------------------------

  /** SNP_GET_DERIVED_KEY: a 32-byte key derived from the VCEK or VMRK and the selected guest fields. */
  getDerivedKey(req: DerivedKeyRequest): Promise<Buffer> {
    return this.run(() => this.keyFlow(req));
  }
  getDerivedKeySync(req: DerivedKeyRequest): Buffer {
    return runSync(this.keyFlow(req));
  }
  private *keyFlow(req: DerivedKeyRequest): Flow<Buffer> {
    const command = 'SNP_GET_DERIVED_KEY';
    const dev = this.device(command);
    const msgVersion = msgVersionArg(command, req?.msgVersion);
    const request = encodeDerivedKeyRequest(command, req);
    const resp = Buffer.alloc(KEY_RESP_SIZE);
    try {
      checkRequest(command, yield* call((a) => dev.getDerivedKey(msgVersion, request, resp, a)));
      return decodeKeyResponse(command, resp);
    } finally {
      resp.fill(0); // the response held the key: do not leave a copy behind
    }
  }
}
