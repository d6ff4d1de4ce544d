"""The worker's exit once it is done serving: what the interpreter's own exit does that a handler can observe, without
tearing every module down one by one, which took ~8 ms after the frontend closed the connection (a one-shot
`model-server predict` waits for it; so does a server stopping or scaling down a worker)."""

import atexit
import os
import sys
import threading


def exit_now(code):
    """Exits with `code` as sys.exit would: non-daemon threads are waited for, atexit hooks run (weakref.finalize's
    included: temporary directories are removed), stdout and stderr are flushed; then the process ends without the
    module teardown. Python does not promise that __del__ methods run at exit, so none may be relied upon."""
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
