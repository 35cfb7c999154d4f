// Digests of boot images read once, in bounded memory. A launch measures a kernel and an initrd
// only through their SHA-256 (the SEV hashes table, sev-hashes.ts), so a 1 GiB initrd never has
// to be in memory: `digestFile` streams it through the hash in fixed-size reads and the result,
// a FileDigest, stands in for the bytes wherever the API takes a kernel or initrd. Buffers keep
// working: `digestOf` hashes them on the spot.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

import { fileErrorText, SevArgumentError } from '../errors';

export type DigestAlgorithm = 'sha256' | 'sha384';

/**
 * Bytes per read. Each read is hashed while it is still in the CPU's cache, so past a few hundred
 * KiB larger reads gain nothing; 1 MiB amortizes the syscall and keeps memory flat.
 */
export const DIGEST_READ_SIZE = 1 << 20;

/** A file's (or buffer's) size and digests, computed in one pass over its bytes. */
export class FileDigest {
  constructor(
    readonly size: number,
    private readonly digests: Readonly<Partial<Record<DigestAlgorithm, Buffer>>>,
    /** The file it was read from, when it was. */
    readonly path?: string,
  ) {}

  /** The digest with `algorithm`; it must have been computed (digestFile's `algorithms`). */
  digest(algorithm: DigestAlgorithm): Buffer {
    const d = this.digests[algorithm];
    if (!d) throw new SevArgumentError('measurement', `the ${algorithm} digest of ${this.path ?? 'this input'} was not computed (digestFile's algorithms)`);
    return d;
  }

  /** The digests of `bytes`. */
  static of(bytes: Uint8Array, algorithms: readonly DigestAlgorithm[] = ['sha256']): FileDigest {
    const digests: Partial<Record<DigestAlgorithm, Buffer>> = {};
    for (const a of algorithms) digests[a] = createHash(a).update(bytes).digest();
    return new FileDigest(bytes.length, digests);
  }
}

/** An input measured through its digest only: its bytes, or their digest computed beforehand. */
export type DigestInput = Uint8Array | FileDigest;

/** The `algorithm` digest of `input`: the precomputed one, or the bytes hashed now. */
export function digestOf(input: DigestInput, algorithm: DigestAlgorithm = 'sha256'): Buffer {
  return input instanceof FileDigest ? input.digest(algorithm) : createHash(algorithm).update(input).digest();
}

/** The byte count of `input`. */
export function digestInputSize(input: DigestInput): number {
  return input instanceof FileDigest ? input.size : input.length;
}

export interface DigestFileOptions {
  /** Default ['sha256']: all are computed in the same pass. */
  algorithms?: readonly DigestAlgorithm[];
  /** Bytes per read (default DIGEST_READ_SIZE). */
  readSize?: number;
}

/**
 * Streams the open file `fd` through the hashes, once, from its start to its end; memory stays
 * at one read buffer whatever the size. The caller keeps ownership of the fd.
 */
export function digestFd(fd: number, options: DigestFileOptions = {}, path?: string): FileDigest {
  const algorithms = options.algorithms ?? ['sha256'];
  const hashes = algorithms.map((a) => createHash(a));
  const buffer = Buffer.allocUnsafe(options.readSize ?? DIGEST_READ_SIZE);
  let size = 0;
  for (;;) {
    const n = fs.readSync(fd, buffer, 0, buffer.length, size);
    if (n === 0) break;
    const bytes = n === buffer.length ? buffer : buffer.subarray(0, n);
    for (const h of hashes) h.update(bytes);
    size += n;
  }
  const digests: Partial<Record<DigestAlgorithm, Buffer>> = {};
  algorithms.forEach((a, i) => (digests[a] = hashes[i].digest()));
  return new FileDigest(size, digests, path);
}

/**
 * The digests of the file at `path`, read once in DIGEST_READ_SIZE reads (a 1 GiB initrd costs
 * 1 MiB of memory). It must be a regular file, or /dev/null (empty). Errors are
 * SevArgumentErrors naming the file.
 */
