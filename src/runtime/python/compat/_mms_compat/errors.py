"""PredictionException as MMS (mms.service) and TorchServe (ts.utils.util) define it."""


class PredictionException(Exception):
    """Raise from a handler to answer the whole batch with `error_code` and `message`."""

    def __init__(self, message, error_code=500):
        self.message = message
        self.error_code = error_code
        super(PredictionException, self).__init__(message)

    def __str__(self):
        return "{} : {}".format(self.message, self.error_code)


def prediction_error_of(exc):
    """(code, message) if exc is a PredictionException (ours or a look-alike), else None.

    Duck-typed so that a handler's own copy of the class (e.g. a vendored mms package) still works.
    """
    if isinstance(exc, PredictionException) or (
        type(exc).__name__ == "PredictionException" and hasattr(exc, "error_code")
    ):
        code = getattr(exc, "error_code", 500)
        message = getattr(exc, "message", None)
        if message is None:
            message = exc.args[0] if exc.args else ""
        try:
            code = int(code)
        except (TypeError, ValueError, OverflowError):
            code = 500
        if not -(2**31) <= code < 2**31:
            code = 500  # cannot go on the wire (int32): encoding it used to kill the worker
        return code, str(message)
    return None


class BadInput(ValueError):
    """One request of a batch cannot be used (a broken image, no text): the built-in handlers answer that
    request alone with 400 and this message, and run the rest of the batch."""
