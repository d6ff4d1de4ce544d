#!/usr/bin/env node
// Writes the hostile-input corpus: fixtures/hostile/<case>.{mar,tar.gz,bin}. Every archive is built byte by byte
// here (no archiver would write most of them), deterministically (fixed times, fixed content), so a rerun
// rewrites the same files. What each command must do with each case is the table in fixtures/hostile/README.md,
// which test/project/hostile-corpus.test.ts reads.
//
//   node scripts/make-hostile-corpus.js [outDir]      (default: fixtures/hostile)
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = process.argv[2] ?? join(ROOT, 'fixtures', 'hostile');

const HANDLER = Buffer.from('def handle(data, context):\n    if data is None:\n        return None\n    return ["OK"] * len(data)\n');
const manifestOf = (model, extra = {}) =>
  Buffer.from(
    `${JSON.stringify(
      {
        createdOn: '01/01/2025 00:00:00',
        runtime: 'python',
        model: { modelName: 'hostile', handler: 'handler:handle', modelVersion: '1.0', ...model },
        archiverVersion: 'hostile-corpus',
        specificationVersion: '1.0',
        ...extra,
      },
      null,
      2,
    )}\n`,
  );
const MANIFEST = manifestOf({});

// ---------------------------------------------------------------------------------------------------------------
// zip: one record per entry; every field can be overridden to lie.

const S_IFREG = 0o100000;
const DOS_TIME = 0; // 00:00:00
const DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1; // 2020-01-01

/**
 * entry: { name, data, method: 0|8 (default 8 for data > 64 bytes), mode (unix st_mode), flags, crc, size,
 * csize (recorded sizes, default true), localName (default name), zip64: {size, csize} extra, rawData (stored
 * bytes instead of compressing data) }
 */
function zip(entries, opts = {}) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  const records = [];
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8');
    const data = e.data ?? Buffer.alloc(0);
    const method = e.method ?? (data.length > 64 ? 8 : 0);
    // an entry sharing another's data (an overlapping-entries bomb) records that entry's stored bytes
    const stored =
      e.sharesDataOf !== undefined
        ? records[e.sharesDataOf].stored
        : (e.rawData ?? (method === 8 ? deflateRawSync(data, { level: 9 }) : data));
    records.push({ e, name, data, method, stored });
  }
  for (const r of records) {
    const { e, name, data, method, stored } = r;
    const crc = e.crc ?? (e.sharesDataOf !== undefined ? records[e.sharesDataOf].crc : crc32(data));
    r.crc = crc;
    const size = e.size ?? data.length;
    const csize = e.csize ?? stored.length;
    const flags = (e.flags ?? 0) | 0x800;
    const localName = e.localName === undefined ? name : Buffer.from(e.localName, 'utf8');
    let extra = Buffer.alloc(0);
    if (e.zip64) {
      extra = Buffer.alloc(20);
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(BigInt(e.zip64.size), 4);
      extra.writeBigUInt64LE(BigInt(e.zip64.csize), 12);
    }
    const big = (v) => (e.zip64 ? 0xffffffff : v);
    // the fields local and central headers share, version needed to extra length, from `at`
    const shared = (h, at, headerName) => {
      h.writeUInt16LE(e.zip64 ? 45 : 20, at);
      h.writeUInt16LE(flags, at + 2);
      h.writeUInt16LE(method, at + 4);
      h.writeUInt16LE(DOS_TIME, at + 6);
      h.writeUInt16LE(DOS_DATE, at + 8);
      h.writeUInt32LE(crc >>> 0, at + 10);
      h.writeUInt32LE(big(csize), at + 14);
      h.writeUInt32LE(big(size), at + 18);
      h.writeUInt16LE(headerName.length, at + 22);
      h.writeUInt16LE(extra.length, at + 24);
    };
    r.offset = e.sharesDataOf === undefined ? offset : records[e.sharesDataOf].offset;
    if (e.sharesDataOf === undefined) {
      const lh = Buffer.alloc(30);
      lh.writeUInt32LE(0x04034b50, 0);
      shared(lh, 4, localName);
      const local = Buffer.concat([lh, localName, extra, stored]);
      locals.push(local);
      offset += local.length;
    }
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE((3 << 8) | (e.zip64 ? 45 : 20), 4); // made by unix
    shared(ch, 6, name);
    ch.writeUInt32LE(((e.mode ?? S_IFREG | 0o644) << 16) >>> 0, 38);
    ch.writeUInt32LE(r.offset, 42);
    centrals.push(Buffer.concat([ch, name, extra]));
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  const count = opts.eocdCount ?? entries.length;
  eocd.writeUInt16LE(Math.min(count, 0xffff), 8);
  eocd.writeUInt16LE(Math.min(count, 0xffff), 10);
  eocd.writeUInt32LE(opts.cdSize ?? cd.length, 12);
  eocd.writeUInt32LE(opts.cdOffset ?? offset, 16);
  const parts = [...locals, cd];
  if (opts.zip64Eocd) {
    // zip64 end record + locator, then an end record that defers to them
    const z = Buffer.alloc(56);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeUInt16LE((3 << 8) | 45, 12);
    z.writeUInt16LE(45, 14);
    z.writeBigUInt64LE(BigInt(opts.zip64Eocd.count), 24);
    z.writeBigUInt64LE(BigInt(opts.zip64Eocd.count), 32);
    z.writeBigUInt64LE(BigInt(cd.length), 40);
    z.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    eocd.writeUInt16LE(0xffff, 8);
    eocd.writeUInt16LE(0xffff, 10);
    eocd.writeUInt32LE(0xffffffff, 12);
    eocd.writeUInt32LE(0xffffffff, 16);
    parts.push(z, loc);
  }
  parts.push(eocd);
  return Buffer.concat(parts);
}

