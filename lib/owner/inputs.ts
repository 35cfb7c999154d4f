// Parsing of the guest owner's inputs the way sevctl accepts them: numbers as decimal or
// 0x-hex, binary values as a path to a file or inline base64 (a path that exists wins).
// Every failure is a SevArgumentError naming the flag, so CLI and API report the same thing.
import * as fs from 'node:fs';

import { SevArgumentError } from '../errors';

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

/** Reads a whole file named by a flag, turning fs errors into an argument error naming both. */
export function readFileArg(command: string, name: string, path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new SevArgumentError(command, `${name}: cannot read file ${path} (${code})`);
  }
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
