// GUID-keyed tables as OVMF reads them (the SEV hashes table, QEMU target/i386/sev.c
// SevHashTable; the launch secret table, edk2 OvmfPkg/AmdSev SecretDxe):
//   entry = GUID(16) ‖ length ‖ data        length = 16 + sizeof(length) + data.length
//   table = entry(tableGuid, entries...)     then zero-padded to a multiple of 16
// The hashes table uses a u16 length, the secret table a u32 length. The length field of the
// table header counts the header and the entries, not the padding.
import { SevArgumentError } from '../errors';
import { guidToBytes } from './guid';

export type LengthFieldSize = 2 | 4;

/** One entry: `guid` (text or 16 binary bytes) and its data. */
export interface GuidTableEntry {
  guid: string | Uint8Array;
  data: Uint8Array;
}

function guidBytes(guid: string | Uint8Array): Buffer {
  if (typeof guid === 'string') return guidToBytes(guid);
  if (guid.length !== 16) throw new SevArgumentError('guid-table', `a binary GUID is 16 bytes, got ${guid.length}`);
  return Buffer.from(guid);
}

/** Encodes one GUID ‖ length ‖ data entry. */
export function encodeGuidEntry(entry: GuidTableEntry, lengthSize: LengthFieldSize): Buffer {
  const total = 16 + lengthSize + entry.data.length;
  const max = lengthSize === 2 ? 0xffff : 0xffffffff;
  if (total > max) {
    throw new SevArgumentError('guid-table', `entry of ${total} bytes does not fit a ${lengthSize * 8}-bit length field`);
  }
  const length = Buffer.alloc(lengthSize);
  length.writeUIntLE(total, 0, lengthSize);
  return Buffer.concat([guidBytes(entry.guid), length, entry.data]);
}

/** Rounds `n` up to a multiple of 16 (the AES block size LAUNCH_UPDATE_DATA / SECRET need). */
export function alignTo16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

/** Encodes a table: a header entry (tableGuid) wrapping the entries, padded to 16 bytes. */
export function encodeGuidTable(tableGuid: string, entries: GuidTableEntry[], lengthSize: LengthFieldSize): Buffer {
  // OVMF looks entries up by GUID and takes the first: a second one would never be read.
  const seen = new Set<string>();
  for (const e of entries) {
    const key = guidBytes(e.guid).toString('hex');
    if (seen.has(key)) throw new SevArgumentError('guid-table', `GUID ${typeof e.guid === 'string' ? e.guid : key} appears twice in the table`);
    seen.add(key);
  }
  const body = Buffer.concat(entries.map((e) => encodeGuidEntry(e, lengthSize)));
  const table = encodeGuidEntry({ guid: tableGuid, data: body }, lengthSize);
  return Buffer.concat([table, Buffer.alloc(alignTo16(table.length) - table.length)]);
}
