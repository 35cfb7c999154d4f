// Writing the files commands produce (keys, TEK/TIK, certificates, blobs) so that a failure or
// a concurrent reader never sees less than the whole file, and a secret is never readable by
// others, not even for a moment:
//  - each output is first written to a new file beside the target, created O_EXCL|O_NOFOLLOW
//    with its final mode (0600 for secrets), so no existing file, symlink or mode is reused;
//  - it is fsync'd, then renamed over the target (rename replaces a symlink, never follows it),
//    then the directory is fsync'd, so the new name survives a crash;
//  - with several outputs, all are written before any is renamed; on a failure the temporary
//    files are removed and no target has changed;
//  - two outputs naming the same path are refused before anything is written;
//  - a temporary file is named `.NAME.sev-PID-RANDOM.tmp`: one whose process is gone (killed
//    mid-write, kill -9) is removed by the next write into the same directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

import { fileErrorText, SevArgumentError } from './errors';

/** Secrets (private keys, TEK, TIK): owner read/write only, from creation. */
export const SECRET_MODE = 0o600;
/** Everything else: as a plain create would make it (0666 less the umask). */
export const PUBLIC_MODE = 0o666;

export interface OutputFile {
  path: string;
  data: Uint8Array | string;
  /** SECRET_MODE or PUBLIC_MODE (default). */
  mode?: number;
  /**
   * false: no fsync of the file or its directory (still temp + rename, so never half a file):
   * for caches, which are checked when read and fetched again when lost. Default true.
   */
  durable?: boolean;
}

function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.sev-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
}

const TEMP_NAME = /^\..+\.sev-(\d+)-[0-9a-f]{12}\.tmp$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * Removes the temporary files in `dir` that processes left when they died mid-write (their pid
 * is gone). Another live writer's files are kept; anything unreadable is left alone.
 */
export function removeOrphanedTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    try {
      if (fs.lstatSync(path.join(dir, name)).isFile()) {
        fs.unlinkSync(path.join(dir, name));
        removed.push(name);
      }
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

function writeTemp(command: string, file: OutputFile): string {
  const tmp = tempPathFor(file.path);
  let fd: number;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, file.mode ?? PUBLIC_MODE);
  } catch (e) {
    throw new SevArgumentError(command, fileErrorText('write', file.path, e));
  }
  try {
    fs.writeFileSync(fd, file.data);
    if (file.durable !== false) fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new SevArgumentError(command, fileErrorText('write', file.path, e));
  }
  fs.closeSync(fd);
  return tmp;
}

function syncDirectory(dir: string): void {
  try {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename itself has happened.
  }
}

/** Writes every file or none (see the top of this file). `command` names the caller in errors. */
export function writeOutputFiles(command: string, files: OutputFile[]): void {
  const targets = files.map((f) => path.resolve(f.path));
  const twice = targets.find((t, i) => targets.indexOf(t) !== i);
  if (twice) throw new SevArgumentError(command, `two outputs would be written to ${twice}: give each its own path`);
  files.forEach((f, i) => {
    let isDir = false;
    try {
      isDir = fs.statSync(targets[i]).isDirectory();
    } catch {
      // absent: fine
    }
    if (isDir) throw new SevArgumentError(command, `cannot write ${f.path}: it is a directory, not a file`);
  });
  const temps: string[] = [];
  let renaming = 0;
  try {
    for (const f of files) temps.push(writeTemp(command, f));
    for (; renaming < temps.length; renaming++) fs.renameSync(temps[renaming], targets[renaming]);
  } catch (e) {
    for (const tmp of temps) fs.rmSync(tmp, { force: true });
    if (e instanceof SevArgumentError) throw e;
    throw new SevArgumentError(command, fileErrorText('write', files[renaming].path, e));
  }
  for (const dir of new Set(targets.map((t) => path.dirname(t)))) removeOrphanedTemps(dir);
  const durable = files.filter((f) => f.durable !== false).map((f) => path.dirname(path.resolve(f.path)));
  for (const dir of new Set(durable)) syncDirectory(dir);
}

/**
 * mkdir -p of a directory outputs go into, one level at a time (node's recursive mkdir spins
 * forever on /proc, where mkdir answers ENOENT under an existing parent); a failure is one line
 * naming the directory that could not be made.
 */
export function makeOutputDir(command: string, dir: string, mode = 0o777): void {
  const full = path.resolve(dir);
  let cur = path.parse(full).root;
  for (const part of full.slice(cur.length).split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    try {
      fs.mkdirSync(cur, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new SevArgumentError(command, fileErrorText('create', cur, e));
    }
  }
}

/** One file: writeOutputFiles with a single output. */
export function writeOutputFile(command: string, file: string, data: Uint8Array | string, mode = PUBLIC_MODE): void {
  writeOutputFiles(command, [{ path: file, data, mode }]);
}
