// Expected launch measurement: launch digest from the images, HMAC over the firmware's nonce,
// and verification that fails for any changed input.
import * as assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';

import { SevArgumentError } from '../../lib/errors';
import {
  expectedMeasurement, verifyLaunchMeasurement, type ExpectedMeasurementParams,
} from '../../lib/owner/expected-measurement';
import { guidToBytes, guidToString, KNOWN_GUIDS } from '../../lib/owner/guid';
import { launchDigestOf, measuredData, sevEsVcpusFor } from '../../lib/owner/launch-digest';
import { OvmfImage } from '../../lib/owner/ovmf';
import { buildSevHashesTable, SEV_HASHES_TABLE_SIZE } from '../../lib/owner/sev-hashes';
import { buildVmsa } from '../../lib/owner/vmsa-builder';
import { OVMF, readFixture, requireSevctlFixtures } from './fixtures';
import { syntheticOvmf } from './synthetic-ovmf';

const sha256 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();

describe('owner: GUIDs and the OVMF footer table', () => {
  it('GUIDs use the EFI mixed-endian binary form and round-trip', () => {
    const b = guidToBytes('736869e5-84f0-4973-92ec-06879ce3da0b');
    assert.equal(b.toString('hex'), 'e5696873f0847349' + '92ec06879ce3da0b');
    assert.equal(guidToString(b), '736869e5-84f0-4973-92ec-06879ce3da0b');
    assert.deepEqual(guidToBytes('{736869E5-84F0-4973-92EC-06879CE3DA0B}'), b);
  });

  it('malformed GUIDs are argument errors', () => {
    for (const bad of ['', '736869e5-84f0-4973-92ec-06879ce3da0', 'zz6869e5-84f0-4973-92ec-06879ce3da0b', '736869e584f0497392ec06879ce3da0b00']) {
      assert.throws(() => guidToBytes(bad), SevArgumentError, bad);
    }
  });

  it('reads the SEV-ES reset address and the hashes table area', () => {
    const ovmf = OvmfImage.parse(syntheticOvmf({ resetAddress: 0x80b004, hashArea: { gpa: 0x80cc00, size: 0x400 } }));
    assert.equal(ovmf.sevEsResetAddress(), 0x80b004);
    assert.deepEqual(ovmf.sevHashTableArea(), { gpa: 0x80cc00, size: 0x400 });
    assert.equal(ovmf.entries.size, 2);
  });

  it('an image without a footer table parses but has no SEV-ES reset block', () => {
    const ovmf = OvmfImage.parse(randomBytes(4096));
    assert.equal(ovmf.hasFooterTable, false);
    assert.throws(() => ovmf.sevEsResetAddress(), /no SEV-ES reset block/);
  });

  it('a corrupt footer table is rejected', () => {
    const img = syntheticOvmf({ resetAddress: 0x1000 });
    img.writeUInt16LE(7, img.length - 32 - 18 - 18); // the reset-block entry's size field (before its GUID)
    assert.throws(() => OvmfImage.parse(img), /corrupt OVMF footer table/);
  });

  it('the sevctl OVMF image names the reset address and the hashes area', function () {
    requireSevctlFixtures(this);
    const ovmf = OvmfImage.parse(readFixture(OVMF));
    assert.equal(ovmf.sevEsResetAddress(), 0x80b004);
    assert.deepEqual(ovmf.sevHashTableArea(), { gpa: 0x80cc00, size: 0x400 });
  });
});

describe('owner: SEV hashes table', () => {
  it('is GUID ‖ u16 168 ‖ cmdline, initrd, kernel entries of GUID ‖ u16 50 ‖ SHA-256, padded to 176', () => {
    const kernel = randomBytes(1000);
    const initrd = randomBytes(500);
    const t = buildSevHashesTable({ kernel, initrd, cmdline: 'console=ttyS0' });
    assert.equal(t.length, SEV_HASHES_TABLE_SIZE);
    assert.deepEqual(t.subarray(0, 16), guidToBytes(KNOWN_GUIDS.sevHashTable));
    assert.equal(t.readUInt16LE(16), 168);
    const entry = (i: number) => t.subarray(18 + 50 * i, 18 + 50 * (i + 1));
    const expected: Array<[string, Buffer]> = [
      [KNOWN_GUIDS.sevCmdlineHash, sha256(Buffer.from('console=ttyS0\0'))],
      [KNOWN_GUIDS.sevInitrdHash, sha256(initrd)],
      [KNOWN_GUIDS.sevKernelHash, sha256(kernel)],
    ];
    expected.forEach(([guid, hash], i) => {
      assert.equal(guidToString(entry(i).subarray(0, 16)), guid);
      assert.equal(entry(i).readUInt16LE(16), 50);
      assert.deepEqual(entry(i).subarray(18), hash);
    });
    assert.deepEqual(t.subarray(168), Buffer.alloc(8));
  });

  it('without initrd / cmdline QEMU hashes empty data and a lone NUL', () => {
    const t = buildSevHashesTable({ kernel: Buffer.from('k') });
    assert.deepEqual(t.subarray(18 + 18, 18 + 50), sha256(Buffer.of(0)));
    assert.deepEqual(t.subarray(68 + 18, 68 + 50), sha256(Buffer.alloc(0)));
  });

  it('measured boot needs a firmware with a hashes table area', () => {
    assert.throws(() => measuredData({ firmware: syntheticOvmf({}), kernelBoot: { kernel: Buffer.from('k') } }), /no SEV hashes table area/);
    assert.throws(
      () => measuredData({ firmware: syntheticOvmf({ hashArea: { gpa: 0x1000, size: 64 } }), kernelBoot: { kernel: Buffer.from('k') } }),
      /area is 64 bytes/,
    );
  });
});

