// Attestation reports through configfs-tsm (Linux Documentation/ABI/testing/configfs-tsm-report,
// drivers/virt/coco/guest/report.c): the vendor-neutral file interface. A report is an entry
// created with mkdir under /sys/kernel/config/tsm/report/; writing `inblob` (64 bytes of report
// data, for provider sev_guest) and optionally `privlevel` (the VMPL, ≥ privlevel_floor, ≤ 3)
// each advance `generation`; reading `outblob` makes the report (the raw ATTESTATION_REPORT for
// sev_guest), `auxblob` the certificate table (the same as SNP_GET_EXT_REPORT's, maybe absent or
// empty). If another writer touched the entry in between, `generation` says so and we retry.
// The entry is always removed (rmdir), also on failure.
//
// Only open/read/write/close/mkdir/rmdir on absolute paths are used — never stat — so that the
// emulator, which answers these paths by interposing exactly those calls, serves them too.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SnpGuestError, errnoName } from '../errors';
import { integer } from '../kvm/validate';
import { type CertTableEntry, parseCertTable } from './cert-table';
import { type AttestationReport, parseAttestationReport, type SnpGeneration } from './report';

export const DEFAULT_TSM_REPORT_PATH = '/sys/kernel/config/tsm/report';
/** The provider name the sev-guest driver registers (KBUILD_MODNAME). */
export const TSM_PROVIDER_SEV_GUEST = 'sev_guest';

const CMD = 'configfs-tsm report';
const { ENOENT, EACCES, EPERM, EBUSY, EINVAL, ENXIO, EFBIG } = osConstants.errno;

/** The file operations the protocol needs: a seam for tests that play the kernel's side. */
export interface TsmIo {
  mkdir(p: string): void;
  rmdir(p: string): void;
  /** Whole content of a file (read until EOF). */
  read(p: string): Buffer;
  /** One write of `data` to an existing file (no create, no truncate). */
  write(p: string, data: Uint8Array): void;
}

function readAll(fd: number): Buffer {
  const chunks: Buffer[] = [];
  for (;;) {
    const chunk = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, chunk, 0, chunk.length, null);
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
  }
  return Buffer.concat(chunks);
}

