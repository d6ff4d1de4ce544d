"""Line-safe stdout/stderr (LineStream, end_lines) and the worker's log format."""

import io
import logging
import sys


# Whether end_lines() has anything to do: a LineStream was written to since the last call, or one buffers (then it is
# flushed every time). It runs twice per message and usually finds nothing; this saves the per-stream checks.
_pending = False
_always_pending = False


class LineStream(object):
    """Wraps sys.stdout/sys.stderr to know whether a partial line is pending.

    The frontend reads our output line by line ([METRICS] lines, the started line): a handler's
    `print(..., end="")` must not glue the next line of ours onto its text, so end_line() completes it.
    """

    def __init__(self, stream):
        global _always_pending, _pending
        self._stream = stream
        self.at_line_start = True
        # written to since the last end_line(): only then is there anything to end or flush (twice per message).
        # Unless the stream buffers (PYTHONUNBUFFERED unset): then bytes written around us may wait in it.
        self._dirty = False
        self._buffers = not (isinstance(getattr(stream, "buffer", None), io.FileIO) and getattr(stream, "write_through", False))
        if self._buffers:
            _always_pending = _pending = True

    def write(self, text):
        global _pending
        n = self._stream.write(text)
        if text:
            self.at_line_start = text[-1] == "\n"
            self._dirty = True
            _pending = True
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        # defined here, not through __getattr__ (a failed lookup first): it runs after every message
        return self._stream.flush()

    def end_line(self):
        if not self._dirty and not self._buffers:
            return
        if not self.at_line_start:
            self.write("\n")
        self._stream.flush()
        self._dirty = False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def end_lines():
    global _pending
    if not _pending:
        return
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineStream):
            stream.end_line()
    _pending = _always_pending


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

