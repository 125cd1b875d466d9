// Builds and reads zip archives byte by byte for tests that need archives a normal zip tool would not
// write: entries outside a top folder, duplicate names, headers that lie about sizes, bad CRCs. It
// protects the invariant that a hostile-archive test changes exactly the field it names and nothing
// else (the builder writes what it is told, and checks nothing).
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

export interface ZipEntryInput {
  name: string;
  data: Uint8Array | string;
  /** Deflate the data (method 8) instead of storing it (method 0). */
  deflate?: boolean;
  /** The uncompressed size written in both headers, when it should differ from the data's. */
  declaredSize?: number;
  /** The CRC-32 written in both headers, when it should differ from the data's. */
  declaredCrc?: number;
  /** The compression method written in both headers, overriding the one used. */
  declaredMethod?: number;
}

/** A zip archive: local headers and data, the central directory, the end record (no zip64). */
export function buildZip(entries: readonly ZipEntryInput[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = Buffer.from(entry.data);
    const body = entry.deflate ? deflateRawSync(data) : data;
    const method = entry.declaredMethod ?? (entry.deflate ? 8 : 0);
    const crc = entry.declaredCrc ?? crc32(data);
    const size = entry.declaredSize ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** A zip archive of stored (uncompressed) entries. */
export function storedZip(entries: readonly { name: string; data: Uint8Array | string }[]): Buffer {
  return buildZip(entries.map(({ name, data }) => ({ name, data })));
}

/** The entries of a zip archive (stored or deflated), read through its central directory, in order. */
export function readZip(archive: Buffer): { name: string; data: Buffer; deflated: boolean }[] {
  const end = archive.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end < 0) throw new Error('readZip: no end of central directory record');
  const count = archive.readUInt16LE(end + 10);
  let at = archive.readUInt32LE(end + 16);
  const entries: { name: string; data: Buffer; deflated: boolean }[] = [];
  for (let i = 0; i < count; i += 1) {
    if (archive.readUInt32LE(at) !== 0x02014b50) throw new Error(`readZip: bad central header at ${at}`);
    const method = archive.readUInt16LE(at + 10);
    if (method !== 0 && method !== 8) throw new Error(`readZip: compression method ${method}`);
    const compressedSize = archive.readUInt32LE(at + 20);
    const nameLength = archive.readUInt16LE(at + 28);
    const local = archive.readUInt32LE(at + 42);
    const name = archive.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    const dataStart = local + 30 + archive.readUInt16LE(local + 26) + archive.readUInt16LE(local + 28);
    const body = archive.subarray(dataStart, dataStart + compressedSize);
    entries.push({ name, data: method === 8 ? inflateRawSync(body) : body, deflated: method === 8 });
    at += 46 + nameLength + archive.readUInt16LE(at + 30) + archive.readUInt16LE(at + 32);
  }
  return entries;
}

/** The entries of a zip archive of stored entries; throws on a deflated one. */
export function readStoredZip(archive: Buffer): { name: string; data: Buffer }[] {
  return readZip(archive).map(({ name, data, deflated }) => {
    if (deflated) throw new Error(`readStoredZip: ${name} is deflated (stored entries only)`);
    return { name, data };
  });
}
