// Parsing of the guest owner's inputs the way sevctl accepts them: numbers as decimal or
// 0x-hex, binary values as a path to a file or inline base64 (a path that exists wins).
// Every failure is a SevArgumentError naming the flag, so CLI and API report the same thing.
import * as fs from 'node:fs';

import { SevArgumentError } from '../errors';
import { withInputFile } from './file-digest';

const DECIMAL = /^[0-9]+$/;
const HEX = /^0x[0-9a-f]+$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parses decimal or 0x-hex text (sevctl's parse_hex_or_int) and checks it is ≤ `max`. */
export function parseIntOrHex(command: string, name: string, text: string, max = 0xffffffff): number {
  const t = text.trim();
  if (!DECIMAL.test(t) && !HEX.test(t)) {
    throw new SevArgumentError(command, `${name}=${text}: value must be a decimal or 0x-hex integer`);
  }
  const value = Number.parseInt(t, HEX.test(t) ? 16 : 10);
  if (!Number.isSafeInteger(value) || value > max) {
    throw new SevArgumentError(command, `${name}=${text}: value must be at most ${max} (0x${max.toString(16)})`);
  }
  return value;
}

/** Strict standard base64 (RFC 4648 §4, with padding); null when `text` is not base64. */
export function decodeBase64Strict(text: string): Buffer | null {
  const t = text.trim();
  return t.length > 0 && BASE64.test(t) ? Buffer.from(t, 'base64') : null;
}

/**
 * sevctl's "path or base64": the contents of the file when `value` names an existing file,
 * otherwise `value` decoded as base64. With `size`, the result must be exactly that long.
 */
export function readBase64OrPath(command: string, name: string, value: string, size?: number): Buffer {
  let bytes: Buffer;
  let source: string;
  if (fs.existsSync(value)) {
    bytes = readFileArg(command, name, value);
    source = `file ${value}`;
  } else {
    const decoded = decodeBase64Strict(value);
    if (!decoded) {
      throw new SevArgumentError(command, `${name}: '${abbreviate(value)}' is neither an existing file nor valid base64`);
    }
    bytes = decoded;
    source = 'base64 value';
  }
  if (size !== undefined && bytes.length !== size) {
    throw new SevArgumentError(command, `${name} must be ${size} bytes, the ${source} has ${bytes.length}`);
  }
  return bytes;
}

/** Strict base64 (no file lookup), with an optional exact size. */
export function readBase64(command: string, name: string, value: string, size?: number): Buffer {
  const bytes = decodeBase64Strict(value);
  if (!bytes) throw new SevArgumentError(command, `${name}: '${abbreviate(value)}' is not valid base64`);
  if (size !== undefined && bytes.length !== size) {
    throw new SevArgumentError(command, `${name} must be ${size} bytes, the base64 value has ${bytes.length}`);
  }
  return bytes;
}

/** The largest input file read whole (VMSAs, certificates, reports, keys are far smaller). */
export const MAX_INPUT_FILE_BYTES = 1024 * 1024 * 1024;

/**
 * The largest firmware image (OVMF, SVSM) read whole. Firmware is parsed, not just hashed (its
 * footer table sits at the end, its metadata anywhere), so it is read into memory; real builds
 * are 1-4 MiB and QEMU maps flash firmware below 4 GiB, in a few MiB. 16 MiB keeps the CLI's
 * peak memory bounded; kernels and initrds, of any size, are streamed (digestFileArg).
 */
export const MAX_FIRMWARE_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Reads a whole file named by a flag. It must be a regular file of at most `maxBytes` (checked on
 * the open file, before reading: /dev/zero or a 5 GB file is refused, not read), or /dev/null (an
 * empty input); fs errors become an argument error naming the flag and the file. Boot images
 * measured only through their digest (kernel, initrd) are streamed instead: digestFileArg.
 */
export function readFileArg(command: string, name: string, path: string, maxBytes = MAX_INPUT_FILE_BYTES): Buffer {
  return withInputFile(command, name, path, maxBytes, (fd) => fs.readFileSync(fd), () => Buffer.alloc(0));
}

function abbreviate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `value` as bytes of exactly `length` (when given), or a SevArgumentError naming it. */
export function requireBytes(command: string, name: string, value: unknown, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SevArgumentError(command, `${name} must be a Buffer or Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new SevArgumentError(command, `${name} must be ${length} bytes, got ${value.length}`);
  }
  return value;
}
