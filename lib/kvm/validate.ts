// Argument checks shared by the KVM classes: everything is rejected here, with a message saying
// what was expected, before any ioctl is issued.
import { SevArgumentError, SevClosedError } from '../errors';

const MAX_U64 = (1n << 64n) - 1n;

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** A non-negative safe integer in [min, max]. */
export function integer(command: string, name: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new SevArgumentError(command, `${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new SevArgumentError(command, `${name} must be in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/** A 64-bit unsigned value given as a non-negative safe integer or a bigint. */
export function u64(command: string, name: string, value: unknown): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > MAX_U64) throw new SevArgumentError(command, `${name} must fit in 64 bits unsigned`);
    return value;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new SevArgumentError(command, `${name} must be a non-negative integer or bigint, got ${describe(value)}`);
}

export function aligned(command: string, name: string, value: number | bigint, alignment: number): void {
  if (BigInt(value) % BigInt(alignment) !== 0n) {
    throw new SevArgumentError(command, `${name} must be a multiple of ${hex(alignment)}, got ${hex(value)}`);
  }
}

export function bytes(command: string, name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new SevArgumentError(command, `${name} must be a Buffer or Uint8Array, got ${describe(value)}`);
  }
  return value;
}

/** An open /dev/sev fd: a number, or an object with an `fd` (e.g. SevPlatform). */
export type SevFd = number | { readonly fd: number; readonly closed?: boolean };

export function sevFd(command: string, sev: unknown): number {
  if (typeof sev === 'object' && sev !== null && 'fd' in sev) {
    if ((sev as { closed?: unknown }).closed === true) throw new SevClosedError(command, 'the SEV device');
    return integer(command, 'sev fd', (sev as { fd: unknown }).fd, 0, 0x7fffffff);
  }
  if (typeof sev === 'number') return integer(command, 'sev fd', sev, 0, 0x7fffffff);
  throw new SevArgumentError(command, `expected an open /dev/sev fd (a number or a SevPlatform), got ${describe(sev)}`);
}

/** [offset, offset + length) must lie inside an object of `size` bytes. */
export function inside(command: string, what: string, offset: number, length: number, size: number, where = ''): void {
  if (offset + length > size) {
    throw new SevArgumentError(
      command,
      `${what} ${hex(offset)}+${hex(length)} is outside guest memory (${hex(size)} bytes)${where}`,
    );
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}
