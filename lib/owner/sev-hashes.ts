// The SEV hashes table for measured direct kernel boot (QEMU target/i386/sev.c,
// sev_add_kernel_loader_hashes; edk2 OvmfPkg/AmdSev BlobVerifierSevHashes): QEMU hashes the
// kernel, initrd and command line, writes a GUID table of the three SHA-256 digests into the
// area OVMF's footer table names (SEV_HASH_TABLE_RV_GUID) and measures the table, padded to
// 16 bytes, right after the firmware. OVMF then refuses a kernel whose hash differs.
//   table = GUID(hash table) ‖ u16 len ‖ cmdline entry ‖ initrd entry ‖ kernel entry ‖ pad
//   entry = GUID ‖ u16 50 ‖ SHA-256
import { createHash } from 'node:crypto';

import { SevArgumentError } from '../errors';
import { digestOf, type DigestInput } from './file-digest';
import { KNOWN_GUIDS } from './guid';
import { encodeGuidTable } from './guid-table';
import type { OvmfImage } from './ovmf';

/**
 * What QEMU hashes for `-kernel`, `-initrd`, `-append`. The kernel and the initrd are measured
 * only through their SHA-256: give the bytes, or a FileDigest (digestFile streams a file of any
 * size through the hash once, in bounded memory).
 */
export interface KernelBootInputs {
  kernel: DigestInput;
  /** The initrd; QEMU hashes empty data when none is given. */
  initrd?: DigestInput;
  /**
   * The kernel command line, hashed with its terminating NUL as QEMU passes it. QEMU hashes
   * a lone NUL when none is given.
   */
  cmdline?: string;
  /**
   * Hash the command line with its terminating NUL (default true, as QEMU does). False gives
   * the digest of a VMM or tool that hashes the bare string (used to explain a mismatch).
   */
  cmdlineNul?: boolean;
}

/** Size of the padded table QEMU measures: 168 bytes of table + 8 of padding. */
export const SEV_HASHES_TABLE_SIZE = 176;

const EMPTY_SHA256 = createHash('sha256').digest();

/** Builds the padded SEV hashes table QEMU writes and measures. */
export function buildSevHashesTable(inputs: KernelBootInputs): Buffer {
  const text = Buffer.from(inputs.cmdline ?? '', 'utf8');
  const cmdline = inputs.cmdlineNul === false ? text : Buffer.concat([text, Buffer.of(0)]);
  return encodeGuidTable(
    KNOWN_GUIDS.sevHashTable,
    [
      { guid: KNOWN_GUIDS.sevCmdlineHash, data: digestOf(cmdline) },
      { guid: KNOWN_GUIDS.sevInitrdHash, data: inputs.initrd === undefined ? EMPTY_SHA256 : digestOf(inputs.initrd) },
      { guid: KNOWN_GUIDS.sevKernelHash, data: digestOf(inputs.kernel) },
    ],
    2,
  );
}

/**
 * Checks that QEMU could place the hashes table in this firmware: OVMF must name a hashes
 * table area (only the AmdSev build does) that is large enough.
 */
export function checkSevHashesSupport(ovmf: OvmfImage): void {
  const area = ovmf.sevHashTableArea();
  if (!area || area.gpa === 0) {
    throw new SevArgumentError('measurement', 'the firmware has no SEV hashes table area; measured direct kernel boot needs an OVMF AmdSev build');
  }
  if (area.size < SEV_HASHES_TABLE_SIZE) {
    throw new SevArgumentError('measurement', `the firmware's SEV hashes table area is ${area.size} bytes, the table needs ${SEV_HASHES_TABLE_SIZE}`);
  }
}
