from _mms_compat.metrics import Dimension  # noqa: F401
