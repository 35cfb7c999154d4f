// One error type for everything node-sev reports: which command failed, the errno the kernel
// returned, and the SEV firmware status by name. Subclasses narrow the cause (bad input, bad
// certificate) without changing what callers can read from the error.
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/**
 * SEV firmware status codes (the kernel's sev_ret_code, Linux 7.2 include/uapi/linux/psp-sev.h),
 * by value, named as the UAPI spells them without the SEV_RET_ prefix. 0x03 has two names there
 * (SEV_RET_INAVLID_CONFIG, an old misspelling kept for compatibility, and SEV_RET_INVALID_CONFIG):
 * values print as the correct spelling; both names are in FIRMWARE_STATUS_CODE.
 */
export const FIRMWARE_STATUS: Readonly<Record<number, string>> = Object.freeze({
  [-1]: 'NO_FW_CALL',
  0x00: 'SUCCESS',
  0x01: 'INVALID_PLATFORM_STATE',
  0x02: 'INVALID_GUEST_STATE',
  0x03: 'INVALID_CONFIG',
  0x04: 'INVALID_LEN',
  0x05: 'ALREADY_OWNED',
  0x06: 'INVALID_CERTIFICATE',
  0x07: 'POLICY_FAILURE',
  0x08: 'INACTIVE',
  0x09: 'INVALID_ADDRESS',
  0x0a: 'BAD_SIGNATURE',
  0x0b: 'BAD_MEASUREMENT',
  0x0c: 'ASID_OWNED',
  0x0d: 'INVALID_ASID',
  0x0e: 'WBINVD_REQUIRED',
  0x0f: 'DFFLUSH_REQUIRED',
  0x10: 'INVALID_GUEST',
  0x11: 'INVALID_COMMAND',
  0x12: 'ACTIVE',
  0x13: 'HWSEV_RET_PLATFORM',
  0x14: 'HWSEV_RET_UNSAFE',
  0x15: 'UNSUPPORTED',
  0x16: 'INVALID_PARAM',
  0x17: 'RESOURCE_LIMIT',
  0x18: 'SECURE_DATA_INVALID',
  0x19: 'INVALID_PAGE_SIZE',
  0x1a: 'INVALID_PAGE_STATE',
  0x1b: 'INVALID_MDATA_ENTRY',
  0x1c: 'INVALID_PAGE_OWNER',
  0x1d: 'AEAD_OFLOW',
  0x1f: 'EXIT_RING_BUFFER',
  0x20: 'RMP_INIT_REQUIRED',
  0x21: 'BAD_SVN',
  0x22: 'BAD_VERSION',
  0x23: 'SHUTDOWN_REQUIRED',
  0x24: 'UPDATE_FAILED',
  0x25: 'RESTORE_REQUIRED',
  0x26: 'RMP_INITIALIZATION_FAILED',
  0x27: 'INVALID_KEY',
  0x28: 'SHUTDOWN_INCOMPLETE',
  0x30: 'INCORRECT_BUFFER_LENGTH',
  0x31: 'EXPAND_BUFFER_LENGTH_REQUEST',
  0x32: 'SPDM_REQUEST',
  0x33: 'SPDM_ERROR',
  0x35: 'SEV_STATUS_ERR_IN_DEV_CONN',
  0x36: 'SEV_STATUS_INVALID_DEV_CTX',
  0x37: 'SEV_STATUS_INVALID_TDI_CTX',
  0x38: 'SEV_STATUS_INVALID_TDI',
  0x39: 'SEV_STATUS_RECLAIM_REQUIRED',
  0x3a: 'IN_USE',
  0x3b: 'SEV_STATUS_INVALID_DEV_STATE',
  0x3c: 'SEV_STATUS_INVALID_TDI_STATE',
  0x3d: 'SEV_STATUS_DEV_CERT_CHANGED',
  0x3e: 'SEV_STATUS_RESYNC_REQ',
  0x3f: 'SEV_STATUS_RESPONSE_TOO_LARGE',
});

/**
 * SEV_RET_MAX: one past the highest status the UAPI names. It is an enum bound, not a status the
 * firmware returns, so a value of 0x40 prints as unknown.
 */
export const FIRMWARE_STATUS_MAX = 0x40;

