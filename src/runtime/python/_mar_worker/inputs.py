"""Requests -> the handler's `data` list and per-request processors (docs/worker-protocol.md §3.2)."""

import json
import logging
import os

from _mms_compat.context import RequestProcessor

from _mar_worker.items import items_of

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
            return value.decode("utf-8", "replace")
    return bytearray(value)


def build_batch(requests, decode=True):
    """`data`, one request processor per request, and per request its item count (None for an ordinary request),
    or None for the counts when no request is an item row (§3.3)."""
    data = []
    processors = []
    counts = None
    for i, req in enumerate(requests):
        items = items_of(req)
        if items is not None:
            if counts is None:
                counts = [None] * i
            counts.append(len(items))
            data.extend(items)
            processors.append(RequestProcessor({name: value for name, value in req.headers}))
            continue
        if counts is not None:
            counts.append(None)
        item = {}
        header_map = {}
        for name, content_type, value in req.params:
            item[name] = decode_value(name, content_type, value, decode, req.request_id)
            header_map[name] = {"content-type": content_type}
        for name, value in req.headers:
            header_map[name] = value
        data.append(item)
        processors.append(RequestProcessor(header_map))
    return data, processors, counts
