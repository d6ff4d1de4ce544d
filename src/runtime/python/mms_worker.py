#!/usr/bin/env python3
"""MMS-compatible Python backend worker shipped with mar-tools.

One process per worker (MMS classic / TorchServe layout): bind the socket given on the command
line, print the start lines, accept ONE connection, answer LOAD and PREDICT messages in MMS's
binary "OTF" format until the peer closes the connection, then exit 0.

    python3 mms_worker.py --sock-type unix --sock-name PATH
    python3 mms_worker.py --sock-type tcp --host 127.0.0.1 --port N

Standard library only (Python 3.8+). Handler-facing names (mms.*, ts.*) live in ./compat, which is
appended LAST to sys.path so a model's own modules always win.
"""

import argparse
import importlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

_HERE = os.path.dirname(os.path.realpath(__file__))
_COMPAT_DIR = os.path.join(_HERE, "compat")

# Our own directory must not shadow a user module of the same name (MMS does the same). The compat
# package goes LAST, after site-packages too (even if PYTHONPATH lists it), so that the model's modules
# and a real MMS/TorchServe installed for this interpreter win over our aliases.
# No .pyc files in the installed package directory.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") not in (_HERE, _COMPAT_DIR)]
sys.path.append(_COMPAT_DIR)
sys.dont_write_bytecode = True

from _mms_compat.context import Context, RequestProcessor  # noqa: E402
from _mms_compat.errors import prediction_error_of  # noqa: E402
from _mms_compat.metrics import _HOSTNAME, MetricsStore  # noqa: E402

logger = logging.getLogger("mms_worker")

_INT = struct.Struct("!i")
_NEG1 = _INT.pack(-1)
_ZERO = _INT.pack(0)
_DEFAULT_META = _ZERO + _INT.pack(200) + _ZERO + _ZERO
MAX_MESSAGE_CHARS = 1000
# Largest length field accepted from the frontend. A field is received into a buffer of its announced size, so
# a corrupt length must not make us allocate gigabytes. The frontend passes its max_request_size (plus slack)
# in MAR_WORKER_MAX_FIELD_BYTES; without it, 256 MiB (MMS's default max_request_size is 6.5 MB).
DEFAULT_MAX_FIELD_BYTES = 256 * 1024 * 1024


def _max_field_bytes():
    try:
        value = int(os.environ.get("MAR_WORKER_MAX_FIELD_BYTES", ""))
    except ValueError:
        return DEFAULT_MAX_FIELD_BYTES
    return value if 0 < value < 2**31 else DEFAULT_MAX_FIELD_BYTES


MAX_FIELD_BYTES = _max_field_bytes()
PREDICTION_METRIC = "PredictionTime"


class PeerClosed(Exception):
    """The frontend closed the connection (possibly in the middle of a message)."""


# --------------------------------------------------------------------------------------------
# Wire format (worker-protocol.md §2): big-endian int32, int32-length-prefixed UTF-8, -1 ends lists.


class _Short(Exception):
    """The buffer ends before the message does; `need` = buffer offset the parse must reach."""

    def __init__(self, need):
        Exception.__init__(self)
        self.need = need


class Reader(object):
    """Buffered reader over the socket. PREDICT is parsed straight from the buffer (it is the hot
    path); when the buffer ends mid-message, more bytes are received and the parse restarts at the
    message start (headers are small, and the missing byte count is known, so this stays linear)."""

    def __init__(self, sock):
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._scratch = bytearray(65536)  # reused: no large allocation per receive

    def _fill(self, n):
        """Makes at least n bytes available from the current position."""
        rest = self._buf[self._pos :]
        have = len(rest)
        if n - have <= len(self._scratch):
            chunks = [rest]
            while have < n:
                k = self._sock.recv_into(self._scratch)
                if k == 0:
                    raise PeerClosed()
                chunks.append(self._scratch[:k])
                have += k
            self._buf = b"".join(chunks)
        else:
            # A large field (a big body): receive straight into one buffer of the size needed.
            buf = bytearray(n)
            buf[:have] = rest
            view = memoryview(buf)
            while have < n:
                k = self._sock.recv_into(view[have:])
                if k == 0:
                    raise PeerClosed()
                have += k
            view.release()
            self._buf = buf
        self._pos = 0

    def read_command(self):
        """The next command byte, or None at a clean EOF between messages."""
        if self._pos >= len(self._buf):
            try:
                self._fill(1)
            except PeerClosed:
                return None
        cmd = self._buf[self._pos : self._pos + 1]
        self._pos += 1
        return cmd

    def read_exact(self, n):
        if n <= 0:
            return b""
        if len(self._buf) - self._pos < n:
            self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def read_int(self):
        return _INT.unpack(self.read_exact(4))[0]

    def read_bytes(self):
        length = self.read_int()
        if length < 0:
            raise ValueError("negative length {} in message".format(length))
        if length > MAX_FIELD_BYTES:
            raise ValueError(_too_long(length, "a LOAD field"))
        return self.read_exact(length)

    def read_str(self):
        return self.read_bytes().decode("utf-8", errors="replace")

    def read_predict(self):
        while True:
            try:
                requests, self._pos = parse_predict(self._buf, self._pos)
                return requests
            except _Short as short:
                self._fill(short.need - self._pos)


