"""mms.service: PredictionException (raise it to answer a batch with your own code and message)."""

from _mms_compat.errors import PredictionException  # noqa: F401
