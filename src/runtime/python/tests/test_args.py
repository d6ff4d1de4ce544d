"""The worker's command line (_mar_worker/main.py parse_args, which replaced argparse for start time): the flags the
frontend passes, MMS's extra ones ignored, and argparse's messages with exit status 2 for what it refused."""

import contextlib
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, PYDIR)

from _mar_worker.main import parse_args  # noqa: E402


def refused(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parse_args(argv)
        except SystemExit as e:
            return e.code, err.getvalue().splitlines()[-1]
    raise AssertionError("accepted: {}".format(argv))


class ParseArgsTest(unittest.TestCase):
    def test_unix_with_defaults(self):
        a = parse_args(["--sock-type", "unix", "--sock-name", "/s/w.sock"])
        self.assertEqual((a.sock_type, a.sock_name, a.host, a.port), ("unix", "/s/w.sock", "127.0.0.1", None))
        self.assertEqual(a.accept_timeout, 30.0)
        self.assertFalse(a.settings_from_stdin)

    def test_prespawned_tcp_with_equals_and_mms_extras(self):
        a = parse_args(
            ["--sock-type=tcp", "--host", "::1", "--port=9000", "--handler", "x:handle", "--model-path", "/m"]
            + ["--preload-model", "false", "--settings-from-stdin", "--accept-timeout", "120"]
        )
        self.assertEqual((a.sock_type, a.host, a.port, a.accept_timeout), ("tcp", "::1", "9000", 120.0))
        self.assertTrue(a.settings_from_stdin)

    def test_refusals_exit_2_with_argparse_messages(self):
        self.assertEqual(refused([]), (2, "mms_worker.py: error: the following arguments are required: --sock-type"))
        self.assertEqual(
            refused(["--sock-type", "udp"]),
            (2, "mms_worker.py: error: argument --sock-type: invalid choice: 'udp' (choose from 'unix', 'tcp')"),
        )
        self.assertEqual(refused(["--sock-type"]), (2, "mms_worker.py: error: argument --sock-type: expected one argument"))
        self.assertEqual(
            refused(["--sock-type", "unix", "--sock-name", "/s", "--accept-timeout", "soon"]),
            (2, "mms_worker.py: error: argument --accept-timeout: invalid float value: 'soon'"),
        )
        self.assertEqual(refused(["--sock-type", "unix"]), (2, "mms_worker.py: error: --sock-name is required with --sock-type unix"))
        self.assertEqual(refused(["--sock-type", "tcp"]), (2, "mms_worker.py: error: --port is required with --sock-type tcp"))


if __name__ == "__main__":
    unittest.main()
