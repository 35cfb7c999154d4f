import * as assert from 'node:assert/strict';
import { constants as osConstants } from 'node:os';

import {
  ENOTSUPP,
  errnoName,
  FIRMWARE_STATUS,
  FIRMWARE_STATUS_CODE,
  firmwareStatusName,
  SevArgumentError,
  SevClosedError,
  SevError,
} from '../../lib/errors';
import { queriedLength } from '../../lib/flow';

// Every enumerator of sev_ret_code in Linux 7.2 include/uapi/linux/psp-sev.h, without the
// SEV_RET_ prefix, with its value (INAVLID_CONFIG is the header's own misspelled alias of
// INVALID_CONFIG; MAX is the enum's bound).
const PSP_SEV_7_2: ReadonlyArray<[string, number]> = [
  ['NO_FW_CALL', -1], ['SUCCESS', 0x00], ['INVALID_PLATFORM_STATE', 0x01], ['INVALID_GUEST_STATE', 0x02],
  ['INAVLID_CONFIG', 0x03], ['INVALID_CONFIG', 0x03], ['INVALID_LEN', 0x04], ['ALREADY_OWNED', 0x05],
  ['INVALID_CERTIFICATE', 0x06], ['POLICY_FAILURE', 0x07], ['INACTIVE', 0x08], ['INVALID_ADDRESS', 0x09],
  ['BAD_SIGNATURE', 0x0a], ['BAD_MEASUREMENT', 0x0b], ['ASID_OWNED', 0x0c], ['INVALID_ASID', 0x0d],
  ['WBINVD_REQUIRED', 0x0e], ['DFFLUSH_REQUIRED', 0x0f], ['INVALID_GUEST', 0x10], ['INVALID_COMMAND', 0x11],
  ['ACTIVE', 0x12], ['HWSEV_RET_PLATFORM', 0x13], ['HWSEV_RET_UNSAFE', 0x14], ['UNSUPPORTED', 0x15],
  ['INVALID_PARAM', 0x16], ['RESOURCE_LIMIT', 0x17], ['SECURE_DATA_INVALID', 0x18], ['INVALID_PAGE_SIZE', 0x19],
  ['INVALID_PAGE_STATE', 0x1a], ['INVALID_MDATA_ENTRY', 0x1b], ['INVALID_PAGE_OWNER', 0x1c], ['AEAD_OFLOW', 0x1d],
  ['EXIT_RING_BUFFER', 0x1f], ['RMP_INIT_REQUIRED', 0x20], ['BAD_SVN', 0x21], ['BAD_VERSION', 0x22],
  ['SHUTDOWN_REQUIRED', 0x23], ['UPDATE_FAILED', 0x24], ['RESTORE_REQUIRED', 0x25],
  ['RMP_INITIALIZATION_FAILED', 0x26], ['INVALID_KEY', 0x27], ['SHUTDOWN_INCOMPLETE', 0x28],
  ['INCORRECT_BUFFER_LENGTH', 0x30], ['EXPAND_BUFFER_LENGTH_REQUEST', 0x31], ['SPDM_REQUEST', 0x32],
  ['SPDM_ERROR', 0x33], ['SEV_STATUS_ERR_IN_DEV_CONN', 0x35], ['SEV_STATUS_INVALID_DEV_CTX', 0x36],
  ['SEV_STATUS_INVALID_TDI_CTX', 0x37], ['SEV_STATUS_INVALID_TDI', 0x38], ['SEV_STATUS_RECLAIM_REQUIRED', 0x39],
  ['IN_USE', 0x3a], ['SEV_STATUS_INVALID_DEV_STATE', 0x3b], ['SEV_STATUS_INVALID_TDI_STATE', 0x3c],
  ['SEV_STATUS_DEV_CERT_CHANGED', 0x3d], ['SEV_STATUS_RESYNC_REQ', 0x3e], ['SEV_STATUS_RESPONSE_TOO_LARGE', 0x3f],
  ['MAX', 0x40],
];

describe('errors', () => {
  it('knows every sev_ret_code name of Linux 7.2, spelled as the UAPI spells it', () => {
    for (const [name, value] of PSP_SEV_7_2) assert.equal(FIRMWARE_STATUS_CODE[name], value, name);
    assert.deepEqual(Object.keys(FIRMWARE_STATUS_CODE).sort(), PSP_SEV_7_2.map(([n]) => n).sort(), 'no other names');
  });

  it('prints every status code under its name, the alias under the correct spelling', () => {
    for (const [name, value] of PSP_SEV_7_2) {
      if (name === 'INAVLID_CONFIG' || name === 'MAX') continue;
      assert.equal(firmwareStatusName(value), name);
    }
    assert.equal(firmwareStatusName(0x03), 'INVALID_CONFIG');
    assert.equal(Object.keys(FIRMWARE_STATUS).length, PSP_SEV_7_2.length - 2, 'one name per value');
  });

  it('prints codes the UAPI does not name in hex', () => {
    assert.equal(firmwareStatusName(0x1e), 'UNKNOWN_0x1e');
    assert.equal(firmwareStatusName(0x29), 'UNKNOWN_0x29');
    assert.equal(firmwareStatusName(0x34), 'UNKNOWN_0x34');
    assert.equal(firmwareStatusName(0x40), 'UNKNOWN_0x40', 'SEV_RET_MAX is a bound, not a status');
    assert.equal(firmwareStatusName(0x1234), 'UNKNOWN_0x1234');
  });

  it('reads NO_FW_CALL back from the __u32 error field the kernel stores it in', () => {
    assert.equal(firmwareStatusName(0xffffffff), 'NO_FW_CALL');
    const e = SevError.fromIoctl('LAUNCH_START', osConstants.errno.EIO, 0xffffffff);
    assert.equal(e.firmwareStatus, -1);
    assert.equal(e.firmwareStatusName, 'NO_FW_CALL');
  });

  it('names errnos as the kernel means them', () => {
    assert.equal(errnoName(osConstants.errno.EAGAIN), 'EAGAIN', 'the kernel returns -EAGAIN; EWOULDBLOCK is an alias');
    assert.equal(errnoName(osConstants.errno.EOPNOTSUPP), 'EOPNOTSUPP');
    assert.equal(errnoName(ENOTSUPP), 'ENOTSUPP', 'kernel-internal 524, which /dev/sev returns');
    assert.equal(SevError.fromIoctl('GET_ID2', ENOTSUPP, 0).code, 'ENOTSUPP');
    assert.equal(errnoName(osConstants.errno.EPERM), 'EPERM');
    assert.equal(errnoName(600), 'E600');
  });

  it('a length query answered INVALID_LEN without a usable length fails as INVALID_LEN', () => {
    const EIO = osConstants.errno.EIO;
    assert.equal(queriedLength('PEK_CSR', { errno: EIO, fwError: 0x04 }, 0x1000), 0x1000);
    assert.throws(
      () => queriedLength('PEK_CSR', { errno: EIO, fwError: 0x04 }, 0),
      (e: SevError) => e.firmwareStatusName === 'INVALID_LEN' && e.code === 'EIO' && /INVALID_LEN/.test(e.message),
    );
    // Success with a nonsense length is ours to complain about: no firmware status.
    assert.throws(
      () => queriedLength('PEK_CSR', { errno: 0, fwError: 0 }, 0),
      (e: SevError) => e.firmwareStatusName === undefined && /implausible length 0/.test(e.message),
    );
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