def _put_bytes(out, data):
    out += _INT.pack(len(data))
    out += data


def _put_str(out, text):
    _put_bytes(out, text.encode("utf-8"))


def encode_load_response(code, message):
    out = bytearray(_INT.pack(code))
    _put_str(out, message)
    out += _NEG1
    return out


def encode_predict_response(ret, requests, message, code, context=None):
    """Response as MMS's create_predict_response: ret is None for an error (body "error").

    Raises TypeError/ValueError if an element is not JSON-serialisable.
    """
    out = bytearray(_INT.pack(code))
    _put_str(out, message)
    processors = context.request_processor if context is not None else None
    for idx, req in enumerate(requests):
        _put_bytes(out, req.id_bytes)
        processor = None if processors is None else processors[idx]
        if context is None:
            out += _ZERO  # content type
            out += _INT.pack(code)
            out += _ZERO  # reason phrase
            out += _ZERO  # headers
        elif (
            type(processor) is RequestProcessor
            and not processor._response_header
            and processor._reason_phrase is None
            and processor._status_code == 200
        ):
            out += _DEFAULT_META  # untouched processor (the common case): no content type, 200, "", no headers
        else:
            headers = processor.get_response_headers() or {}
            content_type = headers.get("content-type")
            if content_type:
                _put_str(out, str(content_type))
            else:
                out += _ZERO
            status = processor.get_response_status_code()
            phrase = processor.get_response_status_phrase()
            out += _INT.pack(int(status) if status is not None else 200)
            _put_str(out, str(phrase) if phrase is not None else "")
            out += _INT.pack(len(headers))
            for key, value in headers.items():
                _put_str(out, str(key))
                _put_str(out, "" if value is None else str(value))
        if ret is None:
            _put_bytes(out, b"error")
        else:
            val = ret[idx]
            if isinstance(val, (bytes, bytearray, memoryview)):
                _put_bytes(out, bytes(val) if isinstance(val, memoryview) else val)
            elif isinstance(val, str):
                _put_bytes(out, val.encode("utf-8"))
            else:
                _put_bytes(out, json.dumps(val, indent=2).encode("utf-8"))
    out += _NEG1
    return out


class Request(object):
    __slots__ = ("id_bytes", "request_id", "headers", "params")

    def __init__(self, id_bytes):
        self.id_bytes = id_bytes  # echoed back unchanged
        self.request_id = id_bytes.decode("utf-8", errors="replace")
        self.headers = []  # [(name, value)]
        self.params = []  # [(name, content_type, value bytes)]


def read_load(reader):
    """Classic LOAD: name, path, batchSize, handler, gpuId. Nothing after gpuId is read."""
    model_name = reader.read_str()
    model_path = reader.read_str()
    batch_size = reader.read_int()
    handler = reader.read_str()
    gpu_id = reader.read_int()
    return model_name, model_path, batch_size, handler, gpu_id


def _too_long(length, what):
    return "{} of {} bytes is over the limit of {} bytes (MAR_WORKER_MAX_FIELD_BYTES)".format(
        what, length, MAX_FIELD_BYTES
    )


