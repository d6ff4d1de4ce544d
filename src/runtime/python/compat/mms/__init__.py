"""Compatibility package: the names MMS custom services import from `mms`.

Shipped with the mar-tools Python worker and put LAST on the worker's sys.path, so a model's
own modules always win. Only the handler-facing API is here (no MXNet, no legacy services).
"""

__version__ = "1.1.11"
