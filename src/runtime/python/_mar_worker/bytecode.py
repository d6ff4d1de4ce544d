"""Our own modules' bytecode, cached in a private directory: compiling _mar_worker and _mms_compat from source cost
~10 ms of every worker's start (of ~50). Never beside the sources (the installed package may be read-only, and npm
ships no __pycache__) and never beside a model's files (the extraction cache checks its entries): the frontend names
the directory in MAR_WORKER_PYCACHE (launchers.ts: `pycache` beside the model cache's default directory; empty: no
caching). Only while our modules load (the standard modules they are first to import are cached there too): `done()` restores the interpreter's own settings before a handler is
imported, so a handler's modules are compiled, or not, exactly as before. A directory that cannot be written only
costs the compilation, as without it. Trust: as the model cache's, a directory private to the user."""

import os
import sys

_saved = None


def cache_ours():
    """Our modules' bytecode is read from and written to MAR_WORKER_PYCACHE until done()."""
    global _saved
    # the user's own PYTHONPYCACHEPREFIX wins (it is where all of their bytecode goes)
    prefix = sys.pycache_prefix or os.environ.get("MAR_WORKER_PYCACHE")
    if not prefix or _saved is not None:
        return
    try:
        os.makedirs(prefix, 0o700, exist_ok=True)
    except OSError:
        return
    _saved = (sys.pycache_prefix, sys.dont_write_bytecode)
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


def done():
    """The interpreter's own bytecode settings again (before a handler loads)."""
    global _saved
    if _saved is not None:
        sys.pycache_prefix, sys.dont_write_bytecode = _saved
        _saved = None
