"""Fuzz harness for the worker's request parser (test/runtime/codec-fuzz.test.ts drives it).

Reads one JSON case per line on stdin, {"frame": <base64>, "cuts": [byte counts]}, and runs the worker's real
connection loop (serve.Worker.serve: read_command, read_load, Reader.read_predict / parse_predict) over a fake
socket that hands the frame over in pieces of those sizes, then EOF. LOAD is answered without loading anything.
Writes one JSON line per case: how serve() ended, what it parsed, and the most it asked the socket for beyond
what it had. An exception serve() does not handle is reported as {"ok": false, "error": <traceback>}.
"""

import base64
import json
import logging
import sys
import traceback

from _mar_worker import codec
from _mar_worker.codec import encode_load_response
from _mar_worker.serve import Worker

logging.disable(logging.CRITICAL)


class FakeConn(object):
    def __init__(self, data, cuts):
        self.data = memoryview(data)
        self.cuts = list(cuts)
        self.pos = 0
        self.sent = 0

    def recv_into(self, buf):
        if self.pos >= len(self.data):
            return 0
        n = len(self.data) - self.pos
        if self.cuts:
            n = max(1, min(n, self.cuts.pop(0)))
        n = min(n, len(buf))
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def sendall(self, data):
        self.sent += len(data)


class Probe(object):
    """Records the largest request to receive more bytes than are buffered (the allocation a length field causes)."""

    def __init__(self):
        self.max_extra = 0

    def wrap(self, reader):
        fill = reader._fill

        def probed(n):
            have = len(reader._buf) - reader._pos
            self.max_extra = max(self.max_extra, n - have)
            return fill(n)

        reader._fill = probed


def run_case(case):
    frame = base64.b64decode(case["frame"])
    conn = FakeConn(frame, case.get("cuts", []))
    worker = Worker(conn)
    probe = Probe()
    probe.wrap(worker.reader)
    loads = []
    predicts = []

    def handle_load(name, path, batch_size, handler, gpu_id):
        loads.append([name, path, batch_size, handler, gpu_id])
        worker.send(encode_load_response(200, "loaded"))
        return True

    def handle_predict(requests):
        predicts.append(
            [
                {
                    "id": r.id_bytes.hex(),
                    "headers": [list(h) for h in r.headers],
                    "params": [[name, ctype, bytes(value).hex()] for name, ctype, value in r.params],
                }
                for r in requests
            ]
        )
        worker.send(codec.encode_predict_response(None, requests, "fuzz", 500))

    worker.handle_load = handle_load
    worker.handle_predict = handle_predict
    code = worker.serve()
    return {"ok": True, "exit": code, "loads": loads, "predicts": predicts, "maxExtra": probe.max_extra, "cap": codec.MAX_FIELD_BYTES}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            out = run_case(json.loads(line))
        except BaseException:  # noqa: B902 - anything serve() lets through is the finding
            out = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
