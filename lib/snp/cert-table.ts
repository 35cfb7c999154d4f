// The certificate table an extended SNP report comes with (GHCB spec 2.03, MSG_REPORT_REQ with
// SNP_GET_EXT_REPORT; also configfs-tsm's `auxblob` for provider sev_guest): 24-byte entries
//   guid [16] | offset u32 LE | length u32 LE
// ended by an all-zero entry, each offset counted from the start of the table, the certificates
// (DER or PEM) after the table. The GUIDs are stored in the order their text is written (RFC 4122 /
// libuuid uuid_parse byte order), as the hosts' tooling writes them (virtee/sev, AMD's sev-guest);
// a table written with Linux guid_t order (first three fields little-endian) is read too.
import { SevCertificateError } from '../errors';

const CMD = 'SNP certificate table';

/** Size of one table entry. */
export const CERT_TABLE_ENTRY_SIZE = 24;

/** The GUIDs the GHCB spec (and virtee/sev) give the table's certificates. */
export const CERT_TABLE_GUIDS = Object.freeze({
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  vlek: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  crl: '92f81bc3-5811-4d3d-97ff-d19f88dc67ea',
});
export type CertTableName = keyof typeof CERT_TABLE_GUIDS;

const NAME_BY_GUID = new Map<string, CertTableName>(
  (Object.entries(CERT_TABLE_GUIDS) as [CertTableName, string][]).map(([name, guid]) => [guid, name]),
);

export interface CertTableEntry {
  /** The GUID as text (lower case, canonical form). */
  guid: string;
  /** The certificate's name when the GUID is a known one, else undefined. */
  name: CertTableName | undefined;
  /** Where the entry's GUID bytes came from: text order (the norm) or Linux guid_t order. */
  guidByteOrder: 'uuid' | 'guid_t';
  offset: number;
  length: number;
  /** The certificate bytes (a copy). */
  data: Buffer;
}

const GUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The 16 bytes of a GUID in text order (`guid_t`: the first three fields little-endian). */
export function guidToBytes(guid: string, order: 'uuid' | 'guid_t' = 'uuid'): Buffer {
  const text = guid.toLowerCase();
  if (!GUID_TEXT.test(text)) throw new SevCertificateError(CMD, `'${guid}' is not a GUID (8-4-4-4-12 hex digits)`);
  const b = Buffer.from(text.replace(/-/g, ''), 'hex');
  if (order === 'guid_t') {
    b.subarray(0, 4).reverse();
    b.subarray(4, 6).reverse();
    b.subarray(6, 8).reverse();
  }
  return b;
}