/** The real file system, through open/read/write/close/mkdir/rmdir only. */
export const fsTsmIo: TsmIo = {
  mkdir: (p) => fs.mkdirSync(p, 0o700),
  rmdir: (p) => fs.rmdirSync(p),
  read: (p) => {
    const fd = fs.openSync(p, fs.constants.O_RDONLY);
    try {
      return readAll(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  write: (p, data) => {
    const fd = fs.openSync(p, fs.constants.O_WRONLY);
    try {
      const n = fs.writeSync(fd, data, 0, data.length, null);
      if (n !== data.length) throw Object.assign(new Error(`short write to ${p}: ${n} of ${data.length}`), { code: 'EIO', errno: osConstants.errno.EIO });
    } finally {
      fs.closeSync(fd); // configfs binary attributes commit on release: a failure shows here
    }
  },
};

export interface TsmReportOptions {
  /** 64 bytes of report data (REPORT_DATA); zeros when omitted. */
  reportData?: Uint8Array;
  /** The privilege level (SNP: VMPL) to write to `privlevel`; not written when omitted. */
  privlevel?: number;
  /** The configfs-tsm report directory (default /sys/kernel/config/tsm/report). */
  basePath?: string;
  /** The provider expected (default sev_guest); a report from another is refused. */
  provider?: string;
  /** Attempts when another writer changes the entry meanwhile (default 3). */
  attempts?: number;
  /** The TCB layout to read the report with (version 2 reports do not say). */
  generation?: SnpGeneration;
  /** The file operations (tests). */
  io?: TsmIo;
}

export interface TsmReport {
  provider: string;
  /** The entry's generation the report belongs to. */
  generation: number;
  /** The raw report (`outblob`). */
  raw: Buffer;
  report: AttestationReport;
  /** `auxblob` as read (null when the file is absent). */
  auxblob: Buffer | null;
  /** The certificate table in `auxblob` (empty when there is none). */
  certificates: CertTableEntry[];
}

function errnoOf(e: unknown): number {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.errno === 'number') return Math.abs(err.errno);
  const code = err?.code;
  return code && typeof (osConstants.errno as Record<string, number>)[code] === 'number' ? (osConstants.errno as Record<string, number>)[code] : osConstants.errno.EIO;
}

function fileError(what: string, file: string, e: unknown, hint = ''): SnpGuestError {
  const errno = errnoOf(e);
  return new SnpGuestError(`${CMD}: ${what} ${file} failed: ${errnoName(errno)}${hint ? ` (${hint})` : ''}`, { command: CMD, errno, cause: e });
}

/** Hints for what the kernel's errnos mean on each file (drivers/virt/coco/guest/report.c, sev-guest.c). */
function readHint(errno: number): string {
  if (errno === EINVAL) return 'the firmware refused the request (INVALID_PARAM or INVALID_KEY), or no inblob was written';
  if (errno === ENXIO) return 'no TSM provider, or the firmware returned an error status';
  if (errno === EFBIG) return 'the report exceeds configfs-tsm\'s limits';
  if (errno === EBUSY) return 'another writer is using the entry';
  return '';
}

function parseGeneration(text: Buffer, file: string): number {
  const s = text.toString('latin1').trim();
  if (!/^[0-9]+$/.test(s)) throw new SnpGuestError(`${CMD}: ${file} holds '${s.slice(0, 40)}', not a generation number`, { command: CMD, errno: osConstants.errno.EIO });
  return Number(s);
}

/**
 * Gets an attestation report through configfs-tsm: a fresh entry, the report data (and privlevel)
 * written, outblob/auxblob read under an unchanged generation, the entry removed.
 */
export function getTsmReport(options: TsmReportOptions = {}): TsmReport {
  const io = options.io ?? fsTsmIo;
  const base = options.basePath ?? DEFAULT_TSM_REPORT_PATH;
  if (typeof base !== 'string' || !path.isAbsolute(base)) throw new SevArgumentError(CMD, `basePath must be an absolute path, got ${String(base)}`);
  const reportData = Buffer.alloc(64);
  if (options.reportData !== undefined) {
    if (!(options.reportData instanceof Uint8Array) || options.reportData.length !== 64) {
      throw new SevArgumentError(CMD, 'reportData must be 64 bytes');
    }
    Buffer.from(options.reportData).copy(reportData);
  }
  const privlevel = options.privlevel === undefined ? undefined : integer(CMD, 'privlevel', options.privlevel, 0, 3);
  const attempts = options.attempts === undefined ? 3 : integer(CMD, 'attempts', options.attempts, 1, 100);
  const expectedProvider = options.provider ?? TSM_PROVIDER_SEV_GUEST;

  const entry = path.join(base, `node-sev-${process.pid}-${randomBytes(8).toString('hex')}`);
  try {
    io.mkdir(entry);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === ENOENT) {
      throw new SnpGuestError(
        `configfs-tsm not available (no ${base}): not a confidential guest, configfs not mounted ` +
          '(mount -t configfs none /sys/kernel/config), or the TSM report module missing',
        { command: CMD, errno, cause: e },
      );
    }
    const hint = errno === EACCES || errno === EPERM ? 'run as root' : errno === ENXIO ? 'no TSM provider registered' : '';
    throw fileError('mkdir', entry, e, hint);
  }

  let failure: unknown;
  try {
    const file = (name: string) => path.join(entry, name);
    const read = (name: string, hint?: (errno: number) => string): Buffer => {
      try {
        return io.read(file(name));
      } catch (e) {
        throw fileError('reading', file(name), e, hint?.(errnoOf(e)));
      }
    };
    const write = (name: string, data: Uint8Array): void => {
      try {
        io.write(file(name), data);
      } catch (e) {
        const errno = errnoOf(e);
        const hint = name === 'privlevel' && errno === EINVAL ? 'below privlevel_floor or above 3' : errno === EBUSY ? 'another writer is using the entry' : '';
        throw fileError('writing', file(name), e, hint);
      }
    };

    const provider = read('provider').toString('utf8').trim();
    if (provider !== expectedProvider) {
      throw new SnpGuestError(`${CMD}: the provider is '${provider}', not '${expectedProvider}'`, { command: CMD, errno: osConstants.errno.ENODEV });
    }
    for (let attempt = 1; ; attempt++) {
      const before = parseGeneration(read('generation'), file('generation'));
      let writes = 0;
      if (privlevel !== undefined) {
        write('privlevel', Buffer.from(`${privlevel}\n`));
        writes++;
      }
      write('inblob', reportData);
      writes++;
      const outblob = read('outblob', readHint);
      let auxblob: Buffer | null;
      try {
        auxblob = io.read(file('auxblob'));
      } catch (e) {
        if (errnoOf(e) !== ENOENT) throw fileError('reading', file('auxblob'), e, readHint(errnoOf(e)));
        auxblob = null;
      }
      const after = parseGeneration(read('generation'), file('generation'));
      if (after !== before + writes) {
        if (attempt < attempts) continue;
        throw new SnpGuestError(
          `${CMD}: another writer changed the entry during ${attempts} attempts (generation ${before} → ${after}, expected ${before + writes})`,
          { command: CMD, errno: EBUSY },
        );
      }
      const report = parseAttestationReport(outblob, { generation: options.generation });
      const certificates = auxblob && auxblob.length > 0 ? parseCertTable(auxblob) : [];
      return { provider, generation: after, raw: outblob, report, auxblob, certificates };
    }
  } catch (e) {
    failure = e;
    throw e;
  } finally {
    try {
      io.rmdir(entry);
    } catch (e) {
      // A failure to remove is reported unless an earlier error is already on its way.
      if (failure === undefined) throw fileError('rmdir', entry, e);
    }
  }
}
