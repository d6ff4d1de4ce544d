from _mms_compat.metrics import MetricTypes  # noqa: F401
