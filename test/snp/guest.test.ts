// The SEV-SNP guest side without a guest: the certificate table, request encoding and validation,
// response decoding, error mapping, and the configfs-tsm file protocol against a temporary
// directory that plays the kernel's part.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError, SevCertificateError, SevClosedError, SevError, SnpGuestError } from '../../lib/errors';
import {
  buildCertTable,
  bytesToGuid,
  CERT_TABLE_ENTRY_SIZE,
  CERT_TABLE_GUIDS,
  guidToBytes,
  parseCertTable,
} from '../../lib/snp/cert-table';
import {
  decodeKeyResponse,
  decodeReportResponse,
  encodeDerivedKeyRequest,
  encodeReportRequest,
  SnpGuestDevice,
} from '../../lib/snp/guest';
import { fsTsmIo, getTsmReport, type TsmIo } from '../../lib/snp/tsm';

const VCEK = Buffer.from('vcek-certificate-bytes');
const ASK = Buffer.from('ask-certificate-bytes!!');
const ARK = Buffer.from('ark');

/** A well-formed (unsigned) version-2 report with the given report data and VMPL. */
function fakeReport(reportData: Uint8Array, vmpl: number): Buffer {
  const r = Buffer.alloc(1184);
  r.writeUInt32LE(2, 0);
  r.writeUInt32LE(vmpl, 0x30);
  r.writeUInt32LE(1, 0x34);
  Buffer.from(reportData).copy(r, 0x50);
  return r;
}

describe('SNP guest: certificate table', () => {
  it('reads VCEK, ASK and ARK by their GUIDs, offsets counted from the table start', () => {
    const blob = buildCertTable([{ guid: 'vcek', data: VCEK }, { guid: 'ask', data: ASK }, { guid: 'ark', data: ARK }]);
    // The wire bytes of a GUID are its text's hex digits in order (virtee/sev, AMD's sev-guest).
    assert.equal(blob.subarray(0, 4).toString('hex'), '63da758d');
    const padded = Buffer.concat([blob, Buffer.alloc(4096 - blob.length)]);
    const entries = parseCertTable(padded);
    assert.deepEqual(entries.map((e) => e.name), ['vcek', 'ask', 'ark']);
    assert.deepEqual(entries.map((e) => e.guid), [CERT_TABLE_GUIDS.vcek, CERT_TABLE_GUIDS.ask, CERT_TABLE_GUIDS.ark]);
    assert.equal(entries[0].offset, 4 * CERT_TABLE_ENTRY_SIZE);
    assert.deepEqual(entries[0].data, VCEK);
    assert.deepEqual(entries[1].data, ASK);
    assert.deepEqual(entries[2].data, ARK);
    assert.ok(entries.every((e) => e.guidByteOrder === 'uuid'));
  });

  it('names a table written in Linux guid_t byte order too, and keeps unknown GUIDs by text', () => {
    const other = 'fbb6ed74-e73e-44ab-8893-4252792d737a';
    const blob = buildCertTable([{ guid: 'vlek', data: VCEK }, { guid: other, data: ARK }], { guidByteOrder: 'guid_t' });
    assert.equal(blob.subarray(0, 4).toString('hex'), 'c24b07a8');
    const [vlek, unknown] = parseCertTable(blob);
    assert.equal(vlek.name, 'vlek');
    assert.equal(vlek.guidByteOrder, 'guid_t');
    assert.equal(unknown.name, undefined);
    assert.equal(unknown.guid, bytesToGuid(guidToBytes(other, 'guid_t')));
  });

  it('an empty or all-zero buffer is an empty table', () => {
    assert.deepEqual(parseCertTable(Buffer.alloc(0)), []);
    assert.deepEqual(parseCertTable(Buffer.alloc(4096)), []);
  });

  const table = () => buildCertTable([{ guid: 'vcek', data: VCEK }, { guid: 'ask', data: ASK }]);
  const bad = (blob: Buffer, pattern: RegExp) =>
    assert.throws(() => parseCertTable(blob), (e: unknown) => e instanceof SevCertificateError && pattern.test((e as Error).message));

  it('refuses a table without a terminating entry (truncated)', () => {
    bad(table().subarray(0, 2 * CERT_TABLE_ENTRY_SIZE), /truncated: no all-zero terminating entry/);
    bad(table().subarray(0, 30), /truncated/);
  });

  it('refuses an entry that runs past the buffer, naming it', () => {
    const blob = table();
    blob.writeUInt32LE(blob.length, CERT_TABLE_ENTRY_SIZE + 16); // ASK's offset: the very end
    bad(blob, /entry 1 \(ASK\) at 0x[0-9a-f]+\+23 runs past the end/);
    const huge = table();
    huge.writeUInt32LE(0xffffffff, 20); // VCEK's length
    bad(huge, /entry 0 \(VCEK\).*runs past the end/);
  });

  it('refuses an offset into the table itself, a zero length, overlaps and repeated GUIDs', () => {
    const intoTable = table();
    intoTable.writeUInt32LE(8, 16);
    bad(intoTable, /entry 0 \(VCEK\) offset 0x8 points into the table itself/);
    const empty = table();
    empty.writeUInt32LE(0, 20);
    bad(empty, /entry 0 \(VCEK\) has length 0/);
    const overlap = table();
    overlap.writeUInt32LE(overlap.readUInt32LE(16) + 4, CERT_TABLE_ENTRY_SIZE + 16); // ASK starts inside VCEK
    bad(overlap, /ASK at 0x[0-9a-f]+\+23 overlaps VCEK/);
    const twice = buildCertTable([{ guid: 'ark', data: ARK }, { guid: 'ark', data: ASK }]);
    bad(twice, /entry 1 \(ARK\) repeats the GUID of entry 0/);
    const nullGuid = table();
    nullGuid.fill(0, 0, 16);
    bad(nullGuid, /entry 0 has a null GUID but offset/);
  });

  it('refuses malformed GUID text', () => {
    assert.throws(() => guidToBytes('not-a-guid'), SevCertificateError);
  });
});

