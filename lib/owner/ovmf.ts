// OVMF's GUIDed footer table (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm): the last 32
// bytes of the image hold the reset vector; just before them sits the table footer
//   u16 size (whole table incl. footer) ‖ GUID 96b582de-...  (OVMF_TABLE_FOOTER_GUID)
// and before that the entries, read backwards from the footer, each laid out as
//   data ‖ u16 size (data + 18) ‖ GUID
// QEMU reads from it where the SEV hashes table goes and the SEV-ES AP reset address.
// One entry (OVMF_SEV_METADATA_GUID) points at the SEV metadata (edk2 OvmfPkg/ResetVector/
// X64/OvmfSevMetadata.asm), the pages an SNP launch adds besides the image itself:
//   "ASEV" ‖ u32 size ‖ u32 version (1) ‖ u32 count ‖ count × (u32 gpa ‖ u32 size ‖ u32 type)
import { SevArgumentError } from '../errors';
import { guidToString, KNOWN_GUIDS } from './guid';

const RESET_VECTOR_SIZE = 32;
const ENTRY_HEADER_SIZE = 2 + 16;
const METADATA_HEADER_SIZE = 16;
const METADATA_SECTION_SIZE = 12;
/** Flash images end at 4 GiB, below the reset vector. */
const FOUR_GIB = 0x1_0000_0000;

/** Section types of the OVMF SEV metadata. */
export const SEV_METADATA_SECTION = Object.freeze({
  /** Memory the firmware pre-validates: measured as zero pages. */
  snpSecMemory: 1,
  /** The SNP secrets page. */
  snpSecrets: 2,
  /** The CPUID page the firmware fills and checks. */
  cpuid: 3,
  /** The SVSM calling area. */
  svsmCaa: 4,
  /** Where the kernel/initrd/cmdline hashes page goes (measured direct boot). */
  snpKernelHashes: 0x10,
});
export type SevMetadataSectionType = keyof typeof SEV_METADATA_SECTION;

/** One section of the OVMF SEV metadata. */
export interface SevMetadataSection extends GpaRange {
  type: SevMetadataSectionType;
}

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
  /** The SEV metadata sections in image order (empty without a metadata entry). */
  readonly sevMetadata: readonly SevMetadataSection[];

  private constructor(data: Buffer, entries: Map<string, Buffer>) {
    this.data = data;
    this.entries = entries;
    this.sevMetadata = parseSevMetadata(data, entries.get(KNOWN_GUIDS.ovmfSevMetadata));
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

  /** The guest-physical address of the image's first byte when the image ends at `end` (4 GiB). */
  gpa(end = FOUR_GIB): number {
    return end - this.data.length;
  }

  /** True when the SEV metadata has a section of this type. */
  hasSevMetadataSection(type: SevMetadataSectionType): boolean {
    return this.sevMetadata.some((s) => s.type === type);
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

function parseSevMetadata(data: Buffer, entry: Buffer | undefined): SevMetadataSection[] {
  if (!entry) return [];
  const bad = (what: string) => new SevArgumentError('ovmf', `corrupt OVMF SEV metadata: ${what}`);
  if (entry.length < 4) throw bad(`the footer entry has ${entry.length} bytes, expected a u32 offset`);
  const start = data.length - entry.readUInt32LE(0);
  if (start < 0 || start + METADATA_HEADER_SIZE > data.length) throw bad(`offset ${entry.readUInt32LE(0)} from the end is outside the image`);
  if (data.toString('latin1', start, start + 4) !== 'ASEV') throw bad(`signature at offset ${start} is not "ASEV"`);
  const version = data.readUInt32LE(start + 8);
  if (version !== 1) throw bad(`version ${version}, expected 1`);
  const count = data.readUInt32LE(start + 12);
  const end = start + METADATA_HEADER_SIZE + count * METADATA_SECTION_SIZE;
  if (end > data.length || end > start + data.readUInt32LE(start + 4)) throw bad(`${count} sections do not fit the metadata at offset ${start}`);
  const names = Object.keys(SEV_METADATA_SECTION) as SevMetadataSectionType[];
  const sections: SevMetadataSection[] = [];
  for (let o = start + METADATA_HEADER_SIZE; o < end; o += METADATA_SECTION_SIZE) {
    const code = data.readUInt32LE(o + 8);
    const type = names.find((n) => SEV_METADATA_SECTION[n] === code);
    if (!type) throw bad(`unknown section type ${code} at offset ${o}`);
    sections.push({ gpa: data.readUInt32LE(o), size: data.readUInt32LE(o + 4), type });
  }
  return sections;
}
