"""mms.context: Context and RequestProcessor."""

from _mms_compat.context import Context, RequestProcessor  # noqa: F401