describe('SNP guest: requests and responses', () => {
  it('encodes snp_report_req: report data, VMPL, reserved zeros', () => {
    const data = Buffer.alloc(64, 0xab);
    const req = encodeReportRequest('T', { reportData: data, vmpl: 2 });
    assert.equal(req.length, 96);
    assert.deepEqual(req.subarray(0, 64), data);
    assert.equal(req.readUInt32LE(64), 2);
    assert.ok(req.subarray(68).every((b) => b === 0));
    assert.throws(() => encodeReportRequest('T', { reportData: Buffer.alloc(63) }), /reportData must be 64 bytes, got 63/);
    assert.throws(() => encodeReportRequest('T', { vmpl: -1 }), SevArgumentError);
  });

  it('encodes snp_derived_key_req and validates it before any ioctl', () => {
    const req = encodeDerivedKeyRequest('K', {
      rootKey: 'vmrk',
      guestFieldSelect: { measurement: true, policy: true },
      vmpl: 1,
      guestSvn: 7,
      tcbVersion: 0x1122334455667788n,
    });
    assert.equal(req.length, 32);
    assert.equal(req.readUInt32LE(0), 1);
    assert.equal(req.readUInt32LE(4), 0);
    assert.equal(req.readBigUInt64LE(8), 0b1001n);
    assert.equal(req.readUInt32LE(16), 1);
    assert.equal(req.readUInt32LE(20), 7);
    assert.equal(req.readBigUInt64LE(24), 0x1122334455667788n);
    assert.equal(encodeDerivedKeyRequest('K', { rootKey: 'vcek', keySelect: 'vlek' }).readUInt32LE(0), 4);
    assert.equal(encodeDerivedKeyRequest('K', { rootKey: 'vcek', guestFieldSelect: 0x7f }).readBigUInt64LE(8), 0x7fn);

    const refused = (req: unknown, pattern: RegExp) =>
      assert.throws(() => encodeDerivedKeyRequest('K', req as never), (e: unknown) => e instanceof SevArgumentError && pattern.test((e as Error).message));
    refused({ rootKey: 'vcek', vmpl: 4 }, /vmpl must be in \[0, 3\], got 4/);
    refused({ rootKey: 'vlek' }, /rootKey must be 'vcek' or 'vmrk'/);
    refused({ rootKey: 'vcek', guestFieldSelect: 0x80 }, /reserved bits 63:7/);
    refused({ rootKey: 'vcek', guestFieldSelect: { chipId: true } }, /no field 'chipId'/);
    refused({ rootKey: 'vcek', tcbVersion: -1 }, /tcbVersion/);
    refused({ rootKey: 'vcek', tcbVersion: 1n << 64n }, /tcbVersion must be a u64/);
    refused({ rootKey: 'vcek', launchMitVector: 1 }, /no field for it/);
    refused({ rootKey: 'vmrk', keySelect: 'vcek' }, /keySelect applies to the VCEK root key only/);
  });

  it('decodes MSG_REPORT_RSP; a non-zero status is a typed error naming the firmware status', () => {
    const resp = Buffer.alloc(4000);
    resp.writeUInt32LE(1184, 4);
    fakeReport(Buffer.alloc(64, 1), 0).copy(resp, 32);
    assert.equal(decodeReportResponse('R', resp).length, 1184);
    resp.writeUInt32LE(0x16, 0);
    assert.throws(
      () => decodeReportResponse('R', resp),
      (e: unknown) =>
        e instanceof SnpGuestError && e.firmwareStatusName === 'INVALID_PARAM' && e.errno === 0 && /INVALID_PARAM \(0x16\)/.test(e.message),
    );
    resp.writeUInt32LE(0, 0);
    resp.writeUInt32LE(5000, 4);
    assert.throws(() => decodeReportResponse('R', resp), /claims a 5000-byte report/);
    resp.writeUInt32LE(1000, 4);
    assert.throws(() => decodeReportResponse('R', resp), /1000-byte report, expected 1184/);
  });

  it('decodes MSG_KEY_RSP: the key at offset 32', () => {
    const resp = Buffer.alloc(64);
    resp.fill(7, 32);
    assert.deepEqual(decodeKeyResponse('K', resp), Buffer.alloc(32, 7));
    resp.writeUInt32LE(0x27, 0);
    assert.throws(() => decodeKeyResponse('K', resp), (e: unknown) => e instanceof SnpGuestError && e.firmwareStatusName === 'INVALID_KEY');
  });

  it('names errno, firmware error and VMM error of a failed request', () => {
    const e = SnpGuestError.fromRequest('SNP_GET_EXT_REPORT', os.constants.errno.EIO, (1n << 32n) | 0n);
    assert.equal(e.code, 'EIO');
    assert.equal(e.vmmErrorName, 'INVALID_LEN');
    assert.equal(e.firmwareStatus, undefined);
    assert.match(e.message, /SNP_GET_EXT_REPORT failed: EIO \(VMM error INVALID_LEN\)/);
    const fw = SnpGuestError.fromRequest('SNP_GET_REPORT', os.constants.errno.EIO, 0x16n);
    assert.equal(fw.firmwareStatusName, 'INVALID_PARAM');
    assert.equal((fw.toJSON() as { exitinfo2: string }).exitinfo2, '0x16');
  });
});