describe('owner: expected launch measurement', () => {
  const firmware = syntheticOvmf({ resetAddress: 0x80b004, hashArea: { gpa: 0x80cc00, size: 0x400 } });
  const kernelBoot = { kernel: randomBytes(3000), initrd: randomBytes(2000), cmdline: 'root=/dev/vda' };
  const tik = randomBytes(16);
  const mnonce = randomBytes(16);
  const sev: ExpectedMeasurementParams = { apiMajor: 1, apiMinor: 51, build: 3, policy: 0x1, tik, images: { firmware, kernelBoot } };
  const vcpus = sevEsVcpusFor({ count: 2, firmware, family: 25, model: 1, stepping: 1 });
  const sevEs: ExpectedMeasurementParams = { ...sev, policy: 0x5, images: { firmware, kernelBoot, vcpus } };

  it('digest = SHA-256(firmware ‖ padded hashes table ‖ VMSA pages), MAC per the SEV API', () => {
    const pages = [buildVmsa({ cpu: 0, userspace: 'qemu', family: 25, model: 1, stepping: 1 }).page,
      buildVmsa({ cpu: 1, userspace: 'qemu', family: 25, model: 1, stepping: 1, resetAddress: 0x80b004 }).page];
    const digest = sha256(firmware, buildSevHashesTable(kernelBoot), ...pages);
    const r = expectedMeasurement(sevEs, mnonce);
    assert.deepEqual(r.digest, digest);
    const policy = Buffer.from([5, 0, 0, 0]);
    const mac = createHmac('sha256', tik).update(Buffer.of(4, 1, 51, 3)).update(policy).update(digest).update(mnonce).digest();
    assert.deepEqual(r.measurement, mac);
    assert.deepEqual(r.blob, Buffer.concat([mac, mnonce]));
  });

  it('SEV (no ES bit) does not measure vCPU state', () => {
    const withVcpus = expectedMeasurement({ ...sev, images: { firmware, kernelBoot, vcpus } }, mnonce);
    assert.deepEqual(withVcpus.digest, launchDigestOf({ firmware, kernelBoot }));
  });

  it('SEV-ES without vCPU state is an argument error', () => {
    assert.throws(() => expectedMeasurement({ ...sevEs, images: { firmware } }, mnonce), /SEV-ES bit/);
  });

  it('the correct blob verifies; the 32-byte form verifies with the nonce', () => {
    const { blob, measurement } = expectedMeasurement(sevEs, mnonce);
    assert.equal(verifyLaunchMeasurement(blob, sevEs).ok, true);
    assert.equal(verifyLaunchMeasurement(measurement, sevEs, mnonce).ok, true);
    assert.throws(() => verifyLaunchMeasurement(measurement, sevEs), /needs the nonce/);
    assert.throws(() => verifyLaunchMeasurement(blob.subarray(0, 40), sevEs), /48 bytes/);
  });

  describe('verification fails when any input differs', () => {
    const { blob } = expectedMeasurement(sevEs, mnonce);
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] ^= 1;
      return c;
    };
    const cases: Array<[string, ExpectedMeasurementParams]> = [
      ['a wrong TIK', { ...sevEs, tik: flip(tik, 0) }],
      ['one changed firmware byte', { ...sevEs, images: { ...sevEs.images!, firmware: flip(firmware, 100) } }],
      ['a changed policy', { ...sevEs, policy: 0x7 }],
      ['a different API minor', { ...sevEs, apiMinor: 52 }],
      ['a different build', { ...sevEs, build: 4 }],
      ['a changed kernel byte', { ...sevEs, images: { ...sevEs.images!, kernelBoot: { ...kernelBoot, kernel: flip(kernelBoot.kernel, 7) } } }],
      ['another command line', { ...sevEs, images: { ...sevEs.images!, kernelBoot: { ...kernelBoot, cmdline: 'root=/dev/vdb' } } }],
      ['no initrd', { ...sevEs, images: { ...sevEs.images!, kernelBoot: { ...kernelBoot, initrd: undefined } } }],
      ['a different vCPU count', { ...sevEs, images: { ...sevEs.images!, vcpus: { ...vcpus, count: 3 } } }],
      ['another CPU model', { ...sevEs, images: { ...sevEs.images!, vcpus: sevEsVcpusFor({ count: 2, firmware, family: 25, model: 17, stepping: 0 }) } }],
      ['an explicit wrong digest', { ...sevEs, digest: randomBytes(32) }],
    ];
    for (const [what, params] of cases) {
      it(what, () => assert.equal(verifyLaunchMeasurement(blob, params).ok, false));
    }
    it('a different nonce', () => assert.equal(verifyLaunchMeasurement(blob, sevEs, randomBytes(16)).ok, false));
  });

  it('rejects inputs of the wrong size with argument errors', () => {
    assert.throws(() => expectedMeasurement({ ...sev, tik: randomBytes(15) }, mnonce), SevArgumentError);
    assert.throws(() => expectedMeasurement(sev, randomBytes(8)), /nonce must be 16 bytes/);
    assert.throws(() => expectedMeasurement({ ...sev, images: undefined, digest: randomBytes(31) }, mnonce), /digest must be 32 bytes/);
    assert.throws(() => expectedMeasurement({ ...sev, images: undefined }, mnonce), /launch digest or the firmware/);
    assert.throws(() => expectedMeasurement({ ...sev, apiMajor: 256 }, mnonce), /apiMajor must be a byte/);
    assert.throws(() => launchDigestOf({ firmware, vcpus: { count: 1, bsp: Buffer.alloc(100), ap: Buffer.alloc(4096) } }), /4096 bytes/);
    assert.throws(() => launchDigestOf({ firmware, vcpus: { ...vcpus, count: 0 } }), /an integer from 1 to 4096/);
  });
});
