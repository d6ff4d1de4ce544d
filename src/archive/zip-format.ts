/**
 * Pure zip codec for the writer: local headers, central directory records, zip64 extras and end records.
 * No I/O here. Layout follows APPNOTE 6.3.x; we never set flag bit 3 (data descriptor), because Java's
 * ZipInputStream (MMS, TorchServe) rejects it on STORED entries.
 */

export const METHOD_STORED = 0;
export const METHOD_DEFLATED = 8;
export type ZipMethod = typeof METHOD_STORED | typeof METHOD_DEFLATED;

/** General-purpose flag bit 11: the name is UTF-8. */
export const FLAG_UTF8 = 0x800;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
/** End-of-central-directory signatures (also read by fingerprint.ts to find the central directory). */
export const SIG_EOCD = 0x06054b50;
export const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA_ID = 0x0001;

export const MAX_32 = 0xffffffff;
export const MAX_16 = 0xffff;

/** Version made by: 3.0 (30) on Unix (3), so readers honour the mode in the external attributes. */
const VERSION_MADE_BY = (3 << 8) | 30;
const VERSION_STORED = 10;
const VERSION_DEFLATED = 20;
const VERSION_ZIP64 = 45;

export const LOCAL_HEADER_FIXED = 30;
export const ZIP64_LOCAL_EXTRA = 20;

export interface DosDateTime {
  date: number;
  time: number;
}

/**
 * MS-DOS date/time from a Date, in UTC so the same epoch gives the same bytes in any time zone.
 * DOS time cannot hold dates before 1980 (clamped) or odd seconds (rounded down, as every zip tool does).
 */
