"""A worker spawned before its model was on disk (--settings-from-stdin, docs/worker-protocol.md §1.4): once the
frontend connects, it writes one JSON line {"cwd": ..., "env": {name: value or null}} on our stdin, and we become
the process launchers.ts would have spawned for the model: same cwd, environment and sys.path."""

import json
import os
import sys

_HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_COMPAT_DIR = os.path.join(_HERE, "compat")


def _path_entries(value):
    """PYTHONPATH's entries as the interpreter puts them on sys.path (absolute, first of duplicates), minus
    our own directories, which mms_worker.py takes out (relative entries: against the current directory)."""
    out = []
    for p in (value or "").split(os.pathsep):
        if not p or os.path.realpath(p) in (_HERE, _COMPAT_DIR):
            continue
        p = os.path.normcase(os.path.abspath(p))
        if p not in out:
            out.append(p)
    return out


def apply_settings(line):
    """Applies the frontend's settings line; raises ValueError for a line that is not one."""
    if not line:
        raise ValueError("no settings on stdin (the frontend went away)")
    settings = json.loads(line)
    if not isinstance(settings, dict) or not isinstance(settings.get("cwd"), str):
        raise ValueError("settings line without a cwd")
    env = settings.get("env") or {}
    # PYTHONPATH's entries lead sys.path (after our script's directory, which mms_worker.py removed)
    front = len(_path_entries(os.environ.get("PYTHONPATH"))) if "PYTHONPATH" in env else 0
    os.chdir(settings["cwd"])
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "PYTHONPATH" in env:
        rest = sys.path[front:]
        new = _path_entries(env["PYTHONPATH"])
        sys.path[:] = new + [p for p in rest if p not in new]


def read_settings():
    apply_settings(sys.stdin.readline())
