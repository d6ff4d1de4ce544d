from _mms_compat.metrics import MetricsStore  # noqa: F401
