from _mms_compat.metrics import MetricUnit  # noqa: F401