describe('SNP guest: /dev/sev-guest device object', () => {
  it('a missing device is a SevError with ENOENT and a hint', () => {
    const missing = path.join(os.tmpdir(), `no-sev-guest-${process.pid}`);
    assert.throws(
      () => SnpGuestDevice.open({ path: missing }),
      (e: unknown) => e instanceof SevError && e.code === 'ENOENT' && /sev-emu run --guest/.test((e as Error).message),
    );
  });

  it('a device that is not /dev/sev-guest answers ENOTTY; closed objects refuse use', async () => {
    const dev = SnpGuestDevice.open({ path: '/dev/null' });
    assert.throws(() => dev.getReportSync(), (e: unknown) => e instanceof SnpGuestError && e.code === 'ENOTTY' && e.command === 'SNP_GET_REPORT');
    await assert.rejects(dev.getDerivedKey({ rootKey: 'vcek' }), (e: unknown) => e instanceof SnpGuestError && e.code === 'ENOTTY');
    // Bad arguments are refused before the ioctl.
    assert.throws(() => dev.getDerivedKeySync({ rootKey: 'vcek', vmpl: 9 }), SevArgumentError);
    assert.throws(() => dev.getExtReportSync({ certsLength: 100 }), /multiple of 4096/);
    dev.close();
    dev.close();
    assert.equal(dev.closed, true);
    assert.throws(() => dev.getReportSync(), SevClosedError);
    await assert.rejects(dev.getExtReport(), SevClosedError);
  });
});