export function toDosDateTime(d: Date): DosDateTime {
  let year = d.getUTCFullYear();
  if (year < 1980) return { date: (1 << 5) | 1, time: 0 };
  if (year > 2107) year = 2107;
  return {
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeBigUInt64LE(BigInt(value), offset);
}

function isAscii(name: string): boolean {
  return /^[\x20-\x7e]*$/.test(name);
}

export interface LocalHeaderInput {
  name: string;
  method: ZipMethod;
  dos: DosDateTime;
  crc32: number;
  /** Uncompressed size. */
  size: number;
  /** Compressed size (equal to size for STORED). */
  compressedSize: number;
  /** Write a zip64 extra with both sizes (required when either may reach 4 GiB). */
  zip64: boolean;
  /** Zero bytes of alignment padding after the extra's 4-byte head (see alignmentPadding); none when absent. */
  padding?: number;
}

function versionNeeded(method: ZipMethod, zip64: boolean): number {
  if (zip64) return VERSION_ZIP64;
  return method === METHOD_DEFLATED ? VERSION_DEFLATED : VERSION_STORED;
}

/**
 * Android zipalign's extra field: 2 bytes of alignment, then zero padding. Readers skip extras they do not know
 * (java.util.zip, Python's zipfile, Info-ZIP), so it only moves where an entry's data starts.
 */
const ALIGNMENT_EXTRA_ID = 0xd935;
/** Stored data is aligned to the page size, so that a copy of it inside the kernel moves whole pages. */
export const DATA_ALIGNMENT = 4096;

/**
 * The padding that makes an entry's data start at a DATA_ALIGNMENT boundary when its local header starts at
 * `offset` (the alignment extra adds 6 bytes plus the padding).
 */
export function alignmentPadding(offset: number, name: string, zip64: boolean): number {
  const dataStart = offset + LOCAL_HEADER_FIXED + Buffer.byteLength(name, 'utf8') + (zip64 ? ZIP64_LOCAL_EXTRA : 0) + 6;
  return (DATA_ALIGNMENT - (dataStart % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
}

/**
 * A local file header. Its length only depends on the name, the zip64 flag and the padding, so it can be patched in
 * place later.
 */
export function encodeLocalHeader(h: LocalHeaderInput): Buffer {
  const name = Buffer.from(h.name, 'utf8');
  const aligned = h.padding !== undefined;
  const extraLen = (h.zip64 ? ZIP64_LOCAL_EXTRA : 0) + (aligned ? 6 + h.padding! : 0);
  const buf = Buffer.alloc(LOCAL_HEADER_FIXED + name.length + extraLen);
  buf.writeUInt32LE(SIG_LOCAL, 0);
  buf.writeUInt16LE(versionNeeded(h.method, h.zip64), 4);
  buf.writeUInt16LE(isAscii(h.name) ? 0 : FLAG_UTF8, 6);
  buf.writeUInt16LE(h.method, 8);
  buf.writeUInt16LE(h.dos.time, 10);
  buf.writeUInt16LE(h.dos.date, 12);
  buf.writeUInt32LE(h.crc32 >>> 0, 14);
  buf.writeUInt32LE(h.zip64 ? MAX_32 : h.compressedSize, 18);
  buf.writeUInt32LE(h.zip64 ? MAX_32 : h.size, 22);
  buf.writeUInt16LE(name.length, 26);
  buf.writeUInt16LE(extraLen, 28);
  name.copy(buf, LOCAL_HEADER_FIXED);
  if (h.zip64) {
    const x = LOCAL_HEADER_FIXED + name.length;
    buf.writeUInt16LE(ZIP64_EXTRA_ID, x);
    buf.writeUInt16LE(16, x + 2);
    writeU64(buf, h.size, x + 4);
    writeU64(buf, h.compressedSize, x + 12);
  }
  if (aligned) {
    const x = LOCAL_HEADER_FIXED + name.length + (h.zip64 ? ZIP64_LOCAL_EXTRA : 0);
    buf.writeUInt16LE(ALIGNMENT_EXTRA_ID, x);
    buf.writeUInt16LE(2 + h.padding!, x + 2);
    buf.writeUInt16LE(DATA_ALIGNMENT, x + 4);
    // the padding is zeros already (Buffer.alloc)
  }
  return buf;
}

export interface CentralRecordInput extends LocalHeaderInput {
  /** Offset of the local header from the start of the file. */
  localHeaderOffset: number;
  /** Unix permission bits (e.g. 0o644); stored as a regular file in the external attributes. */
  mode: number;
}

/**
 * A central directory record. Its zip64 extra carries exactly the fields whose 32-bit slots hold 0xffffffff,
 * in the APPNOTE order (size, compressed size, offset), which is what Python's zipfile and unzip expect.
 */
export function encodeCentralRecord(h: CentralRecordInput): Buffer {
  const name = Buffer.from(h.name, 'utf8');
  const bigSize = h.zip64 || h.size >= MAX_32;
  const bigCsize = h.zip64 || h.compressedSize >= MAX_32;
  const bigOffset = h.localHeaderOffset >= MAX_32;
  const fields = [bigSize ? h.size : -1, bigCsize ? h.compressedSize : -1, bigOffset ? h.localHeaderOffset : -1].filter((v) => v >= 0);
  const extraLen = fields.length ? 4 + 8 * fields.length : 0;
  const buf = Buffer.alloc(46 + name.length + extraLen);
  buf.writeUInt32LE(SIG_CENTRAL, 0);
  buf.writeUInt16LE(VERSION_MADE_BY, 4);
  buf.writeUInt16LE(versionNeeded(h.method, h.zip64 || fields.length > 0), 6);
  buf.writeUInt16LE(isAscii(h.name) ? 0 : FLAG_UTF8, 8);
  buf.writeUInt16LE(h.method, 10);
  buf.writeUInt16LE(h.dos.time, 12);
  buf.writeUInt16LE(h.dos.date, 14);
  buf.writeUInt32LE(h.crc32 >>> 0, 16);
  buf.writeUInt32LE(bigCsize ? MAX_32 : h.compressedSize, 20);
  buf.writeUInt32LE(bigSize ? MAX_32 : h.size, 24);
  buf.writeUInt16LE(name.length, 28);
  buf.writeUInt16LE(extraLen, 30);
  buf.writeUInt16LE(0, 32); // comment length
  buf.writeUInt16LE(0, 34); // disk number start
  buf.writeUInt16LE(0, 36); // internal attributes
  buf.writeUInt32LE(((0o100000 | (h.mode & 0o7777)) << 16) >>> 0, 38);
  buf.writeUInt32LE(bigOffset ? MAX_32 : h.localHeaderOffset, 42);
  name.copy(buf, 46);
  if (fields.length) {
    let x = 46 + name.length;
    buf.writeUInt16LE(ZIP64_EXTRA_ID, x);
    buf.writeUInt16LE(8 * fields.length, x + 2);
    x += 4;
    for (const f of fields) {
      writeU64(buf, f, x);
      x += 8;
    }
  }
  return buf;
}

export interface EndRecordInput {
  entryCount: number;
  centralDirectoryOffset: number;
  centralDirectorySize: number;
}

/**
 * The end of the archive: zip64 end record + locator when the entry count or an offset/size does not fit
 * the classic record, then the classic end record (with 0xffff/0xffffffff in the overflowing slots).
 */
export function encodeEnd(e: EndRecordInput): Buffer {
  const needZip64 = e.entryCount >= MAX_16 || e.centralDirectoryOffset >= MAX_32 || e.centralDirectorySize >= MAX_32;
  const parts: Buffer[] = [];
  if (needZip64) {
    const zip64EndOffset = e.centralDirectoryOffset + e.centralDirectorySize;
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    writeU64(rec, 44, 4); // size of the remaining record
    rec.writeUInt16LE(VERSION_MADE_BY, 12);
    rec.writeUInt16LE(VERSION_ZIP64, 14);
    rec.writeUInt32LE(0, 16); // this disk
    rec.writeUInt32LE(0, 20); // disk with the central directory
    writeU64(rec, e.entryCount, 24);
    writeU64(rec, e.entryCount, 32);
    writeU64(rec, e.centralDirectorySize, 40);
    writeU64(rec, e.centralDirectoryOffset, 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
    loc.writeUInt32LE(0, 4);
    writeU64(loc, zip64EndOffset, 8);
    loc.writeUInt32LE(1, 16); // total disks
    parts.push(rec, loc);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(SIG_EOCD, 0);
  const count = Math.min(e.entryCount, MAX_16);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(Math.min(e.centralDirectorySize, MAX_32), 12);
  end.writeUInt32LE(Math.min(e.centralDirectoryOffset, MAX_32), 16);
  end.writeUInt16LE(0, 20);
  parts.push(end);
  return Buffer.concat(parts);
}

/**
 * Whether an entry of this uncompressed size needs zip64 sizes in its local header. Decided before the data is
 * written, so it includes deflate's worst-case growth (zlib's deflateBound is below size + size/1024 + 64 KiB).
 */
export function needsZip64(size: number, method: ZipMethod): boolean {
  const worst = method === METHOD_DEFLATED ? size + Math.ceil(size / 1024) + 65536 : size;
  return worst >= MAX_32;
}
