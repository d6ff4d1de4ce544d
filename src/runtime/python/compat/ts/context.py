"""ts.context: the same Context/RequestProcessor as mms.context."""

from _mms_compat.context import Context, RequestProcessor  # noqa: F401
