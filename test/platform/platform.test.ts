// The /dev/sev platform suite: every command, the state machine, the length protocol, read-only
// fds, closed objects and bad input. Runs on the emulator in `npm test` and, unchanged, on real
// hardware with `npm run test:hw` (destructive tests need SEV_TEST_DESTRUCTIVE=1 there).
import * as assert from 'node:assert/strict';
import { constants as osConstants } from 'node:os';

import { SevArgumentError, SevClosedError, SevError } from '../../lib/errors';
import { SEV_CERT_SIZE, SevPlatform } from '../../lib/platform';
import { destructiveAllowed, devicePath, emulated, requireSevDevice, skipBecause } from '../helpers/env';

const { EIO, EPERM, EINVAL, EFAULT } = osConstants.errno;
const USAGE = { OCA: 0x1001, PEK: 0x1002, PDH: 0x1003, CEK: 0x1004 };
const usageOf = (cert: Buffer) => cert.readUInt32LE(8);
const INVALID_LEN = 0x04;

// SEV_ISSUE_CMD sub-command numbers, for raw conformance calls.
const CMD = { PLATFORM_STATUS: 1, PEK_CSR: 3, PDH_CERT_EXPORT: 5, GET_ID2: 8, SEV_MAX: 13 };

describe('platform (/dev/sev)', function () {
  let platform: SevPlatform;

  before(function () {
    requireSevDevice(this);
    platform = SevPlatform.open();
  });
  after(() => platform?.close());

  describe('PLATFORM_STATUS', () => {
    it('reports version, state and flags, the same sync and async', async () => {
      const a = await platform.status();
      const b = platform.statusSync();
      assert.deepEqual(a, b);
      assert.match(a.version, /^\d+\.\d+\.\d+$/);
      assert.ok(['UNINIT', 'INIT', 'WORKING'].includes(a.state), a.state);
      assert.equal(a.owned, (a.flags & 1) === 1);
      assert.equal(a.es, (a.flags & 0x100) !== 0);
      assert.ok(a.guestCount >= 0);
    });

    it('works on a read-only fd', async () => {
      const ro = SevPlatform.open({ writable: false });
      try {
        assert.equal(ro.writable, false);
        assert.equal((await ro.status()).version, (await platform.status()).version);
      } finally {
        ro.close();
      }
    });
  });

  describe('certificates', () => {
    it('PEK_CSR returns an unsigned 2084-byte PEK certificate', async () => {
      const csr = await platform.pekCsr();
      assert.equal(csr.length, SEV_CERT_SIZE);
      assert.equal(csr.readUInt32LE(0), 1, 'version 1');
      assert.equal(usageOf(csr), USAGE.PEK);
      assert.deepEqual(platform.pekCsrSync(), csr);
    });

    it('PDH_CERT_EXPORT returns the PDH and PEK ‖ OCA ‖ CEK', async () => {
      const e = await platform.pdhCertExport();
      assert.equal(e.pdh.length, SEV_CERT_SIZE);
      assert.equal(e.chain.length, 3 * SEV_CERT_SIZE);
      assert.equal(usageOf(e.pdh), USAGE.PDH);
      assert.equal(usageOf(e.pek), USAGE.PEK);
      assert.equal(usageOf(e.oca), USAGE.OCA);
      assert.equal(usageOf(e.cek), USAGE.CEK);
      assert.deepEqual(platform.pdhCertExportSync().pdh, e.pdh);
      // The PEK in the chain carries the same public key as the CSR (offsets 16..1044).
      const csr = await platform.pekCsr();
      assert.deepEqual(e.pek.subarray(16, 0x414), csr.subarray(16, 0x414));
    });
  });

  describe('GET_ID / GET_ID2', () => {
    it('returns a stable 64-byte-per-socket chip id', async () => {
      const id = await platform.getId();
      assert.ok(id.length === 64 || id.length === 128, `length ${id.length}`);
      assert.ok(id.some((b) => b !== 0));
      assert.deepEqual(platform.getIdSync(), id);
    });
  });

  describe('length-query protocol', () => {
    it('PEK_CSR with no buffer answers INVALID_LEN and the length it needs', () => {
      const req = Buffer.alloc(12); // sev_user_data_pek_csr {u64 address; u32 length}
      const o = platform.issueRawSync(CMD.PEK_CSR, req);
      assert.equal(o.errno, EIO);
      assert.equal(o.fwError, INVALID_LEN);
      assert.equal(req.readUInt32LE(8), SEV_CERT_SIZE);
    });

    it('PEK_CSR with a too-small buffer answers INVALID_LEN and writes nothing', () => {
      const req = Buffer.alloc(12);
      const small = Buffer.alloc(100, 0xaa);
      req.writeUInt32LE(small.length, 8);
      const o = platform.issueRawSync(CMD.PEK_CSR, req, [[0, small]]);
      assert.equal(o.errno, EIO);
      assert.equal(o.fwError, INVALID_LEN);
      assert.equal(req.readUInt32LE(8), SEV_CERT_SIZE);
      assert.ok(small.every((b) => b === 0xaa), 'buffer untouched');
    });

    it('a length beyond the kernel blob limit is refused before the firmware', () => {
      const req = Buffer.alloc(12);
      const big = Buffer.alloc(0x4001);
      req.writeUInt32LE(big.length, 8);
      const o = platform.issueRawSync(CMD.PEK_CSR, req, [[0, big]]);
      assert.equal(o.errno, EFAULT);
    });

    it('PDH_CERT_EXPORT query writes back both lengths', () => {
      const req = Buffer.alloc(24);
      const o = platform.issueRawSync(CMD.PDH_CERT_EXPORT, req);
      assert.equal(o.errno, EIO);
      assert.equal(o.fwError, INVALID_LEN);
      assert.equal(req.readUInt32LE(8), SEV_CERT_SIZE);
      assert.equal(req.readUInt32LE(20), 3 * SEV_CERT_SIZE);
    });

    it('GET_ID2 query writes back the id length', () => {
      const req = Buffer.alloc(12);
      const o = platform.issueRawSync(CMD.GET_ID2, req);
      assert.equal(o.errno, EIO);
      assert.equal(o.fwError, INVALID_LEN);
      assert.ok([64, 128].includes(req.readUInt32LE(8)));
    });
  });

  describe('bad input', () => {
    it('an unknown command is EINVAL', () => {
      assert.equal(platform.issueRawSync(CMD.SEV_MAX + 7, Buffer.alloc(64)).errno, EINVAL);
      assert.equal(platform.issueRawSync(0xffffffff, null).errno, EINVAL);
    });

    it('a null data pointer for PLATFORM_STATUS is EFAULT, not a crash', () => {
      assert.equal(platform.issueRawSync(CMD.PLATFORM_STATUS, null).errno, EFAULT);
    });

    it('write commands on a read-only fd are EPERM', async () => {
      const ro = SevPlatform.open({ writable: false });
      try {
        for (const f of [() => ro.pekGen(), () => ro.pdhGen(), () => ro.factoryReset(), () => ro.pekCsr()]) {
          await assert.rejects(f(), (e: SevError) => e instanceof SevError && e.errno === EPERM && e.code === 'EPERM');
        }
        assert.throws(() => ro.pekGenSync(), (e: SevError) => e.errno === EPERM);
      } finally {
        ro.close();
      }
    });

    it('PEK_CERT_IMPORT validates sizes before the ioctl', async () => {
      await assert.rejects(platform.pekCertImport(Buffer.alloc(10), Buffer.alloc(SEV_CERT_SIZE)), SevArgumentError);
      await assert.rejects(platform.pekCertImport(Buffer.alloc(SEV_CERT_SIZE), Buffer.alloc(1 << 20)), SevArgumentError);
      assert.throws(() => platform.pekCertImportSync('x' as unknown as Buffer, Buffer.alloc(1)), SevArgumentError);
    });

    it('a garbage certificate is rejected by the firmware with a typed error', async () => {
      await assert.rejects(
        platform.pekCertImport(Buffer.alloc(SEV_CERT_SIZE, 0x5a), Buffer.alloc(SEV_CERT_SIZE, 0xa5)),
        (e: SevError) => e instanceof SevError && e.errno === EIO && e.firmwareStatusName !== undefined,
      );
    });

    it('SNP_SET_CONFIG validates the TCB before the ioctl', () => {
      assert.throws(() => platform.snpSetConfigSync({ reportedTcb: -1n }), SevArgumentError);
      assert.throws(() => platform.snpSetConfigSync({ reportedTcb: 1 as unknown as bigint }), SevArgumentError);
    });

    it('an fd number reused after node closed the device answers as its new file', function () {
      if (!emulated) this.skip();
      // libuv closes with a raw syscall the emulator never sees: the number must not stay "/dev/sev".
      const fs = require('node:fs') as typeof import('node:fs');
      const fd = fs.openSync(devicePath(), 'r+');
      fs.closeSync(fd);
      const other = SevPlatform.open({ path: '/proc/self/status', writable: false });
      try {
        assert.throws(() => other.statusSync(), (e: SevError) => e.code === 'ENOTTY');
      } finally {
        other.close();
      }
    });

    it('issueRaw with an out-of-range pointer offset is a typed error, not a crash', () => {
      assert.throws(() => platform.issueRawSync(1, Buffer.alloc(8), [[-8, Buffer.alloc(1)]]), SevArgumentError);
      assert.throws(() => platform.issueRawSync(1, Buffer.alloc(8), [[1, Buffer.alloc(1)]]), SevArgumentError);
      assert.throws(() => platform.issueRawSync(1, Buffer.alloc(8), ['x' as never]), SevArgumentError);
    });

    it('a missing device gives ENOENT with a hint', () => {
      assert.throws(
        () => SevPlatform.open({ path: '/dev/does-not-exist-sev' }),
        (e: SevError) => e.code === 'ENOENT' && /sev-emu run/.test(e.message),
      );
    });

    it('a closed platform gives SevClosedError; close is idempotent', async () => {
      const p = SevPlatform.open();
      p.close();
      p.close();
      assert.equal(p.closed, true);
      assert.throws(() => p.statusSync(), SevClosedError);
      await assert.rejects(p.status(), SevClosedError);
    });

    it('closing while calls are in flight lets them finish', async () => {
      const p = SevPlatform.open();
      const pending = Promise.all([p.status(), p.pdhCertExport(), p.getId()] as const);
      p.close();
      const [s, e, id] = await pending;
      assert.ok(s.version && e.pdh.length === SEV_CERT_SIZE && id.length >= 64);
    });
  });

  describe('concurrency', () => {
    it('serves many async calls at once, all consistent', async () => {
      const results = await Promise.all(
        Array.from({ length: 64 }, (_, i) => (i % 2 ? platform.pdhCertExport().then((e) => e.chain) : platform.getId())),
      );
      const chains = results.filter((_, i) => i % 2) as Buffer[];
      const ids = results.filter((_, i) => !(i % 2)) as Buffer[];
      chains.forEach((c) => assert.deepEqual(c, chains[0]));
      ids.forEach((c) => assert.deepEqual(c, ids[0]));
    });
  });

  describe('key rotation and reset (destructive)', function () {
    before(function () {
      if (!destructiveAllowed) skipBecause(this, 'rotates keys and resets: set SEV_TEST_DESTRUCTIVE=1 on hardware');
    });

    it('PDH_GEN replaces the PDH and keeps the PEK', async () => {
      const before = await platform.pdhCertExport();
      await platform.pdhGen();
      const after = await platform.pdhCertExport();
      assert.notDeepEqual(after.pdh, before.pdh);
      assert.deepEqual(after.pek, before.pek);
      platform.pdhGenSync();
      assert.notDeepEqual(platform.pdhCertExportSync().pdh, after.pdh);
    });

    it('PEK_GEN replaces PEK, OCA and PDH and leaves the platform self-owned', async () => {
      const before = await platform.pdhCertExport();
      await platform.pekGen();
      const after = await platform.pdhCertExport();
      assert.notDeepEqual(after.pek.subarray(16, 0x414), before.pek.subarray(16, 0x414));
      assert.notDeepEqual(after.pdh, before.pdh);
      assert.notDeepEqual(after.oca, before.oca);
      assert.deepEqual(after.cek.subarray(16, 0x414), before.cek.subarray(16, 0x414), 'CEK is fixed per chip');
      assert.equal((await platform.status()).owned, false);
    });

    it('FACTORY_RESET regenerates the keys but not the chip identity', async () => {
      const id = await platform.getId();
      const before = await platform.pdhCertExport();
      await platform.factoryReset();
      const s = await platform.status();
      assert.equal(s.owned, false);
      const after = await platform.pdhCertExport();
      assert.notDeepEqual(after.pek, before.pek);
      assert.deepEqual(await platform.getId(), id);
      assert.deepEqual(after.cek.subarray(16, 0x414), before.cek.subarray(16, 0x414));
    });
  });

  describe('SEV-SNP platform commands', () => {
    it('SNP_PLATFORM_STATUS answers on SNP generations, and fails typed elsewhere', async function () {
      if (emulated && !['milan', 'genoa', 'turin'].includes(emulated)) {
        await assert.rejects(platform.snpStatus(), SevError);
        return;
      }
      try {
        const s = await platform.snpStatus();
        assert.ok(s.api.major >= 1);
        assert.equal(typeof s.currentTcbVersion, 'bigint');
      } catch (e) {
        if (emulated) throw e;
        assert.ok(e instanceof SevError, String(e)); // hardware without SNP
      }
    });
  });

  it(`uses ${devicePath()}`, () => assert.equal(platform.path, devicePath()));
});
