"""mms.utils.timeit_decorator.timeit: logs how long the wrapped function took."""

import functools
import logging
import time


def timeit(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return func(*args, **kwargs)
        finally:
            logging.getLogger(__name__).info("%s took %.2f ms", func.__name__, (time.time() - start) * 1000)

    return wrapper