/**
 * The kernel's side of configfs-tsm on a real directory: mkdir makes the attribute files, writes
 * advance `generation`, writing inblob makes outblob and auxblob, rmdir removes the files first.
 */
class FakeTsmKernel implements TsmIo {
  readonly calls: string[] = [];
  provider = 'sev_guest';
  auxblob: Buffer | null = buildCertTable([{ guid: 'vcek', data: VCEK }, { guid: 'ask', data: ASK }, { guid: 'ark', data: ARK }]);
  /** Extra generation bumps (another writer) after reading outblob, for the next N reads. */
  racesLeft = 0;
  outblobErrno: string | null = null;
  private privlevel = 0;

  mkdir(p: string): void {
    this.calls.push(`mkdir ${path.basename(p)}`);
    fs.mkdirSync(p);
    const files: Record<string, string> = { provider: `${this.provider}\n`, generation: '0\n', privlevel: '', privlevel_floor: '0\n', inblob: '', outblob: '' };
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(p, name), content);
    if (this.auxblob) fs.writeFileSync(path.join(p, 'auxblob'), '');
  }

  rmdir(p: string): void {
    this.calls.push(`rmdir ${path.basename(p)}`);
    for (const f of fs.readdirSync(p)) fs.rmSync(path.join(p, f));
    fs.rmdirSync(p);
  }

  read(p: string): Buffer {
    const name = path.basename(p);
    this.calls.push(`read ${name}`);
    if (name === 'outblob' && this.outblobErrno) throw Object.assign(new Error(this.outblobErrno), { code: this.outblobErrno });
    const data = fsTsmIo.read(p);
    if (name === 'outblob' && this.racesLeft > 0) {
      this.racesLeft--;
      this.bump(path.dirname(p));
    }
    return data;
  }

  write(p: string, data: Uint8Array): void {
    const name = path.basename(p);
    this.calls.push(`write ${name}`);
    fsTsmIo.write(p, data);
    const dir = path.dirname(p);
    this.bump(dir);
    if (name === 'privlevel') this.privlevel = Number(Buffer.from(data).toString().trim());
    if (name === 'inblob') {
      fs.writeFileSync(path.join(dir, 'outblob'), fakeReport(data, this.privlevel));
      if (this.auxblob) fs.writeFileSync(path.join(dir, 'auxblob'), this.auxblob);
    }
  }

  private bump(dir: string): void {
    const g = Number(fs.readFileSync(path.join(dir, 'generation'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'generation'), `${g + 1}\n`);
  }
}

