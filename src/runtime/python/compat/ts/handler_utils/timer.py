"""ts.handler_utils.timer.timed: records how long a decorated handler method took, as a metric named
after the method (ms), on self.context.metrics when there is one."""

import functools
import time


def timed(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return func(*args, **kwargs)
        finally:
            self = args[0] if args else None
            context = getattr(self, "context", None)
            metrics = getattr(context, "metrics", None)
            if metrics is not None:
                metrics.add_time(func.__name__, round((time.time() - start) * 1000, 2), None, "ms")

    return wrapper
