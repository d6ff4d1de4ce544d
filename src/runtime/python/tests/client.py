"""Tiny test client for mms_worker.py: spawn, connect, encode LOAD/PREDICT, decode responses.

Used by the worker's own Python tests (python3 -m unittest discover -s src/runtime/python/tests).
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(os.path.dirname(HERE), "mms_worker.py")
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
HANDLERS = os.path.join(REPO, "fixtures", "handlers", "python")


def s(text):
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("!i", len(b)) + b


def i32(n):
    return struct.pack("!i", n)


def encode_load(name, path, batch_size, handler, gpu=-1):
    return b"L" + s(name) + s(path) + i32(batch_size) + s(handler) + i32(gpu)


def encode_predict(requests):
    """requests: [(id, [(hname, hvalue)], [(pname, ctype or None, value)])]"""
    out = bytearray(b"I")
    for rid, headers, params in requests:
        out += s(rid)
        for k, v in headers:
            out += s(k) + s(v)
        out += i32(-1)
        for name, ct, value in params:
            out += s(name) + (i32(0) if ct is None else s(ct)) + s(value)
        out += i32(-1)
    out += i32(-1)
    return bytes(out)


class Worker(object):
    def __init__(self, env=None, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="mmsw-")
        self.sock_path = os.path.join(self.dir, "w.sock")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, "--sock-type", "unix", "--sock-name", self.sock_path] + list(extra_args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env,
        )
        self.lines = []
        self.first = []
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("worker exited before starting: {}".format(self.first))
            self.first.append(line.rstrip("\n"))
            if line.startswith("Python runtime:"):
                break
        self._lock = threading.Condition()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.sock_path)
        self.f = self.sock.makefile("rb")

    def _pump(self):
        for raw in self.proc.stdout:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._lock.notify_all()

    def wait_line(self, predicate, timeout=10):
        with self._lock:
            ok = self._lock.wait_for(lambda: any(predicate(l) for l in self.lines), timeout)
        return ok

    def send(self, data):
        self.sock.sendall(data)

    def read_int(self):
        b = self.f.read(4)
        if len(b) < 4:
            raise EOFError()
        return struct.unpack("!i", b)[0]

    def read_bytes(self):
        n = self.read_int()
        return self.f.read(n) if n > 0 else b""

    def read_raw_response(self):
        """Returns (code, message, predictions) and keeps the raw bytes in self.raw."""
        code = self.read_int()
        message = self.read_bytes().decode()
        preds = []
        while True:
            n = self.read_int()
            if n == -1:
                break
            rid = self.f.read(n).decode()
            ct = self.read_bytes().decode()
            status = self.read_int()
            phrase = self.read_bytes().decode()
            headers = {}
            for _ in range(self.read_int()):
                k = self.read_bytes().decode()
                headers[k] = self.read_bytes().decode()
            body = self.read_bytes()
            preds.append({"id": rid, "ct": ct, "status": status, "phrase": phrase, "headers": headers, "body": body})
        return code, message, preds

    def load(self, handler, model_dir=HANDLERS, name="m", batch_size=1, gpu=-1):
        self.send(encode_load(name, model_dir, batch_size, handler, gpu))
        return self.read_raw_response()[:2]

    def predict(self, requests):
        self.send(encode_predict(requests))
        return self.read_raw_response()

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._t.join(5)
        return code
