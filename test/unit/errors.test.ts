import * as assert from 'node:assert/strict';
import { constants as osConstants } from 'node:os';

import {
  FIRMWARE_STATUS,
  FIRMWARE_STATUS_CODE,
  firmwareStatusName,
  SevArgumentError,
  SevClosedError,
  SevError,
} from '../../lib/errors';

describe('errors', () => {
  it('names every SEV_RET code of the kernel UAPI', () => {
    // psp-sev.h: 0x00..0x18 contiguous, then 0x19..0x1D, 0x1F..0x27; plus NO_FW_CALL (-1).
    const codes = [-1, ...Array.from({ length: 0x1e }, (_, i) => i), ...Array.from({ length: 9 }, (_, i) => 0x1f + i)];
    for (const c of codes) assert.ok(FIRMWARE_STATUS[c], `status 0x${c.toString(16)} has a name`);
    assert.equal(FIRMWARE_STATUS_CODE.INVALID_LEN, 4);
    assert.equal(FIRMWARE_STATUS_CODE.ALREADY_OWNED, 5);
    assert.equal(FIRMWARE_STATUS_CODE.BAD_MEASUREMENT, 0x0b);
    assert.equal(FIRMWARE_STATUS_CODE.INVALID_KEY, 0x27);
    assert.equal(firmwareStatusName(0x99), 'UNKNOWN_0x99');
  });

  it('fromIoctl carries command, errno name and firmware status name', () => {
    const e = SevError.fromIoctl('PEK_CERT_IMPORT', osConstants.errno.EIO, 5);
    assert.ok(e instanceof Error && e instanceof SevError);
    assert.equal(e.command, 'PEK_CERT_IMPORT');
    assert.equal(e.code, 'EIO');
    assert.equal(e.firmwareStatus, 5);
    assert.equal(e.firmwareStatusName, 'ALREADY_OWNED');
    assert.match(e.message, /PEK_CERT_IMPORT failed: EIO \(firmware status ALREADY_OWNED\)/);
    assert.deepEqual(JSON.parse(JSON.stringify(e)).firmwareStatus, 'ALREADY_OWNED');
  });

  it('an errno without firmware involvement has no firmware status', () => {
    const e = SevError.fromIoctl('PEK_GEN', osConstants.errno.EPERM, 0);
    assert.equal(e.code, 'EPERM');
    assert.equal(e.firmwareStatusName, undefined);
  });

  it('subclasses keep the SevError shape', () => {
    const a = new SevArgumentError('LAUNCH_UPDATE_DATA', 'length must be a multiple of 16');
    assert.ok(a instanceof SevError);
    assert.equal(a.code, 'ERR_SEV_ARGUMENT');
    assert.equal(a.command, 'LAUNCH_UPDATE_DATA');
    const c = new SevClosedError('PLATFORM_STATUS', 'SevPlatform');
    assert.equal(c.code, 'EBADF');
  });
});
