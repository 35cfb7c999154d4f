// A tiny OVMF-like image with a footer table, so format tests need no fixture files.
import { randomBytes } from 'node:crypto';

import { guidToBytes, KNOWN_GUIDS } from '../../lib/owner/guid';

/** data ‖ u16 (data + 18) ‖ GUID, as OVMF lays out its footer-table entries. */
function footerEntry(guid: string, data: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16LE(data.length + 18);
  return Buffer.concat([data, size, guidToBytes(guid)]);
}

const u32s = (...values: number[]) => Buffer.concat(values.map((v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}));

export function syntheticOvmf(options: { size?: number; resetAddress?: number; hashArea?: { gpa: number; size: number } } = {}): Buffer {
  const entries = [
    ...(options.resetAddress === undefined ? [] : [footerEntry(KNOWN_GUIDS.sevEsResetBlock, u32s(options.resetAddress))]),
    ...(options.hashArea === undefined ? [] : [footerEntry(KNOWN_GUIDS.sevHashTableRv, u32s(options.hashArea.gpa, options.hashArea.size))]),
  ];
  const body = Buffer.concat(entries);
  const footer = footerEntry(KNOWN_GUIDS.ovmfTableFooter, Buffer.alloc(0));
  footer.writeUInt16LE(body.length + 18, 0); // the footer's size covers the whole table
  const table = Buffer.concat([body, footer, randomBytes(32)]); // + 32 bytes of reset vector
  const size = options.size ?? 8192;
  return Buffer.concat([randomBytes(size - table.length), table]);
}