describe('SNP guest: configfs-tsm report protocol', () => {
  let base: string;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-report-'));
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  it('writes privlevel and inblob, reads outblob and auxblob under one generation, removes the entry', () => {
    const kernel = new FakeTsmKernel();
    const data = Buffer.alloc(64, 0x5a);
    const r = getTsmReport({ basePath: base, reportData: data, privlevel: 2, io: kernel });
    assert.equal(r.provider, 'sev_guest');
    assert.equal(r.generation, 2);
    assert.deepEqual(r.report.reportData, data);
    assert.equal(r.report.vmpl, 2);
    assert.deepEqual(r.certificates.map((c) => c.name), ['vcek', 'ask', 'ark']);
    assert.deepEqual(
      kernel.calls.map((c) => c.replace(/ node-sev-.*/, ' ENTRY')),
      ['mkdir ENTRY', 'read provider', 'read generation', 'write privlevel', 'write inblob', 'read outblob', 'read auxblob', 'read generation', 'rmdir ENTRY'],
    );
    assert.deepEqual(fs.readdirSync(base), [], 'the entry is removed');
  });

  it('without privlevel only inblob is written; an absent auxblob is no certificates', () => {
    const kernel = new FakeTsmKernel();
    kernel.auxblob = null;
    const r = getTsmReport({ basePath: base, io: kernel });
    assert.equal(r.generation, 1);
    assert.equal(r.auxblob, null);
    assert.deepEqual(r.certificates, []);
    assert.ok(!kernel.calls.includes('write privlevel'));
  });

  it('retries when another writer changed the generation, and gives up after the attempts', () => {
    const kernel = new FakeTsmKernel();
    kernel.racesLeft = 1;
    const r = getTsmReport({ basePath: base, io: kernel });
    assert.equal(kernel.calls.filter((c) => c === 'write inblob').length, 2);
    assert.equal(r.generation, 3);

    const busy = new FakeTsmKernel();
    busy.racesLeft = 10;
    assert.throws(
      () => getTsmReport({ basePath: base, io: busy, attempts: 2 }),
      (e: unknown) => e instanceof SnpGuestError && e.code === 'EBUSY' && /another writer changed the entry during 2 attempts/.test((e as Error).message),
    );
    assert.deepEqual(fs.readdirSync(base), [], 'the entry is removed after a failure too');
  });

  it('a missing base directory says configfs-tsm is not available', () => {
    const missing = path.join(base, 'nope');
    assert.throws(
      () => getTsmReport({ basePath: missing }),
      (e: unknown) => e instanceof SnpGuestError && e.code === 'ENOENT' && (e as Error).message.startsWith(`configfs-tsm not available (no ${missing})`),
    );
  });

  it('a wrong provider, a failing outblob or a bad certificate table fail naming it, and the entry is removed', () => {
    const tdx = new FakeTsmKernel();
    tdx.provider = 'tdx_guest';
    assert.throws(() => getTsmReport({ basePath: base, io: tdx }), /the provider is 'tdx_guest', not 'sev_guest'/);
    assert.deepEqual(fs.readdirSync(base), []);

    const refused = new FakeTsmKernel();
    refused.outblobErrno = 'EINVAL';
    assert.throws(
      () => getTsmReport({ basePath: base, io: refused }),
      (e: unknown) => e instanceof SnpGuestError && e.code === 'EINVAL' && /reading .*outblob failed: EINVAL \(the firmware refused/.test((e as Error).message),
    );
    assert.deepEqual(fs.readdirSync(base), []);

    const broken = new FakeTsmKernel();
    broken.auxblob = buildCertTable([{ guid: 'vcek', data: VCEK }]).subarray(0, 30);
    assert.throws(() => getTsmReport({ basePath: base, io: broken }), SevCertificateError);
    assert.deepEqual(fs.readdirSync(base), []);
  });

  it('with the plain file system: an entry without the kernel\'s files fails on provider and is still removed', () => {
    assert.throws(() => getTsmReport({ basePath: base }), (e: unknown) => e instanceof SnpGuestError && e.code === 'ENOENT' && /provider/.test((e as Error).message));
    assert.deepEqual(fs.readdirSync(base), []);
  });

  it('refuses bad options before touching the file system', () => {
    assert.throws(() => getTsmReport({ basePath: 'relative/path' }), SevArgumentError);
    assert.throws(() => getTsmReport({ basePath: base, reportData: Buffer.alloc(10) }), /reportData must be 64 bytes/);
    assert.throws(() => getTsmReport({ basePath: base, privlevel: 4 }), SevArgumentError);
    assert.deepEqual(fs.readdirSync(base), []);
  });
});
