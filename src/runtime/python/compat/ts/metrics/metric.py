from _mms_compat.metrics import Metric  # noqa: F401