/** Firmware status value by every name the UAPI gives it (inverse of FIRMWARE_STATUS, plus aliases). */
export const FIRMWARE_STATUS_CODE: Readonly<Record<string, number>> = Object.freeze({
  ...Object.fromEntries(Object.entries(FIRMWARE_STATUS).map(([k, v]) => [v, Number(k)])),
  INAVLID_CONFIG: 0x03,
  MAX: FIRMWARE_STATUS_MAX,
});

/**
 * The status's name, or UNKNOWN_0x<hex>. The kernel stores the int sev_ret_code in a __u32
 * `error` field, so NO_FW_CALL (-1) reaches user space as 0xffffffff: read it back as signed.
 */
export function firmwareStatusName(status: number): string {
  const s = status | 0;
  return FIRMWARE_STATUS[s] ?? `UNKNOWN_0x${(s >>> 0).toString(16)}`;
}

/**
 * The kernel's ENOTSUPP (524): a kernel-internal errno that still reaches user space, e.g. from
 * /dev/sev when the firmware's API is too old for a command (sev_ioctl_do_get_id2). libc has no name
 * for it, and it is not EOPNOTSUPP (95).
 */
export const ENOTSUPP = 524;

const ERRNO_NAMES: Record<number, string> = {
  ...Object.fromEntries(Object.entries(osConstants.errno).map(([name, value]) => [value, name])),
  // Where libc has two names for one value, use the one the kernel's code returns: the table
  // above keeps whichever Node lists last (EWOULDBLOCK for 11).
  [osConstants.errno.EAGAIN]: 'EAGAIN',
  [osConstants.errno.EOPNOTSUPP]: 'EOPNOTSUPP',
  [ENOTSUPP]: 'ENOTSUPP',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

export interface SevErrorDetails {
  /** The command that failed, e.g. 'PEK_CSR', 'LAUNCH_START', or an API name for bad input. */
  command: string;
  /** errno the kernel returned (0 when no system call was made). */
  errno?: number;
  /** Firmware status code (the kernel's sev_ret_code), when the firmware answered. */
  firmwareStatus?: number;
  cause?: unknown;
}

export class SevError extends Error {
  readonly command: string;
  readonly errno: number;
  /** errno by name ('EIO', 'EPERM', ...), or 'EINVALIDARG' style codes from subclasses. */
  readonly code: string;
  /** Firmware status code (-1 = NO_FW_CALL), undefined when none was given. */
  readonly firmwareStatus: number | undefined;
  /** Firmware status by name ('INVALID_PLATFORM_STATE', ...), undefined when none was given. */
  readonly firmwareStatusName: string | undefined;

  constructor(message: string, details: SevErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SevError';
    this.command = details.command;
    this.errno = details.errno ?? 0;
    this.code = this.errno ? errnoName(this.errno) : 'ESEV';
    // As the kernel's int sev_ret_code: NO_FW_CALL is -1 here, not the 0xffffffff of the __u32 field.
    this.firmwareStatus = details.firmwareStatus === undefined ? undefined : details.firmwareStatus | 0;
    this.firmwareStatusName =
      details.firmwareStatus === undefined ? undefined : firmwareStatusName(details.firmwareStatus);
  }

  /** A failed ioctl: errno from the kernel and, when the firmware ran, its status. */
  static fromIoctl(command: string, errno: number, firmwareStatus: number): SevError {
    const fw = firmwareStatus !== 0 ? ` (firmware status ${firmwareStatusName(firmwareStatus)})` : '';
    return new SevError(`${command} failed: ${errnoName(errno)}${fw}`, {
      command,
      errno,
      firmwareStatus: firmwareStatus !== 0 ? firmwareStatus : undefined,
    });
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      message: this.message,
      command: this.command,
      errno: this.errno,
      code: this.code,
      firmwareStatus: this.firmwareStatusName,
    };
  }
}

/** Bad arguments, rejected before any system call. */
export class SevArgumentError extends SevError {
  constructor(command: string, message: string) {
    super(`${command}: ${message}`, { command });
    this.name = 'SevArgumentError';
    (this as { code: string }).code = 'ERR_SEV_ARGUMENT';
  }
}

/**
 * The one-line wording of a failed file operation, for every command and reader:
 * `cannot read kernel.bin: no such file or directory (ENOENT)` — the file, the problem, the code,
 * never Node's message with its syscall and stack.
 */
