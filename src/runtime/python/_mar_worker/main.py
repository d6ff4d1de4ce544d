"""Process start: arguments, bind and accept ONE connection, signals, the parent watch; then serve."""

import os
import signal
import socket
import sys
import threading
import time

from _mar_worker import bytecode

_USAGE = (
    "usage: mms_worker.py --sock-type {unix,tcp} [--sock-name PATH] [--host HOST] [--port N]"
    " [--accept-timeout SECONDS] [--settings-from-stdin]"
)
# flag -> (attribute, default); --settings-from-stdin (spawned before the model: read its cwd and environment on
# stdin) takes no value
_OPTIONS = {
    "--sock-type": ("sock_type", None),
    "--sock-name": ("sock_name", None),  # the unix socket path
    "--host": ("host", "127.0.0.1"),
    "--port": ("port", None),  # the tcp port
    "--accept-timeout": ("accept_timeout", "30"),  # seconds to wait for the connection
}
_SWITCH = "--settings-from-stdin"


class _Args(object):
    pass


def _usage_error(message):
    sys.stderr.write("{}\nmms_worker.py: error: {}\n".format(_USAGE, message))
    raise SystemExit(2)


def parse_args(argv):
    """The worker's options, as `--flag value` or `--flag=value`, with argparse's messages and exit status 2.
    --handler, --model-path, --model-name, --preload-model, --tmp-dir, ... (MMS) and anything else are ignored.
    Not argparse: importing it and building its parser (gettext's catalogue search included) cost ~2 ms of
    every worker's start."""
    args = _Args()
    for attr, default in _OPTIONS.values():
        setattr(args, attr, default)
    args.settings_from_stdin = False
    i = 0
    while i < len(argv):
        name, eq, inline = argv[i].partition("=")
        i += 1
        if name == _SWITCH:
            if eq:
                _usage_error("argument {}: ignored explicit argument '{}'".format(_SWITCH, inline))
            args.settings_from_stdin = True
            continue
        option = _OPTIONS.get(name)
        if option is None:
            continue
        if eq:
            value = inline
        elif i < len(argv) and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        else:
            _usage_error("argument {}: expected one argument".format(name))
        setattr(args, option[0], value)
    if args.sock_type is None:
        _usage_error("the following arguments are required: --sock-type")
    if args.sock_type not in ("unix", "tcp"):
        _usage_error("argument --sock-type: invalid choice: '{}' (choose from 'unix', 'tcp')".format(args.sock_type))
    try:
        args.accept_timeout = float(args.accept_timeout)
    except ValueError:
        _usage_error("argument --accept-timeout: invalid float value: '{}'".format(args.accept_timeout))
    if args.sock_type == "unix" and not args.sock_name:
        _usage_error("--sock-name is required with --sock-type unix")
    if args.sock_type == "tcp" and args.port is None:
        _usage_error("--port is required with --sock-type tcp")
    return args


def bind(args):
    if args.sock_type == "unix":
        if os.path.exists(args.sock_name):
            os.remove(args.sock_name)  # stale socket of a dead worker, as MMS does
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.sock_name)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, int(args.port)))
    sock.listen(1)
    return sock


def _on_sigterm(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop (it closes
    # the connection, and we exit on EOF), so an in-flight request is not cut short here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    unix_path = args.sock_name if args.sock_type == "unix" else None
    sock = None
    try:
        try:
            sock = bind(args)
        except (OSError, ValueError, OverflowError) as e:
            where = args.sock_name if unix_path else "{}:{}".format(args.host, args.port)
            print("Cannot listen on {}: {}".format(where, e), flush=True)
            unix_path = None  # not ours to remove
            return 1
        print("[PID] {}".format(os.getpid()), flush=True)
        print("MMS worker started.", flush=True)
        print("Python runtime: {}".format(".".join(str(v) for v in sys.version_info[:3])), flush=True)
        # Logging and the serving code (codec, handler loading, compat) load while the frontend connects and sends
        # LOAD, not before the "started" line: the two overlap on a cold start.
        from _mar_worker.stdio import setup_logging

        setup_logging()
        from _mar_worker.serve import Worker

        if args.settings_from_stdin:
            from _mar_worker.deferred import read_settings
        # the rest (compat modules a handler imports, the handler) is compiled as the interpreter's settings say
        bytecode.done()
        if args.settings_from_stdin:
            watch_parent()  # waiting for a model that may take a while: not after our frontend is gone
        sock.settimeout(args.accept_timeout)
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            print("Backend worker did not receive connection in: {:g} s; exiting.".format(args.accept_timeout), flush=True)
            return 1
        sock.close()
        sock = None
        if unix_path:
            # One connection per process: the path is not needed any more, even if a handler crashes later.
            _remove(unix_path)
            unix_path = None
        conn.settimeout(None)
        if args.settings_from_stdin:
            try:
                read_settings()
            except (OSError, ValueError) as e:
                print("Cannot apply the frontend's settings: {}".format(e), flush=True)
                return 1
        else:
            watch_parent()
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return Worker(conn).serve()
        finally:
            conn.close()
    finally:
        if sock is not None:
            sock.close()
        if unix_path:
            _remove(unix_path)
        sys.stdout.flush()


def watch_parent(interval=1.0):
    """Exits when the frontend that started us is gone. If it was SIGKILLed while a handler hangs, the handler
    never returns to see the closed connection, and the orphan would hold its memory (and GPU) for ever."""
    parent = os.getppid()
    if parent <= 1:
        return

    def run():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)  # nothing to tell: our stdout and stderr went with the frontend

    threading.Thread(target=run, name="parent-watch", daemon=True).start()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass

