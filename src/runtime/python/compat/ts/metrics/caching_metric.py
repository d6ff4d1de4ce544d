from _mms_compat.metrics import CachingMetric  # noqa: F401