/** 16 bytes as GUID text, read in text order or in guid_t order. */
export function bytesToGuid(bytes: Uint8Array, order: 'uuid' | 'guid_t' = 'uuid'): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  if (order === 'guid_t') {
    b.subarray(0, 4).reverse();
    b.subarray(4, 6).reverse();
    b.subarray(6, 8).reverse();
  }
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function identify(guidBytes: Buffer): { guid: string; name: CertTableName | undefined; order: 'uuid' | 'guid_t' } {
  const text = bytesToGuid(guidBytes);
  const name = NAME_BY_GUID.get(text);
  if (name) return { guid: text, name, order: 'uuid' };
  const swapped = bytesToGuid(guidBytes, 'guid_t');
  const swappedName = NAME_BY_GUID.get(swapped);
  if (swappedName) return { guid: swapped, name: swappedName, order: 'guid_t' };
  return { guid: text, name: undefined, order: 'uuid' };
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Parses a certificate table. Strict: the table must end with an all-zero entry inside `blob`;
 * every entry must have a non-zero length and lie inside `blob` after the table; entries must not
 * overlap each other or repeat a GUID. A blob of zeros (or an empty one) is an empty table. Every
 * failure is a SevCertificateError naming the entry.
 */
export function parseCertTable(blob: Uint8Array): CertTableEntry[] {
  if (!(blob instanceof Uint8Array)) throw new SevCertificateError(CMD, 'the table must be a Buffer or Uint8Array');
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buf.length === 0) return [];
  const raw: Array<{ index: number; guid: Buffer; offset: number; length: number }> = [];
  let end = -1;
  for (let at = 0, index = 0; ; at += CERT_TABLE_ENTRY_SIZE, index++) {
    if (at + CERT_TABLE_ENTRY_SIZE > buf.length) {
      throw new SevCertificateError(
        CMD,
        `truncated: no all-zero terminating entry within ${buf.length} bytes (${index} entries read)`,
      );
    }
    const guid = buf.subarray(at, at + 16);
    const offset = buf.readUInt32LE(at + 16);
    const length = buf.readUInt32LE(at + 20);
    if (guid.every((b) => b === 0)) {
      if (offset !== 0 || length !== 0) {
        throw new SevCertificateError(CMD, `entry ${index} has a null GUID but offset ${hex(offset)} and length ${length}`);
      }
      end = at + CERT_TABLE_ENTRY_SIZE;
      break;
    }
    raw.push({ index, guid: Buffer.from(guid), offset, length });
  }

  const entries: CertTableEntry[] = [];
  const seen = new Map<string, number>();
  for (const e of raw) {
    const { guid, name, order } = identify(e.guid);
    const label = `entry ${e.index} (${name ? name.toUpperCase() : guid})`;
    if (e.length === 0) throw new SevCertificateError(CMD, `${label} has length 0`);
    if (e.offset < end) {
      throw new SevCertificateError(CMD, `${label} offset ${hex(e.offset)} points into the table itself (which ends at ${hex(end)})`);
    }
    if (e.offset + e.length > buf.length) {
      throw new SevCertificateError(
        CMD,
        `${label} at ${hex(e.offset)}+${e.length} runs past the end of the ${buf.length}-byte certificate buffer`,
      );
    }
    const earlier = seen.get(guid);
    if (earlier !== undefined) throw new SevCertificateError(CMD, `${label} repeats the GUID of entry ${earlier}`);
    seen.set(guid, e.index);
    entries.push({ guid, name, guidByteOrder: order, offset: e.offset, length: e.length, data: Buffer.from(buf.subarray(e.offset, e.offset + e.length)) });
  }
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.offset < prev.offset + prev.length) {
      const n = (e: CertTableEntry) => (e.name ? e.name.toUpperCase() : e.guid);
      throw new SevCertificateError(
        CMD,
        `${n(cur)} at ${hex(cur.offset)}+${cur.length} overlaps ${n(prev)} at ${hex(prev.offset)}+${prev.length}`,
      );
    }
  }
  return entries;
}

/** The number of bytes the table and its certificates use (0 for an empty table). */
export function certTableExtent(entries: readonly CertTableEntry[]): number {
  return entries.reduce((m, e) => Math.max(m, e.offset + e.length), 0);
}

/**
 * Builds a table (entries, terminator, then the certificates in order), as a host provides it:
 * for tests and for emulating a host. GUIDs by name or text.
 */
export function buildCertTable(
  certs: ReadonlyArray<{ guid: CertTableName | string; data: Uint8Array }>,
  options: { guidByteOrder?: 'uuid' | 'guid_t' } = {},
): Buffer {
  const header = Buffer.alloc((certs.length + 1) * CERT_TABLE_ENTRY_SIZE);
  let offset = header.length;
  certs.forEach((c, i) => {
    const text = (CERT_TABLE_GUIDS as Record<string, string>)[c.guid] ?? c.guid;
    guidToBytes(text, options.guidByteOrder).copy(header, i * CERT_TABLE_ENTRY_SIZE);
    header.writeUInt32LE(offset, i * CERT_TABLE_ENTRY_SIZE + 16);
    header.writeUInt32LE(c.data.length, i * CERT_TABLE_ENTRY_SIZE + 20);
    offset += c.data.length;
  });
  return Buffer.concat([header, ...certs.map((c) => Buffer.from(c.data))]);
}