def _short(need, length, what):
    """The _Short to raise when a field runs past the buffer, unless its length is over the cap (only
    checked here, off the hot path: a field that fits in the buffer was allocated by someone already)."""
    if length > MAX_FIELD_BYTES:
        raise ValueError(_too_long(length, what))
    return _Short(need)


def _field(buf, pos, end, what, after=0, may_end=False):
    """One length-prefixed field at pos -> (its bytes, the position after it), or (None, pos after the
    length) for the -1 terminator where `may_end`. `after` = bytes that must follow (the next length field),
    so a short buffer is detected before anything is decoded. struct.error if the length itself is cut."""
    (length,) = _INT.unpack_from(buf, pos)
    pos += 4
    if length < 0:
        if length == -1 and may_end:
            return None, pos
        raise ValueError("negative {} length {}".format(what, length))
    stop = pos + length
    if stop + after > end:
        raise _short(stop + after, length, "a " + what)
    return buf[pos:stop], stop


def parse_predict(buf, pos):
    """Parses a PREDICT body (after the command byte) from buf at pos -> (requests, end position).

    Raises _Short if buf ends first, ValueError on a negative length other than the -1 terminators.
    """
    end = len(buf)
    requests = []
    try:
        while True:
            request_id, pos = _field(buf, pos, end, "request id", 0, True)
            if request_id is None:
                return requests, pos
            req = Request(request_id)
            headers = req.headers
            while True:
                name, pos = _field(buf, pos, end, "header name", 4, True)
                if name is None:
                    break
                value, pos = _field(buf, pos, end, "header value")
                headers.append((name.decode("utf-8", errors="replace"), value.decode("utf-8", errors="replace")))
            params = req.params
            while True:
                name, pos = _field(buf, pos, end, "parameter name", 4, True)
                if name is None:
                    break
                content_type, pos = _field(buf, pos, end, "content type", 4)
                value, pos = _field(buf, pos, end, "parameter value")
                params.append(
                    (name.decode("utf-8", errors="replace"), content_type.decode("utf-8", errors="replace"), value)
                )
            requests.append(req)
    except struct.error:
        raise _Short(pos + 4)


# --------------------------------------------------------------------------------------------
# Requests -> data (worker-protocol.md §3.2)


def decoding_enabled():
    """MMS_DECODE_INPUT_REQUEST / TS_DECODE_INPUT_REQUEST set to anything but "true" switch decoding off."""
    for name in ("MMS_DECODE_INPUT_REQUEST", "TS_DECODE_INPUT_REQUEST"):
        value = os.environ.get(name)
        if value is not None and value != "true":
            return False
    return True


def decode_value(name, content_type, value, decode, request_id):
    if decode:
        if content_type == "application/json":
            try:
                return json.loads(value.decode("utf-8"))
            except (ValueError, RecursionError):
                # MMS's worker dies here; TorchServe passes the raw bytes. We pass them too.
                logger.warning(
                    "Invalid JSON in parameter '%s' of request %s: passing the raw bytes", name, request_id
                )
                return bytearray(value)
        if content_type.startswith("text"):
            return value.decode("utf-8", errors="replace")
    return bytearray(value)


def build_batch(requests, decode=True):
    data = []
    processors = []
    for req in requests:
        item = {}
        header_map = {}
        for name, content_type, value in req.params:
            item[name] = decode_value(name, content_type, value, decode, req.request_id)
            header_map[name] = {"content-type": content_type}
        for name, value in req.headers:
            header_map[name] = value
        data.append(item)
        processors.append(RequestProcessor(header_map))
    return data, processors


# --------------------------------------------------------------------------------------------
# Model loading (worker-protocol.md §5.1)


class LoadedModel(object):
    def __init__(self, context, entry):
        self.context = context
        self.entry = entry


