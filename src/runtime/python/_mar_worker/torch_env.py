"""torch in a worker: how many threads it gets, and the load-time line that says which Python and torch run.

Thread count, first that applies: the model config's `torchrun: {OMP_NUMBER_THREADS: n}` (TorchServe's key),
the user's OMP_NUM_THREADS (torch reads it itself), else MAR_TORCH_THREADS, the frontend's share of the cores
(max(1, cores // workers of the model), set only when the user did not set OMP_NUM_THREADS). Without it,
W workers each start as many threads as there are cores and slow each other down.
"""

import os
import sys

from _mms_compat.packages import interpreter


def _positive(value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def thread_setting(model_yaml_config):
    """(threads or None to leave torch's own count, where the number comes from)."""
    torchrun = model_yaml_config.get("torchrun") if isinstance(model_yaml_config, dict) else None
    if isinstance(torchrun, dict):
        n = _positive(torchrun.get("OMP_NUMBER_THREADS"))
        if n:
            return n, "model config torchrun.OMP_NUMBER_THREADS"
    if os.environ.get("MAR_TORCH_THREADS") is None and _positive(os.environ.get("OMP_NUM_THREADS")):
        return None, "OMP_NUM_THREADS"
    n = _positive(os.environ.get("MAR_TORCH_THREADS"))
    if n:
        return n, "the cores shared among the model's workers"
    return None, "torch's default"


def apply_threads(model_yaml_config):
    """Sets torch's thread count if the handler imported torch; returns a description for the load line, or None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    n, source = thread_setting(model_yaml_config)
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return "torch {} with {} thread{} ({})".format(
        torch.__version__, torch.get_num_threads(), "" if torch.get_num_threads() == 1 else "s", source
    )


def runtime_line(model_name, handler_desc, torch_desc):
    """`Model m: handler <what runs>; Python 3.11.2 at /usr/bin/python3; torch 1.13.0 with 2 threads (...)`"""
    parts = ["Model {}: handler {}".format(model_name, handler_desc), interpreter()]
    if torch_desc:
        parts.append(torch_desc)
    return "; ".join(parts)
