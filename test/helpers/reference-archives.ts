/**
 * Builds archives at test time in the shapes the reference tools write (MMS 1.0.4, TorchServe 0.12 zip,
 * zip-store and tgz, legacy 0.x) and hostile ones (stored + data descriptor, CP437 names, backslashes,
 * duplicates, `..`, absolute paths, links, bad CRC, truncation, zip bombs). Python's zipfile/tarfile write
 * the ordinary ones; the hostile zips are assembled byte by byte so every field is under our control.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { run } from './util.js';

/** A temp dir for a whole test file, removed after its tests; call it at the top level of the file (not in a hook). */
export async function suiteDir(prefix = 'mar-suite-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const GOOD_SHAPES = [
  'mms',
  'torchserve',
  'torchserve-store',
  'torchserve-tgz',
  'legacy',
  'tgz-dot',
  'node',
  'with-digests',
  'unpacked',
  'infozip',
  'sparse-5g',
] as const;

export const BAD_SHAPES = [
  'tgz-no-root',
  'stored-dd',
  'cp437',
  'backslash',
  'duplicate',
  'dotdot',
  'absolute',
  'symlink',
  'bad-crc',
  'truncated',
  'no-manifest',
  'bad-handler',
  'bad-entry-point',
  'bad-config',
  'bad-schema',
  'tampered-digests',
  'tgz-dotdot',
  'tgz-absolute',
  'tgz-symlink',
  'tgz-hardlink',
  'bomb',
  'tgz-bomb',
  'lying-size',
  'not-an-archive',
  'truncated-tgz',
] as const;

export type ReferenceShape = (typeof GOOD_SHAPES)[number] | (typeof BAD_SHAPES)[number];

/** File names per shape (relative to the output dir). */
export const SHAPE_FILES: Record<ReferenceShape, string> = {
  mms: 'mms.mar',
  torchserve: 'ts.mar',
  'torchserve-store': 'ts-store.mar',
  'torchserve-tgz': 'ts.tar.gz',
  legacy: 'legacy.mar',
  'tgz-dot': 'dot.tar.gz',
  node: 'node.mar',
  'with-digests': 'digests.mar',
  unpacked: 'unpacked',
  infozip: 'infozip.mar',
  'sparse-5g': 'sparse-5g.mar',
  'tgz-no-root': 'noroot.tar.gz',
  'stored-dd': 'stored-dd.mar',
  cp437: 'cp437.mar',
  backslash: 'backslash.mar',
  duplicate: 'duplicate.mar',
  dotdot: 'dotdot.mar',
  absolute: 'absolute.mar',
  symlink: 'symlink.mar',
  'bad-crc': 'bad-crc.mar',
  truncated: 'truncated.mar',
  'no-manifest': 'no-manifest.mar',
  'bad-handler': 'bad-handler.mar',
  'bad-entry-point': 'bad-entry-point.mar',
  'bad-config': 'bad-config.mar',
  'bad-schema': 'bad-schema.mar',
  'tampered-digests': 'tampered-digests.mar',
  'tgz-dotdot': 'dotdot.tar.gz',
  'tgz-absolute': 'absolute.tar.gz',
  'tgz-symlink': 'symlink.tar.gz',
  'tgz-hardlink': 'hardlink.tar.gz',
  bomb: 'bomb.mar',
  'tgz-bomb': 'bomb.tar.gz',
  'lying-size': 'lying-size.mar',
  'not-an-archive': 'not-an-archive.mar',
  'truncated-tgz': 'truncated.tar.gz',
};

/** Size of the zero-filled entry in the `bomb` shape. */
export const BOMB_BYTES = 8 << 20;