def _one_line(text):
    text = " ".join(str(text).split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def parse_handler(handler):
    """'dir/module[.py][:function]' -> (handler dir or None, module, function)."""
    module_part, _, function_name = handler.partition(":")
    function_name = function_name or "handle"
    handler_dir = None
    if "/" in module_part:
        handler_dir, _, module_part = module_part.rpartition("/")
        handler_dir = handler_dir or "/"
    if module_part.endswith(".py"):
        module_part = module_part[:-3]
    return handler_dir, module_part, function_name


def read_manifest(model_dir):
    path = os.path.join(model_dir, "MAR-INF", "MANIFEST.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("Could not read %s: %s", path, e)
        return None


def read_model_yaml_config(model_dir, manifest):
    """TorchServe's context.model_yaml_config: the manifest's configFile parsed with PyYAML when it is
    installed (as TorchServe does), else with our reader of the simple subset model configs use; {} if
    there is no config file or it cannot be read."""
    try:
        config_file = manifest["model"]["configFile"]
    except (TypeError, KeyError):
        return {}
    if not isinstance(config_file, str) or not config_file:
        return {}
    path = os.path.join(model_dir, config_file)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        logger.warning("model_yaml_config left empty: cannot read %s: %s", config_file, e)
        return {}
    try:
        try:
            import yaml  # optional, as in TorchServe

            parsed = yaml.safe_load(text)
        except ImportError:
            from _mms_compat import simple_yaml  # only for models with a config file (startup time)

            parsed = simple_yaml.loads(text)
    except Exception as e:  # any parser error: the handler still loads
        logger.warning("model_yaml_config left empty: cannot parse %s: %s", config_file, _one_line(e))
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _uuid4():
    """str(uuid.uuid4()) without importing uuid (worker startup time)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return "{}-{}-{}-{}-{}".format(h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def list_classes_from_module(module):
    import inspect  # ~7 ms of worker startup, only needed for class entry points

    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
    ]


def load_model(model_name, model_path, batch_size, handler, gpu_id):
    model_dir = os.path.realpath(model_path)
    handler_dir, module_name, function_name = parse_handler(handler)
    # handler dir first, then the model dir (MMS's PYTHONPATH order); compat stays last.
    for entry in ([model_dir] + ([os.path.join(model_dir, handler_dir)] if handler_dir else [])):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    os.chdir(model_dir)

    manifest = read_manifest(model_dir)
    gpu = None if gpu_id < 0 else gpu_id
    version = os.environ.get("MAR_SERVER_VERSION") or "1.0"
    context = Context(model_name, model_dir, manifest, batch_size, gpu, version)
    context.model_yaml_config = read_model_yaml_config(model_dir, manifest)
    context.metrics = MetricsStore(_uuid4(), model_name)

    importlib.invalidate_caches()
    module = importlib.import_module(module_name)
    entry = getattr(module, function_name, None)
    if entry is not None:
        if not callable(entry):
            raise ValueError("'{}' in module '{}' is not a function".format(function_name, module_name))
        entry(None, context)  # MMS initialises a function entry point with data=None
    else:
        classes = list_classes_from_module(module)
        if len(classes) != 1:
            raise ValueError(
                "Expected only one class in custom service code or a function entry point: "
                "module '{}' has no function '{}' and defines {} classes ({})".format(
                    module_name, function_name, len(classes), ", ".join(c.__name__ for c in classes) or "none"
                )
            )
        service = classes[0]()
        entry = getattr(service, "handle", None)
        if entry is None:
            raise AttributeError("class {} has no handle(data, context) method".format(classes[0].__name__))
        initialize = getattr(service, "initialize", None)
        if initialize is not None:
            initialize(context)  # exceptions propagate: a failed load (as TorchServe)
    return LoadedModel(context, entry)


# --------------------------------------------------------------------------------------------
# The connection loop


def emit_metrics(store, extra=None):
    """Prints the store's metrics as `[METRICS]...` lines, then `extra` (one write: they are on the hot path)."""
    end_lines()
    metrics = getattr(store, "store", None)
    text = "".join("[METRICS]{}\n".format(m) for m in metrics) if metrics else ""
    if extra:
        text += extra
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def prediction_time_line(store, duration_ms):
    """The line `store.add_time(PredictionTime, duration_ms)` then printing would give, for an EMPTY store of
    ours, without building the Metric and Dimension objects (every request pays for this line)."""
    req_id = store._get_req(None)
    text = "[METRICS]{}.Milliseconds:{}|#ModelName:{},Level:Model|#hostname:{},{}".format(
        PREDICTION_METRIC, duration_ms, store.model_name, _HOSTNAME, int(time.time())
    )
    return text + ("," + str(req_id) + "\n" if req_id else "\n")


class Worker(object):
    def __init__(self, conn):
        self.conn = conn
        self.reader = Reader(conn)
        self.model = None
        self.decode = decoding_enabled()  # the environment is fixed for the process

    def serve(self):
        """Serves until EOF; returns the process exit code."""
        while True:
            try:
                cmd = self.reader.read_command()
                if cmd is None:
                    logger.info("Frontend disconnected.")
                    return 0
                if cmd == b"I":
                    self.handle_predict(self.reader.read_predict())
                elif cmd == b"L":
                    if not self.handle_load(*read_load(self.reader)):
                        return 1
                else:
                    logger.error("Unknown command byte 0x%02x: closing the connection", cmd[0])
                    return 1
            except PeerClosed:
                logger.info("Frontend disconnected in the middle of a message.")
                return 0
            except (BrokenPipeError, ConnectionResetError):
                logger.info("Frontend disconnected (connection reset).")
                return 0
            except (ValueError, UnicodeDecodeError) as e:
                logger.error("Malformed message from the frontend: %s", e)
                return 1

    def send(self, data):
        self.conn.sendall(data)

    def handle_load(self, model_name, model_path, batch_size, handler, gpu_id):
        logger.info("Loading model %s from %s with handler %s (batch size %d)", model_name, model_path, handler, batch_size)
        try:
            self.model = load_model(model_name, model_path, batch_size, handler, gpu_id)
        except BaseException as e:  # noqa: B902 - any failure at load is a failed load, reported
            if isinstance(e, KeyboardInterrupt):
                raise
            end_lines()
            code = 507 if isinstance(e, MemoryError) else 500
            message = _one_line("Failed to load model {}: {}: {}".format(model_name, type(e).__name__, e))
            logger.error("%s", message)
            for line in traceback.format_exc().rstrip("\n").split("\n"):
                logger.error("%s", line)
            self.send(encode_load_response(code, message))
            return False
        emit_metrics(self.model.context.metrics)
        self.send(encode_load_response(200, "loaded model {}".format(model_name)))
        return True

    def handle_predict(self, requests):
        if self.model is None:
            logger.error("PREDICT before LOAD: no model loaded")
            self.send(encode_predict_response(None, requests, "No model loaded: send LOAD first", 500))
            return
        context = self.model.context
        request_ids = {idx: req.request_id for idx, req in enumerate(requests)}
        metrics = MetricsStore(request_ids, context.model_name)
        response = None
        prediction_line = None
        try:
            data, processors = build_batch(requests, self.decode)
            context.request_ids = request_ids
            context.request_processor = processors
            context.metrics = metrics
            start = time.time()
            try:
                ret = self.model.entry(data, context)
            finally:
                end_lines()  # the handler's output ends before ours starts
            duration_ms = round((time.time() - start) * 1000, 2)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # includes MemoryError; a handler error never ends the worker
            pe = prediction_error_of(e)
            if pe is not None:
                logger.error("The handler raised PredictionException(%s, %r)", pe[0], pe[1], exc_info=True)
                response = encode_predict_response(None, requests, pe[1], pe[0])
            elif isinstance(e, MemoryError):
                logger.error("System out of memory", exc_info=True)
                response = encode_predict_response(None, requests, "Out of resources", 507)
            else:
                logger.warning("The handler raised an exception: answering 503 Prediction failed", exc_info=True)
                response = encode_predict_response(None, requests, "Prediction failed", 503)
        if response is None:
            if not isinstance(ret, list):
                logger.warning("model: %s, Invalid return type: %s.", context.model_name, type(ret))
                response = encode_predict_response(None, requests, "Invalid model predict output", 503)
            elif len(ret) != len(requests):
                logger.warning(
                    "model: %s, number of batch response mismatched, expect: %d, got: %d.",
                    context.model_name, len(requests), len(ret),
                )
                response = encode_predict_response(None, requests, "number of batch response mismatched", 503)
            else:
                if type(metrics) is MetricsStore and not metrics.store:
                    prediction_line = prediction_time_line(metrics, duration_ms)
                else:
                    metrics.add_time(PREDICTION_METRIC, duration_ms)
                try:
                    response = encode_predict_response(ret, requests, "Prediction success", 200, context)
                except Exception:
                    logger.warning("Unable to serialize model output.", exc_info=True)
                    response = encode_predict_response(None, requests, "Unsupported model output data type.", 503)
        # The reply first, then the metrics lines (MMS's worker loop prints them after sending): the
        # frontend wakes once per message instead of twice (noop, 1 worker: +28% req/s on 2 cores). Measured
        # cost: when the frontend then preempts us on a shared core to write many responses (batch 8 of a
        # 2 ms handler), our next batch starts ~0.2 ms later (-10% there; 7.3x over batch 1 remains).
        self.send(response)
        emit_metrics(metrics, prediction_line)


# --------------------------------------------------------------------------------------------
# Process start


def parse_args(argv):
    parser = argparse.ArgumentParser(description="MMS-compatible Python backend worker (mar-tools)")
    parser.add_argument("--sock-type", required=True, choices=["unix", "tcp"])
    parser.add_argument("--sock-name", help="unix socket path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", help="tcp port")
    parser.add_argument("--accept-timeout", type=float, default=30.0, help="seconds to wait for the connection")
    # --handler, --model-path, --model-name, --preload-model, --tmp-dir, ... (MMS) are accepted and ignored.
    args, _unknown = parser.parse_known_args(argv)
    if args.sock_type == "unix" and not args.sock_name:
        parser.error("--sock-name is required with --sock-type unix")
    if args.sock_type == "tcp" and args.port is None:
        parser.error("--port is required with --sock-type tcp")
    return args


class LineStream(object):
    """Wraps sys.stdout/sys.stderr to know whether a partial line is pending.

    The frontend reads our output line by line ([METRICS] lines, the started line): a handler's
    `print(..., end="")` must not glue the next line of ours onto its text, so end_line() completes it.
    """

    def __init__(self, stream):
        self._stream = stream
        self.at_line_start = True

    def write(self, text):
        n = self._stream.write(text)
        if text:
            self.at_line_start = text[-1] == "\n"
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        # defined here, not through __getattr__ (a failed lookup first): it runs after every message
        return self._stream.flush()

    def end_line(self):
        if not self.at_line_start:
            self.write("\n")
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def end_lines():
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineStream):
            stream.end_line()


def setup_logging():
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.reconfigure(line_buffering=True)
        except AttributeError:
            pass
        setattr(sys, name, LineStream(stream))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def bind(args):
    if args.sock_type == "unix":
        if os.path.exists(args.sock_name):
            os.remove(args.sock_name)  # stale socket of a dead worker, as MMS does
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.sock_name)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, int(args.port)))
    sock.listen(1)
    return sock


