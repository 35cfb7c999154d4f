// EFI GUIDs as OVMF stores them: the text form 8-4-4-4-12 hex digits, the binary form "mixed
// endian" (UEFI spec, EFI_GUID): the first three groups little-endian (u32, u16, u16), the last
// two groups as written. OVMF's footer table, the SEV hashes table and the secret table all
// use this binary form.
import { SevArgumentError } from '../errors';

const GUID_TEXT = /^\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

/** A GUID in its binary (EFI, mixed-endian) form, 16 bytes. */
export type GuidBytes = Buffer;

/**
 * Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hyphens and braces optional, any case) into the
 * 16-byte EFI binary form. Throws SevArgumentError naming `what` on malformed text.
 */
export function guidToBytes(text: string, what = 'GUID'): GuidBytes {
  const m = GUID_TEXT.exec(text.trim());
  if (!m) throw new SevArgumentError('guid', `${what}: '${text}' is not a GUID (expected 8-4-4-4-12 hex digits)`);
  const [, d1, d2, d3, d4, d5] = m;
  const out = Buffer.alloc(16);
  out.writeUInt32LE(parseInt(d1, 16), 0);
  out.writeUInt16LE(parseInt(d2, 16), 4);
  out.writeUInt16LE(parseInt(d3, 16), 6);
  Buffer.from(d4 + d5, 'hex').copy(out, 8);
  return out;
}

/** The lower-case text form of a 16-byte EFI binary GUID. */
export function guidToString(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new SevArgumentError('guid', `a binary GUID is 16 bytes, got ${bytes.length}`);
  const b = Buffer.from(bytes);
  const hex = (n: number, digits: number) => n.toString(16).padStart(digits, '0');
  const tail = b.subarray(8).toString('hex');
  return `${hex(b.readUInt32LE(0), 8)}-${hex(b.readUInt16LE(4), 4)}-${hex(b.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/** Well-known GUIDs of the OVMF / QEMU SEV interfaces (edk2 OvmfPkg, QEMU target/i386/sev.c). */
export const KNOWN_GUIDS = Object.freeze({
  /** Footer of OVMF's GUIDed table, 32 bytes before the end of the image. */
  ovmfTableFooter: '96b582de-1fb2-45f7-baea-a366c55a082d',
  /** Where QEMU places the SEV hashes table: u32 GPA ‖ u32 size. */
  sevHashTableRv: '7255371f-3a3b-4b04-927b-1da6efa8d454',
  /** SEV-ES AP reset block: u32 reset address (CS base ‖ IP) for application processors. */
  sevEsResetBlock: '00f771de-1a7e-4fcb-890e-68c77e2fb44e',
  /** OVMF SEV metadata (SNP sections), u32 offset from the end of the image. */
  ovmfSevMetadata: 'dc886566-984a-4798-a75e-5585a7bf67cc',
  /** COCONUT-SVSM image info: u32 offset of the SVSM entry point from the image's start. */
  svsmInfo: 'a789a612-0597-4c4b-a49f-cbb1fe9d1ddd',
  /** SEV launch secret area: u32 GPA ‖ u32 size. */
  sevSecretBlock: '4c2eb361-7d9b-4cc3-8081-127c90d3d294',
  /** The SEV hashes table header and its entries. */
  sevHashTable: '9438d606-4f22-4cc9-b479-a793d411fd21',
  sevKernelHash: '4de79437-abd2-427f-b835-d5b172d2045b',
  sevInitrdHash: '44baf731-3a2f-4bd7-9af1-41e29169781d',
  sevCmdlineHash: '97d02dd8-bd20-4c94-aa78-e7714d36ab2a',
  /** The OVMF secret table header (edk2 OvmfPkg/AmdSev/SecretPei, sevctl secret build). */
  sevSecretTable: '1e74f542-71dd-4d66-963e-ef4287ff173b',
});
