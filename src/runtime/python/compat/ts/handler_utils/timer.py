"""ts.handler_utils.timer.timed, as TorchServe 0.9+ has it: when the model config says

    handler:
      profile: true

a decorated handler method records its duration as the metric `ts_handler_<method>` (ms); otherwise it
only runs the method (no metric, no cost beyond one lookup).
"""

import functools
import sys
import time


def _profiling(self):
    context = getattr(self, "context", None)
    config = getattr(context, "model_yaml_config", None) if context is not None else None
    section = config.get("handler") if isinstance(config, dict) else None
    return isinstance(section, dict) and bool(section.get("profile"))


def _sync_cuda():
    torch = sys.modules.get("torch")  # only when the handler uses torch: never imported here
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(func):
    @functools.wraps(func)
    def wrap_func(self, *args, **kwargs):
        if not _profiling(self):
            return func(self, *args, **kwargs)
        start = time.perf_counter()
        result = func(self, *args, **kwargs)
        _sync_cuda()
        metrics = getattr(self.context, "metrics", None)
        if metrics is not None:
            metrics.add_time("ts_handler_" + func.__name__, (time.perf_counter() - start) * 1000)
        return result

    return wrap_func
