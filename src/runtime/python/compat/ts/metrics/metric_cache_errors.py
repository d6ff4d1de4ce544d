from _mms_compat.metrics import MetricsCacheKeyError  # noqa: F401
