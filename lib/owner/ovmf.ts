// OVMF's GUIDed footer table (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm): the last 32
// bytes of the image hold the reset vector; just before them sits the table footer
//   u16 size (whole table incl. footer) ‖ GUID 96b582de-...  (OVMF_TABLE_FOOTER_GUID)
// and before that the entries, read backwards from the footer, each laid out as
//   data ‖ u16 size (data + 18) ‖ GUID
// QEMU reads from it where the SEV hashes table goes and the SEV-ES AP reset address.
import { SevArgumentError } from '../errors';
import { guidToString, KNOWN_GUIDS } from './guid';

const RESET_VECTOR_SIZE = 32;
const ENTRY_HEADER_SIZE = 2 + 16;

/** A guest-physical range named by an OVMF table entry. */
export interface GpaRange {
  gpa: number;
  size: number;
}

/** An OVMF (AmdSev / OvmfX64) firmware image and its footer table. */
export class OvmfImage {
  /** The whole image, measured as-is by LAUNCH_UPDATE_DATA for SEV and SEV-ES. */
  readonly data: Buffer;
  /** Footer-table entries by lower-case GUID text; values are the entries' data. */
  readonly entries: ReadonlyMap<string, Buffer>;

  private constructor(data: Buffer, entries: Map<string, Buffer>) {
    this.data = data;
    this.entries = entries;
  }

  /**
   * Parses an image. Images without a footer table are accepted (entries is empty): SEV
   * measures the raw image, only SEV-ES reset addresses and kernel hashes need the table.
   */
  static parse(image: Uint8Array): OvmfImage {
    const data = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
    return new OvmfImage(data, parseFooterTable(data));
  }

  /** True when the image has an OVMF footer table. */
  get hasFooterTable(): boolean {
    return this.entries.size > 0;
  }

  /** The data of the entry with `guid`, or undefined. */
  entry(guid: string): Buffer | undefined {
    return this.entries.get(guid.toLowerCase());
  }

  /**
   * The SEV-ES reset address of the application processors (SEV_ES_RESET_BLOCK_GUID, u32):
   * QEMU starts APs with CS.base = addr & 0xffff0000 and IP = addr & 0xffff.
   */
  sevEsResetAddress(): number {
    const e = this.entry(KNOWN_GUIDS.sevEsResetBlock);
    if (!e || e.length < 4) {
      throw new SevArgumentError('ovmf', 'the firmware has no SEV-ES reset block (not an SEV-ES capable OVMF build)');
    }
    return e.readUInt32LE(0);
  }

  /** Where QEMU writes the SEV hashes table (SEV_HASH_TABLE_RV_GUID), or undefined. */
  sevHashTableArea(): GpaRange | undefined {
    return this.range(KNOWN_GUIDS.sevHashTableRv);
  }

  /** The launch secret area (SEV_SECRET_BLOCK_GUID), or undefined. */
  sevSecretArea(): GpaRange | undefined {
    return this.range(KNOWN_GUIDS.sevSecretBlock);
  }

  private range(guid: string): GpaRange | undefined {
    const e = this.entry(guid);
    if (!e || e.length < 8) return undefined;
    return { gpa: e.readUInt32LE(0), size: e.readUInt32LE(4) };
  }
}

function parseFooterTable(data: Buffer): Map<string, Buffer> {
  const entries = new Map<string, Buffer>();
  const footerEnd = data.length - RESET_VECTOR_SIZE;
  const footerStart = footerEnd - ENTRY_HEADER_SIZE;
  if (footerStart < 0) return entries;
  if (guidToString(data.subarray(footerStart + 2, footerEnd)) !== KNOWN_GUIDS.ovmfTableFooter) return entries;
  const tableSize = data.readUInt16LE(footerStart);
  if (tableSize < ENTRY_HEADER_SIZE || tableSize - ENTRY_HEADER_SIZE > footerStart) {
    throw new SevArgumentError('ovmf', `corrupt OVMF footer table: size ${tableSize}`);
  }
  const tableStart = footerStart - (tableSize - ENTRY_HEADER_SIZE);
  // Walk backwards: each entry ends with its size and GUID.
  for (let end = footerStart; end - ENTRY_HEADER_SIZE >= tableStart; ) {
    const size = data.readUInt16LE(end - ENTRY_HEADER_SIZE);
    if (size < ENTRY_HEADER_SIZE || end - size < tableStart) {
      throw new SevArgumentError('ovmf', `corrupt OVMF footer table: entry of size ${size} at offset ${end - ENTRY_HEADER_SIZE}`);
    }
    const guid = guidToString(data.subarray(end - 16, end));
    entries.set(guid, data.subarray(end - size, end - ENTRY_HEADER_SIZE));
    end -= size;
  }
  return entries;
}
