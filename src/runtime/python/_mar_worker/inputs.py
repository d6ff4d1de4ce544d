"""Requests -> the handler's `data` list and per-request processors (docs/worker-protocol.md §3.2)."""

import json
import logging
import os

from _mms_compat.context import RequestProcessor

logger = logging.getLogger("mms_worker")


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