export function digestFile(path: string, options: DigestFileOptions = {}): FileDigest {
  return digestFileArg('measurement', 'input', path, options);
}

/** digestFile for the input file a flag names: errors name `command` and `name` (the flag). */
export function digestFileArg(command: string, name: string, path: string, options: DigestFileOptions = {}): FileDigest {
  return withInputFile(command, name, path, Infinity, (fd) => digestFd(fd, options, path), () => FileDigest.of(Buffer.alloc(0), options.algorithms));
}

/**
 * digestFile without blocking the event loop: the reads run on libuv's thread pool, the hashing
 * between them (the next read is in flight while the current one is hashed).
 */
export async function digestFileAsync(path: string, options: DigestFileOptions = {}): Promise<FileDigest> {
  const handle = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
    throw new SevArgumentError('measurement', fileErrorText('read', path, e));
  });
  try {
    const st = await handle.stat();
    if (isDevNull(st)) return FileDigest.of(Buffer.alloc(0), options.algorithms);
    if (!st.isFile()) throw new SevArgumentError('measurement', `${path} is ${describeNonFile(st)}, not a regular file`);
    const algorithms = options.algorithms ?? ['sha256'];
    const hashes = algorithms.map((a) => createHash(a));
    const readSize = options.readSize ?? DIGEST_READ_SIZE;
    // Two buffers: one being hashed, one being filled.
    const buffers = [Buffer.allocUnsafe(readSize), Buffer.allocUnsafe(readSize)];
    let size = 0;
    let pending = handle.read(buffers[0], 0, readSize, 0);
    for (let i = 0; ; i ^= 1) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const position = size + bytesRead;
      pending = handle.read(buffers[i ^ 1], 0, readSize, position);
      const bytes = bytesRead === readSize ? buffers[i] : buffers[i].subarray(0, bytesRead);
      for (const h of hashes) h.update(bytes);
      size = position;
    }
    const digests: Partial<Record<DigestAlgorithm, Buffer>> = {};
    algorithms.forEach((a, i) => (digests[a] = hashes[i].digest()));
    return new FileDigest(size, digests, path);
  } catch (e) {
    if (e instanceof SevArgumentError) throw e;
    throw new SevArgumentError('measurement', fileErrorText('read', path, e));
  } finally {
    await handle.close();
  }
}

let devNullRdev: number | null | undefined;

/** Whether `st` is /dev/null, which stands for an empty input (sev-snp-measure's users pass it for no initrd). */
export function isDevNull(st: fs.Stats): boolean {
  if (!st.isCharacterDevice()) return false;
  if (devNullRdev === undefined) {
    try {
      devNullRdev = fs.statSync('/dev/null').rdev;
    } catch {
      devNullRdev = null;
    }
  }
  return st.rdev === devNullRdev;
}

export function describeNonFile(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens the input file a flag names and checks it on the open fd before anything is read: a
 * regular file of at most `maxBytes` (/dev/zero or a 5 GB file is refused, not read), or
 * /dev/null, for which `empty()` is returned. fs errors become an argument error naming the flag
 * and the file.
 */
export function withInputFile<T>(command: string, name: string, path: string, maxBytes: number, read: (fd: number, size: number) => T, empty: () => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // a FIFO must not block the open
  } catch (e) {
    throw new SevArgumentError(command, `${name}: ${fileErrorText('read', path, e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (isDevNull(st)) return empty();
    if (!st.isFile()) throw new SevArgumentError(command, `${name}: ${path} is ${describeNonFile(st)}, not a regular file`);
    if (st.size > maxBytes) throw new SevArgumentError(command, `${name}: ${path} is ${st.size} bytes, more than the ${maxBytes} this input can plausibly be`);
    return read(fd, st.size);
  } catch (e) {
    if (e instanceof SevArgumentError) throw e;
    throw new SevArgumentError(command, `${name}: ${fileErrorText('read', path, e)}`);
  } finally {
    fs.closeSync(fd);
  }
}
