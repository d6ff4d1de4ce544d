"""The OTF wire format (docs/worker-protocol.md §2): big-endian int32, int32-length-prefixed UTF-8, -1 ends lists.

Pure encoding and decoding: Reader only calls recv_into() on the object it is given.
"""

import json
import os
import struct

from _mms_compat.context import RequestProcessor

_INT = struct.Struct("!i")
_NEG1 = _INT.pack(-1)
_ZERO = _INT.pack(0)
_DEFAULT_META = _ZERO + _INT.pack(200) + _ZERO + _ZERO
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


class PeerClosed(Exception):
    """The frontend closed the connection (possibly in the middle of a message)."""


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


SUCCESS_MESSAGE = "Prediction success"
# a successful reply's code and message, encoded once (every batch starts with them)
_SUCCESS_HEAD = _INT.pack(200) + _INT.pack(len(SUCCESS_MESSAGE)) + SUCCESS_MESSAGE.encode("ascii")


def encode_predict_response(ret, requests, message, code, context=None):
    """Response as MMS's create_predict_response: ret is None for an error (body "error").

    Raises TypeError/ValueError if an element is not JSON-serialisable.
    """
    if code == 200 and message == SUCCESS_MESSAGE:
        out = bytearray(_SUCCESS_HEAD)
    else:
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
        # positional arguments: a keyword costs the call an argument-parsing pass (per field, per request)
        self.request_id = id_bytes.decode("utf-8", "replace")
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


# PREDICT's fields in frame order (§2): a request id, its (name, value) headers until -1, its (name, content type,
# value) parameters until -1; then the next request id, or -1 for the end of the batch.
_ID, _HEADER_NAME, _HEADER_VALUE, _PARAM_NAME, _CONTENT_TYPE, _PARAM_VALUE = range(6)
_WHAT = ("request id", "header name", "header value", "parameter name", "content type", "parameter value")


def parse_predict(buf, pos):
    """Parses a PREDICT body (after the command byte) from buf at pos -> (requests, end position).

    Raises _Short if buf ends first, ValueError on a negative length other than the -1 terminators.
    One loop reads every field and a state says what the field is: a call per field cost more than the rest of
    the parse (13 fields in a request with three headers).
    """
    end = len(buf)
    unpack = _INT.unpack_from
    requests = []
    kind = _ID
    req = name = content_type = None
    try:
        while True:
            (length,) = unpack(buf, pos)
            pos += 4
            if length < 0:
                if length != -1 or kind not in (_ID, _HEADER_NAME, _PARAM_NAME):
                    raise ValueError("negative {} length {}".format(_WHAT[kind], length))
                if kind == _ID:
                    return requests, pos
                if kind == _HEADER_NAME:
                    kind = _PARAM_NAME
                else:
                    requests.append(req)
                    kind = _ID
                continue
            stop = pos + length
            if stop > end:
                raise _short(stop, length, "a " + _WHAT[kind])
            field = buf[pos:stop]
            pos = stop
            if kind == _HEADER_NAME:
                name = field.decode("utf-8", "replace")
                kind = _HEADER_VALUE
            elif kind == _HEADER_VALUE:
                req.headers.append((name, field.decode("utf-8", "replace")))
                kind = _HEADER_NAME
            elif kind == _PARAM_NAME:
                name = field.decode("utf-8", "replace")
                kind = _CONTENT_TYPE
            elif kind == _CONTENT_TYPE:
                content_type = field.decode("utf-8", "replace")
                kind = _PARAM_VALUE
            elif kind == _PARAM_VALUE:
                req.params.append((name, content_type, field))
                kind = _PARAM_NAME
            else:
                req = Request(field)
                kind = _HEADER_NAME
    except struct.error:
        raise _Short(pos + 4)