/** A loadable model plus `extra` entries (placed first, so they are seen before anything else). */
const model = (extra = [], manifest = MANIFEST) => [
  ...extra,
  { name: 'MAR-INF/MANIFEST.json', data: manifest },
  { name: 'handler.py', data: HANDLER },
];

// ---------------------------------------------------------------------------------------------------------------
// tar: ustar headers; type '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' FIFO,
// 'x' pax header.

function tarHeader(name, { type = '0', size = 0, mode = 0o644, link = '' } = {}) {
  const h = Buffer.alloc(512);
  const put = (s, off, len) => Buffer.from(s, 'utf8').copy(h, off, 0, len);
  const octal = (n, off, len) => put(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len);
  put(name, 0, 100);
  octal(mode, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  h.fill(' ', 148, 156);
  put(type, 156, 1);
  put(link, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** members: { name, data, type, link, mode, pax: {key: value} } */
function tar(members) {
  const parts = [];
  for (const m of members) {
    if (m.pax) {
      const body = Buffer.from(
        Object.entries(m.pax)
          .map(([k, v]) => {
            const rec = ` ${k}=${v}\n`;
            let len = rec.length + 1;
            while (String(len).length + rec.length !== len) len = String(len).length + rec.length;
            return `${len}${rec}`;
          })
          .join(''),
      );
      parts.push(tarHeader('PaxHeaders/x', { type: 'x', size: body.length }), body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
    const data = m.data ?? Buffer.alloc(0);
    parts.push(tarHeader(m.name, { type: m.type ?? '0', size: data.length, mode: m.mode, link: m.link }));
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const tgzModel = (extra = [], manifest = MANIFEST) =>
  tar([
    { name: 'hostile/', type: '5', mode: 0o755 },
    { name: 'hostile/MAR-INF/', type: '5', mode: 0o755 },
    { name: 'hostile/MAR-INF/MANIFEST.json', data: manifest },
    { name: 'hostile/handler.py', data: HANDLER },
    ...extra,
  ]);
const gz = (b) => gzipSync(b, { level: 9 });

// ---------------------------------------------------------------------------------------------------------------
// The cases. Names are the file names; the README's table says what each command does with each.

const evil = Buffer.from('written outside the target\n');
const MiB = 1 << 20;
const zeroBuffers = new Map();
/** n zero bytes (one shared buffer per size: the bombs below use the same 16 MiB many times). */
const zeros = (n) => {
  if (!zeroBuffers.has(n)) zeroBuffers.set(n, Buffer.alloc(n));
  return zeroBuffers.get(n);
};

/** The central directory of an intact model, for the structural lies below. */
function intact() {
  return zip(model());
}

const cases = {
  // names that escape the target
  'zip-slip-dotdot.mar': zip(model([{ name: '../evil.txt', data: evil }])),
  'zip-slip-deep.mar': zip(model([{ name: 'a/b/../../../evil.txt', data: evil }])),
  'zip-slip-absolute.mar': zip(model([{ name: '/tmp/hostile-evil.txt', data: evil }])),
  'zip-slip-drive-letter.mar': zip(model([{ name: 'C:/evil.txt', data: evil }])),
  'zip-slip-backslash.mar': zip(model([{ name: '..\\..\\evil.txt', data: evil }])),
  'zip-slip-drive-backslash.mar': zip(model([{ name: 'C:\\Windows\\evil.txt', data: evil }])),
  'zip-name-nul.mar': zip(model([{ name: Buffer.from('evil\0.txt', 'latin1'), data: evil }])),
  'tgz-slip-dotdot.tar.gz': gz(tgzModel([{ name: 'hostile/../../evil.txt', data: evil }])),
  'tgz-slip-absolute.tar.gz': gz(tgzModel([{ name: '/tmp/hostile-evil.txt', data: evil }])),
  'tgz-slip-pax-path.tar.gz': gz(tgzModel([{ name: 'hostile/innocent.txt', data: evil, pax: { path: '../../evil.txt' } }])),
  // links and special files
  'zip-symlink.mar': zip(model([{ name: 'passwd', data: Buffer.from('/etc/passwd'), mode: 0o120777 }])),
  'zip-symlink-dir.mar': zip(
    model([
      { name: 'up', data: Buffer.from('..'), mode: 0o120777 },
      { name: 'up/evil.txt', data: evil },
    ]),
  ),
  'zip-fifo.mar': zip(model([{ name: 'pipe', mode: 0o010644 }])),
  'zip-chardev.mar': zip(model([{ name: 'null', mode: 0o020644 }])),
  'tgz-symlink.tar.gz': gz(tgzModel([{ name: 'hostile/passwd', type: '2', link: '/etc/passwd' }])),
  'tgz-hardlink.tar.gz': gz(tgzModel([{ name: 'hostile/shadow', type: '1', link: '/etc/shadow' }])),
  'tgz-chardev.tar.gz': gz(tgzModel([{ name: 'hostile/null', type: '3' }])),
  'tgz-blockdev.tar.gz': gz(tgzModel([{ name: 'hostile/sda', type: '4' }])),
  'tgz-fifo.tar.gz': gz(tgzModel([{ name: 'hostile/pipe', type: '6' }])),
  // ambiguous names
  'zip-duplicate.mar': zip(model([{ name: 'handler.py', data: Buffer.from('raise SystemExit("the other copy")\n') }])),
  'zip-duplicate-manifest.mar': zip(model([{ name: 'MAR-INF/MANIFEST.json', data: manifestOf({ handler: 'other:handle' }) }])),
  'zip-case-collision.mar': zip(model([{ name: 'Handler.py', data: HANDLER }])),
  'zip-file-and-dir.mar': zip(
    model([
      { name: 'weights', data: Buffer.from('x') },
      { name: 'weights/part1', data: Buffer.from('y') },
    ]),
  ),
  'tgz-duplicate.tar.gz': gz(tgzModel([{ name: 'hostile/handler.py', data: Buffer.from('raise SystemExit(1)\n') }])),
  // bombs
  'zip-bomb-overlap.mar': zip(
    model([
      { name: 'layer0.bin', data: zeros(16 * MiB) },
      ...Array.from({ length: 60 }, (_, i) => ({ name: `layer${i + 1}.bin`, data: zeros(16 * MiB), sharesDataOf: 0 })),
    ]),
  ),
  'zip-bomb-declared.mar': zip(
    model(Array.from({ length: 17 }, (_, i) => ({ name: `shard${i}.bin`, data: Buffer.from('tiny'), size: 0xfffffff0 }))),
  ),
  'zip-bomb-zeros.mar': zip(model([{ name: 'zeros.bin', data: zeros(24 * MiB) }])),
  'tgz-bomb-zeros.tar.gz': gz(tgzModel([{ name: 'hostile/zeros.bin', data: zeros(24 * MiB) }])),
  'zip-nested-bomb.mar': zip(model([{ name: 'inner.mar', data: zip([{ name: 'zeros.bin', data: zeros(8 * MiB) }]), method: 0 }])),
  // damaged structure and lies
  'zip-truncated-cd.mar': intact().subarray(0, intact().length - 40),
  'zip-corrupt-cd.mar': (() => {
    const b = Buffer.from(intact());
    const cd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    b.writeUInt32LE(0xdeadbeef, cd);
    return b;
  })(),
  'zip-no-eocd.mar': intact().subarray(0, intact().length - 22),
  'zip-eocd-count-lie.mar': zip(model(), { eocdCount: 60_000 }),
  'zip-eocd-offset-lie.mar': zip(model(), { cdOffset: 0x7fffffff }),
  'zip64-entry-count-lie.mar': zip(model(), { zip64Eocd: { count: 2 ** 40 } }),
  'zip64-size-lie.mar': zip(model([{ name: 'huge.bin', data: Buffer.from('tiny'), method: 0, zip64: { size: 2 ** 50, csize: 4 } }])),
  'zip-crc-mismatch.mar': zip(model([{ name: 'weights.bin', data: Buffer.from('the weights'), crc: 0x12345678 }])),
  'zip-size-lie.mar': zip(model([{ name: 'weights.bin', data: zeros(4 * MiB), size: 1024 }])),
  'zip-local-header-lie.mar': zip(model([{ name: 'weights.bin', data: Buffer.from('w'), localName: '../evil.txt' }])),
  'zip-encrypted.mar': zip(model([{ name: 'secret.bin', data: Buffer.from('ciphertext'), flags: 0x1 }])),
  'zip-method-bzip2.mar': zip(model([{ name: 'weights.bin', data: Buffer.from('w'), method: 12, rawData: Buffer.from('BZh9') }])),
  'not-an-archive.mar': Buffer.from('this is not an archive at all, just text with a .mar name\n'),
  'empty.mar': Buffer.alloc(0),
  'tgz-truncated.tar.gz': gz(tgzModel()).subarray(0, 200),
  'tgz-garbage.tar.gz': gz(Buffer.from('a gzip stream of something that is not a tar\n'.repeat(20))),
  // manifests
  'manifest-not-json.mar': zip(model([], Buffer.from('{"model": {"handler": "handler:handle",'))),
  'manifest-wrong-types.mar': zip(model([], Buffer.from('{"runtime": 3, "model": "handler.py", "specificationVersion": []}'))),
  'manifest-not-object.mar': zip(model([], Buffer.from('["MAR-INF", "MANIFEST.json"]'))),
  'manifest-50mib.mar': zip(
    model(
      [],
      Buffer.concat([Buffer.from('{"model": {"handler": "handler:handle"}, "pad": "'), Buffer.alloc(50 * MiB, 0x20), Buffer.from('"}')]),
    ),
  ),
  'manifest-missing-handler.mar': zip(model([], manifestOf({ handler: 'nosuch:handle' }))),
  'manifest-handler-path-escape.mar': zip(model([], manifestOf({ handler: '../../../etc/passwd:handle' }))),
  'manifest-handler-absolute.mar': zip(model([], manifestOf({ handler: '/etc/passwd:handle' }))),
  'manifest-config-escape.mar': zip(model([], manifestOf({ configFile: '../../../etc/passwd' }))),
  'manifest-name-slash.mar': zip(model([], manifestOf({ modelName: 'a/../../b' }))),
  'manifest-name-control.mar': zip(model([], manifestOf({ modelName: 'bad\u0007name\n' }))),
  'manifest-runtime-unknown.mar': zip(model([], manifestOf({}, { runtime: 'java' }))),
  // a well-formed model, so the table shows what "ok" looks like for every command
  'control-ok.mar': zip(model()),
};

mkdirSync(OUT, { recursive: true });
for (const name of readdirSync(OUT)) if (/\.(mar|tar\.gz)$/.test(name)) rmSync(join(OUT, name));
for (const [name, bytes] of Object.entries(cases)) writeFileSync(join(OUT, name), bytes);
process.stdout.write(`wrote ${Object.keys(cases).length} cases to ${OUT}\n`);