export function fileErrorText(action: 'read' | 'write' | 'create' | 'use', file: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException | undefined;
  if (!err?.code) return `cannot ${action} ${file}: ${err?.message ?? String(e)}`;
  const problem = err.code === 'EISDIR' ? 'is a directory' : typeof err.errno === 'number' ? getSystemErrorMap().get(err.errno)?.[1] : undefined;
  return `cannot ${action} ${file}: ${problem ?? 'error'} (${err.code})`;
}

/** A malformed or untrusted certificate / chain. */
export class SevCertificateError extends SevError {
  constructor(command: string, message: string, cause?: unknown) {
    super(`${command}: ${message}`, { command, cause });
    this.name = 'SevCertificateError';
    (this as { code: string }).code = 'ERR_SEV_CERTIFICATE';
  }
}

/** An object (device, VM, launch) used after close(). */
export class SevClosedError extends SevError {
  constructor(command: string, what: string) {
    super(`${command}: ${what} is closed`, { command, errno: osConstants.errno.EBADF });
    this.name = 'SevClosedError';
  }
}

/**
 * VMM error codes of an SNP guest request (bits 63:32 of SW_EXITINFO2, Linux
 * include/uapi/linux/sev-guest.h SNP_GUEST_VMM_ERR_*). KVM also uses 0xffffffff (generic).
 */
export const SNP_GUEST_VMM_ERROR: Readonly<Record<number, string>> = Object.freeze({
  1: 'INVALID_LEN',
  2: 'BUSY',
  0xffffffff: 'GENERIC',
});

export function vmmErrorName(code: number): string {
  return SNP_GUEST_VMM_ERROR[code >>> 0] ?? `UNKNOWN_0x${(code >>> 0).toString(16)}`;
}

export interface SnpGuestErrorDetails extends SevErrorDetails {
  /** SW_EXITINFO2 as the kernel returned it (undefined when the failure was not a request's). */
  exitinfo2?: bigint;
}

/**
 * A failed SEV-SNP guest request (/dev/sev-guest or configfs-tsm): the ioctl's errno and the
 * firmware / VMM errors from exitinfo2, or (errno 0) the status the firmware put in its response.
 */
export class SnpGuestError extends SevError {
  /** SW_EXITINFO2 (bits 31:0 firmware error, 63:32 VMM error), when the kernel gave one. */
  readonly exitinfo2: bigint | undefined;
  /** VMM error code (bits 63:32 of exitinfo2), 0 when none. */
  readonly vmmError: number;
  /** VMM error by name ('INVALID_LEN', 'BUSY', ...), undefined when none. */
  readonly vmmErrorName: string | undefined;

  constructor(message: string, details: SnpGuestErrorDetails) {
    super(message, details);
    this.name = 'SnpGuestError';
    this.exitinfo2 = details.exitinfo2;
    this.vmmError = details.exitinfo2 === undefined ? 0 : Number(details.exitinfo2 >> 32n);
    this.vmmErrorName = this.vmmError ? vmmErrorName(this.vmmError) : undefined;
  }

  /** A guest-request ioctl that failed: errno, and the firmware/VMM errors exitinfo2 carries. */
  static fromRequest(command: string, errno: number, exitinfo2: bigint): SnpGuestError {
    const fw = Number(exitinfo2 & 0xffffffffn);
    const vmm = Number(exitinfo2 >> 32n);
    const parts: string[] = [];
    if (fw) parts.push(`firmware status ${firmwareStatusName(fw)}`);
    if (vmm) parts.push(`VMM error ${vmmErrorName(vmm)}`);
    const why = parts.length ? ` (${parts.join(', ')})` : '';
    return new SnpGuestError(`${command} failed: ${errnoName(errno)}${why}`, {
      command,
      errno,
      firmwareStatus: fw || undefined,
      exitinfo2,
    });
  }

  /** The firmware answered, but its response's status says it refused the request. */
  static fromStatus(command: string, status: number): SnpGuestError {
    return new SnpGuestError(
      `${command}: the firmware refused the request: ${firmwareStatusName(status)} (0x${(status >>> 0).toString(16)})`,
      { command, firmwareStatus: status },
    );
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      ...(this.vmmErrorName ? { vmmError: this.vmmErrorName } : {}),
      ...(this.exitinfo2 !== undefined ? { exitinfo2: `0x${this.exitinfo2.toString(16)}` } : {}),
    };
  }
}