const PYTHON = String.raw`
import hashlib, io, json, os, shutil, struct, sys, tarfile, zipfile, zlib

out = sys.argv[1]
shapes = sys.argv[2:]

MMS_HANDLER = b'''import logging


class ModelHandler(object):
    def __init__(self):
        self.initialized = False

    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        return ["OK"] * len(data)


_service = ModelHandler()


def handle(data, context):
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
'''

TS_HANDLER = b'''from ts.torch_handler.base_handler import BaseHandler


class MyHandler(BaseHandler):
    def preprocess(self, data):
        return data
'''

TWO_CLASSES = b'''class A:
    def handle(self, data, context):
        return data


class B:
    pass
'''

NODE_HANDLER = b'''export async function predict(batch, context) {
  return batch.map(() => 'OK');
}
'''

LEGACY_SERVICE = b'''from mms.model_service.mxnet_model_service import SingleNodeService


class LegacyService(SingleNodeService):
    def _inference(self, data):
        return data
'''

CONFIG = b'minWorkers: 1\nmaxWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 100\n'
WEIGHTS = bytes(range(256)) * 64

def dumps(obj):
    return json.dumps(obj, indent=2).encode()

MMS_MANIFEST = {
    "runtime": "python",
    "model": {"modelName": "edge", "handler": "model_handler:handle"},
    "modelServerVersion": "1.0",
    "implementationVersion": "1.0",
    "specificationVersion": "1.0",
}

def ts_manifest(**model_over):
    model = {
        "modelName": "ts_edge",
        "serializedFile": "model.pt",
        "handler": "my_handler.py",
        "modelFile": "model_def.py",
        "modelVersion": "1.0",
        "requirementsFile": "requirements.txt",
        "configFile": "model-config.yaml",
    }
    model.update(model_over)
    return {"createdOn": "24/11/2026 19:48:06", "runtime": "python", "model": model, "archiverVersion": "0.12.0"}

TS_FILES = [
    ("model_def.py", b"import torch\n\nclass Net:\n    pass\n"),
    ("model.pt", WEIGHTS),
    ("my_handler.py", TS_HANDLER),
    ("requirements.txt", b"numpy\n"),
    ("model-config.yaml", CONFIG),
]

def py_zip(name, files, method=zipfile.ZIP_DEFLATED):
    # Python writes no data descriptors to a seekable file, create_system 3 (Unix), as both reference archivers.
    with zipfile.ZipFile(os.path.join(out, name), "w", method) as z:
        for path, data, *mode in files:
            info = zipfile.ZipInfo(path, date_time=(2026, 11, 24, 19, 48, 6))
            info.compress_type = method
            info.create_system = 3
            info.external_attr = ((mode[0] if mode else 0o644) | 0o100000) << 16
            z.writestr(info, data)

def raw_zip(name, entries):
    # entries: dicts with name (bytes), data, method (0/8), flags, dd (data descriptor), crc, ext (external attrs)
    buf = bytearray()
    cd = bytearray()
    for e in entries:
        fname = e["name"]
        data = e.get("data", b"")
        method = e.get("method", 0)
        if method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            comp = c.compress(data) + c.flush()
        else:
            comp = data
        crc = e.get("crc", zlib.crc32(data))
        usize = e.get("usize", len(data))
        flags = e.get("flags", 0) | (0x8 if e.get("dd") else 0)
        ext = e.get("ext", 0o100644 << 16)
        offset = len(buf)
        if e.get("dd"):
            lcrc, lcs, lus = 0, 0, 0
        else:
            lcrc, lcs, lus = crc, len(comp), usize
        buf += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, lcrc, lcs, lus, len(fname), 0) + fname + comp
        if e.get("dd"):
            buf += struct.pack("<IIII", 0x08074B50, crc, len(comp), usize)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, flags, method, 0, 0x21, crc, len(comp), usize, len(fname), 0, 0, 0, 0, ext, offset) + fname
    n = len(entries)
    off = len(buf)
    buf += cd
    buf += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), off, 0)
    with open(os.path.join(out, name), "wb") as f:
        f.write(buf)

def sparse_zip(name, big):
    # A valid zip64 archive whose last entry is a STORED hole of big bytes: cheap on disk, huge to read.
    with open(os.path.join(out, name), "wb") as f:
        cd = bytearray()
        for fname, data in [(b"model_handler.py", MMS_HANDLER), (b"MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST))]:
            off = f.tell()
            crc = zlib.crc32(data)
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(fname), 0) + fname + data)
            cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(fname), 0, 0, 0, 0, 0o100644 << 16, off) + fname
        fname = b"weights.bin"
        off = f.tell()
        extra = struct.pack("<HHQQ", 1, 16, big, big)
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(fname), len(extra)) + fname + extra)
        f.seek(big, 1)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x032D, 45, 0, 0, 0, 0x21, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(fname), len(extra), 0, 0, 0, 0o100644 << 16, off) + fname + extra
        cd_off = f.tell()
        f.write(cd)
        z64 = f.tell()
        f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 3, 3, len(cd), cd_off))
        f.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(cd), 0xFFFFFFFF, 0))

def mms_entries(extra=()):
    return [
        {"name": b"model_handler.py", "data": MMS_HANDLER, "method": 8},
        {"name": b"MAR-INF/MANIFEST.json", "data": dumps(MMS_MANIFEST), "method": 8},
    ] + list(extra)

def tgz(name, members, root=None, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(os.path.join(out, name), "w:gz", format=fmt) as t:
        for m in members:
            path, kind, payload = m
            full = (root + "/" + path) if root else path
            info = tarfile.TarInfo(full)
            info.mtime = 1764013686
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                t.addfile(info)

def ts_members(manifest=None):
    return [(p, "file", d) for p, d in TS_FILES] + [("MAR-INF/MANIFEST.json", "file", dumps(manifest or ts_manifest()))]

def digest_file(files):
    lines = []
    for path, data in files:
        lines.append("%s  %d  %s" % (hashlib.sha256(data).hexdigest(), len(data), path))
    return ("\n".join(lines) + "\n").encode()

def build(shape):
    if shape == "mms":
        py_zip("mms.mar", [("model_handler.py", MMS_HANDLER), ("weights/params.bin", WEIGHTS), ("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST), 0o600)])
    elif shape == "torchserve":
        py_zip("ts.mar", TS_FILES + [("MAR-INF/MANIFEST.json", dumps(ts_manifest()), 0o600)])
    elif shape == "torchserve-store":
        py_zip("ts-store.mar", TS_FILES + [("MAR-INF/MANIFEST.json", dumps(ts_manifest()), 0o600)], zipfile.ZIP_STORED)
    elif shape == "torchserve-tgz":
        tgz("ts.tar.gz", ts_members(), root="ts_edge")
    elif shape == "legacy":
        legacy = {
            "Engine": {"MXNet": 1.2},
            "Model-Archive-Description": "squeezenet",
            "License": "Apache 2.0",
            "Model-Archive-Version": 0.1,
            "Model-Server": "0.4",
            "Model": {"Description": "squeezenet v1.1", "Service": "legacy_service.py", "Symbol": "squeezenet-symbol.json", "Parameters": "squeezenet-0000.params", "Model-Name": "squeezenet_v1.1"},
        }
        py_zip("legacy.mar", [("MANIFEST.json", dumps(legacy)), ("legacy_service.py", LEGACY_SERVICE), ("squeezenet-symbol.json", b"{}"), ("squeezenet-0000.params", WEIGHTS)])
    elif shape == "tgz-dot":
        tgz("dot.tar.gz", [(".", "dir", None)] + [("./" + p, k, d) for p, k, d in ts_members()])
    elif shape == "node":
        manifest = {"createdOn": "24/11/2026 19:48:06", "runtime": "node", "model": {"modelName": "node_edge", "handler": "handler:predict", "modelVersion": "2.0"}, "archiverVersion": "0.1.0"}
        py_zip("node.mar", [("handler.mjs", NODE_HANDLER), ("MAR-INF/MANIFEST.json", dumps(manifest))])
    elif shape == "with-digests":
        files = [("model_handler.py", MMS_HANDLER), ("weights/params.bin", WEIGHTS)]
        py_zip("digests.mar", files + [("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST)), ("MAR-INF/FILES.sha256", digest_file(files))])
    elif shape == "unpacked":
        root = os.path.join(out, "unpacked")
        for p, d in TS_FILES + [("MAR-INF/MANIFEST.json", dumps(ts_manifest()))]:
            os.makedirs(os.path.dirname(os.path.join(root, p)), exist_ok=True)
            with open(os.path.join(root, p), "wb") as f:
                f.write(d)
    elif shape == "infozip":
        src = os.path.join(out, "infozip-src")
        for p, d in [("model_handler.py", MMS_HANDLER), ("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST)), ("zeros.bin", bytes(100000))]:
            os.makedirs(os.path.dirname(os.path.join(src, p)), exist_ok=True)
            with open(os.path.join(src, p), "wb") as f:
                f.write(d)
        import subprocess
        subprocess.run(["zip", "-qr", os.path.join(out, "infozip.mar"), "."], cwd=src, check=True)
        shutil.rmtree(src)
    elif shape == "sparse-5g":
        sparse_zip("sparse-5g.mar", 5 << 30)
    elif shape == "tgz-no-root":
        tgz("noroot.tar.gz", ts_members())
    elif shape == "stored-dd":
        raw_zip("stored-dd.mar", mms_entries([{"name": b"weights.bin", "data": WEIGHTS, "method": 0, "dd": True}]))
    elif shape == "cp437":
        raw_zip("cp437.mar", mms_entries([{"name": b"caf\x82.txt", "data": b"latte\n", "method": 0}]))
    elif shape == "backslash":
        raw_zip("backslash.mar", [{"name": b"model_handler.py", "data": MMS_HANDLER, "method": 8}, {"name": b"MAR-INF\\MANIFEST.json", "data": dumps(MMS_MANIFEST), "method": 8}])
    elif shape == "duplicate":
        stale = dict(MMS_MANIFEST, model={"modelName": "stale", "handler": "model_handler:handle"})
        raw_zip("duplicate.mar", mms_entries([{"name": b"MAR-INF/MANIFEST.json", "data": dumps(stale), "method": 8}]))
    elif shape == "dotdot":
        raw_zip("dotdot.mar", mms_entries([{"name": b"../../evil.txt", "data": b"pwned\n"}]))
    elif shape == "absolute":
        raw_zip("absolute.mar", mms_entries([{"name": b"/tmp/evil.txt", "data": b"pwned\n"}]))
    elif shape == "symlink":
        raw_zip("symlink.mar", mms_entries([{"name": b"passwd", "data": b"/etc/passwd", "ext": 0o120777 << 16}]))
    elif shape == "bad-crc":
        raw_zip("bad-crc.mar", mms_entries([{"name": b"weights.bin", "data": WEIGHTS, "method": 0}]))
        path = os.path.join(out, "bad-crc.mar")
        data = bytearray(open(path, "rb").read())
        i = data.find(WEIGHTS[:64]) + 100
        data[i] ^= 0xFF
        open(path, "wb").write(bytes(data))
    elif shape == "truncated":
        py_zip("truncated-src.mar", TS_FILES + [("MAR-INF/MANIFEST.json", dumps(ts_manifest()))])
        data = open(os.path.join(out, "truncated-src.mar"), "rb").read()
        open(os.path.join(out, "truncated.mar"), "wb").write(data[: len(data) // 2])
        os.remove(os.path.join(out, "truncated-src.mar"))
    elif shape == "no-manifest":
        py_zip("no-manifest.mar", [("model_handler.py", MMS_HANDLER)])
    elif shape == "bad-handler":
        py_zip("bad-handler.mar", [("other.py", MMS_HANDLER), ("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST))])
    elif shape == "bad-entry-point":
        py_zip("bad-entry-point.mar", [("model_handler.py", TWO_CLASSES), ("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST))])
    elif shape == "bad-config":
        files = [(p, (b"batchSize: four\nminWorkers: 1\n" if p == "model-config.yaml" else d)) for p, d in TS_FILES if p != "model.pt"]
        py_zip("bad-config.mar", files + [("MAR-INF/MANIFEST.json", dumps(ts_manifest()))])
    elif shape == "bad-schema":
        py_zip("bad-schema.mar", [("model_handler.py", MMS_HANDLER), ("MAR-INF/MANIFEST.json", dumps(dict(MMS_MANIFEST, runtime="python9")))])
    elif shape == "tampered-digests":
        files = [("model_handler.py", MMS_HANDLER), ("weights/params.bin", WEIGHTS)]
        digests = digest_file(files) + digest_file([("gone.txt", b"x")])
        tampered = [("model_handler.py", MMS_HANDLER + b"# edited\n"), ("weights/params.bin", WEIGHTS), ("added.txt", b"new\n")]
        py_zip("tampered-digests.mar", tampered + [("MAR-INF/MANIFEST.json", dumps(MMS_MANIFEST)), ("MAR-INF/FILES.sha256", digests)])
    elif shape == "tgz-dotdot":
        tgz("dotdot.tar.gz", ts_members() + [("../../evil.txt", "file", b"pwned\n")], root="ts_edge")
    elif shape == "tgz-absolute":
        tgz("absolute.tar.gz", [("/tmp/evil.txt", "file", b"pwned\n")] + [("ts_edge/" + p, k, d) for p, k, d in ts_members()])
    elif shape == "tgz-symlink":
        tgz("symlink.tar.gz", ts_members() + [("passwd", "symlink", "/etc/passwd")], root="ts_edge")
    elif shape == "tgz-hardlink":
        tgz("hardlink.tar.gz", ts_members() + [("shadow", "hardlink", "/etc/shadow")], root="ts_edge")
    elif shape == "bomb":
        raw_zip("bomb.mar", mms_entries([{"name": b"zeros.bin", "data": bytes(BOMB), "method": 8}]))
    elif shape == "tgz-bomb":
        tgz("bomb.tar.gz", ts_members() + [("zeros.bin", "file", bytes(BOMB))], root="ts_edge")
    elif shape == "lying-size":
        # Headers claim 1 KiB; the deflated data inflates to BOMB bytes.
        raw_zip("lying-size.mar", mms_entries([{"name": b"zeros.bin", "data": bytes(BOMB), "method": 8, "usize": 1024}]))
    elif shape == "not-an-archive":
        open(os.path.join(out, "not-an-archive.mar"), "wb").write(b"this is not a zip file\n")
    elif shape == "truncated-tgz":
        tgz("truncated-src.tar.gz", ts_members(), root="ts_edge")
        data = open(os.path.join(out, "truncated-src.tar.gz"), "rb").read()
        open(os.path.join(out, "truncated.tar.gz"), "wb").write(data[: len(data) // 2])
        os.remove(os.path.join(out, "truncated-src.tar.gz"))
    else:
        raise SystemExit("unknown shape " + shape)

BOMB = int(os.environ.get("BOMB_BYTES", "0"))
for s in shapes:
    build(s)
`;

/** Builds the given shapes into dir with one python3 run; returns shape -> absolute path. */
export async function buildReferenceArchives<S extends ReferenceShape>(dir: string, shapes: readonly S[]): Promise<Record<S, string>> {
  const r = await run('python3', ['-c', PYTHON, dir, ...shapes], { env: { BOMB_BYTES: String(BOMB_BYTES) } });
  if (r.code !== 0) throw new Error(`building reference archives failed (${r.code}): ${r.stderr}`);
  return Object.fromEntries(shapes.map((s) => [s, join(dir, SHAPE_FILES[s])])) as Record<S, string>;
}
