#!/usr/bin/env python3
"""MMS-compatible Python backend worker shipped with mar-tools.

One process per worker (MMS classic / TorchServe layout): bind the socket given on the command
line, print the start lines, accept ONE connection, answer LOAD and PREDICT messages in MMS's
binary "OTF" format until the peer closes the connection, then exit 0.

    python3 mms_worker.py --sock-type unix --sock-name PATH
    python3 mms_worker.py --sock-type tcp --host 127.0.0.1 --port N

Standard library only (Python 3.8+). The code lives in the _mar_worker package beside this script
(see its __init__); handler-facing names (mms.*, ts.*) live in ./compat, which is appended LAST to
sys.path so a model's own modules always win.
"""

import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
_COMPAT_DIR = os.path.join(_HERE, "compat")

# No .pyc files in the installed package directory.
sys.dont_write_bytecode = True
# Our package is found through our own directory once; later imports of its modules go through its __path__.
sys.path.insert(0, _HERE)
import _mar_worker  # noqa: E402,F401
from _mar_worker import bytecode  # noqa: E402

# our modules' bytecode comes from a private cache until main() has loaded them (bytecode.py)
bytecode.cache_ours()

# Our own directory must not shadow a user module of the same name (MMS does the same). The compat
# package goes LAST, after site-packages too (even if PYTHONPATH lists it), so that the model's modules
# and a real MMS/TorchServe installed for this interpreter win over our aliases.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") not in (_HERE, _COMPAT_DIR)]
sys.path.append(_COMPAT_DIR)

from _mar_worker.main import main  # noqa: E402
from _mar_worker.shutdown import exit_now  # noqa: E402

if __name__ == "__main__":
    exit_now(main())