def _on_sigterm(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_logging()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop (it closes
    # the connection, and we exit on EOF), so an in-flight request is not cut short here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    unix_path = args.sock_name if args.sock_type == "unix" else None
    sock = None
    try:
        try:
            sock = bind(args)
        except (OSError, ValueError, OverflowError) as e:
            where = args.sock_name if unix_path else "{}:{}".format(args.host, args.port)
            print("Cannot listen on {}: {}".format(where, e), flush=True)
            unix_path = None  # not ours to remove
            return 1
        print("[PID] {}".format(os.getpid()), flush=True)
        print("MMS worker started.", flush=True)
        print("Python runtime: {}".format(".".join(str(v) for v in sys.version_info[:3])), flush=True)
        sock.settimeout(args.accept_timeout)
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            print("Backend worker did not receive connection in: {:g} s; exiting.".format(args.accept_timeout), flush=True)
            return 1
        sock.close()
        sock = None
        if unix_path:
            # One connection per process: the path is not needed any more, even if a handler crashes later.
            _remove(unix_path)
            unix_path = None
        conn.settimeout(None)
        watch_parent()
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return Worker(conn).serve()
        finally:
            conn.close()
    finally:
        if sock is not None:
            sock.close()
        if unix_path:
            _remove(unix_path)
        sys.stdout.flush()


def watch_parent(interval=1.0):
    """Exits when the frontend that started us is gone. If it was SIGKILLed while a handler hangs, the handler
    never returns to see the closed connection, and the orphan would hold its memory (and GPU) for ever."""
    parent = os.getppid()
    if parent <= 1:
        return

    def run():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)  # nothing to tell: our stdout and stderr went with the frontend

    threading.Thread(target=run, name="parent-watch", daemon=True).start()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
