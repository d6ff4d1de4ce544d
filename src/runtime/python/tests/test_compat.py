"""Unit tests of the worker's pure parts and the compat package (standard library only).

    python3 -m unittest discover -s src/runtime/python/tests
"""

import os
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(PYDIR, "compat"))
sys.path.insert(0, PYDIR)

import mms_worker  # noqa: E402,F401 (puts the worker package and compat on sys.path as the worker does)
from _mar_worker import codec, loading  # noqa: E402
from _mms_compat import simple_yaml  # noqa: E402
from _mms_compat.errors import PredictionException, prediction_error_of  # noqa: E402
from mms.context import Context, RequestProcessor  # noqa: E402
from mms.metrics.dimension import Dimension  # noqa: E402
from mms.metrics.metrics_store import MetricsStore  # noqa: E402
import mms.service  # noqa: E402
import ts.context  # noqa: E402
import ts.utils.util  # noqa: E402


class HandlerStringTest(unittest.TestCase):
    def test_parse_handler_as_mms(self):
        self.assertEqual(loading.parse_handler("model_handler:handle"), (None, "model_handler", "handle"))
        self.assertEqual(loading.parse_handler("model_handler.py"), (None, "model_handler", "handle"))
        self.assertEqual(loading.parse_handler("code/sub/h.py:run"), ("code/sub", "h", "run"))
        self.assertEqual(loading.parse_handler("/abs/dir/h:run"), ("/abs/dir", "h", "run"))
        self.assertEqual(loading.parse_handler("/h"), ("/", "h", "handle"))


# docs/worker-protocol.md §2.4
PREDICT_209 = bytes.fromhex(
    "49000000057265712d310000000c436f6e74656e742d54797065000000106170706c69636174696f6e2f6a73"
    "6f6e00000008582d437573746f6d00000003616263ffffffff00000004626f6479000000106170706c696361"
    "74696f6e2f6a736f6e000000087b2278223a20317dffffffff000000057265712d320000000c436f6e74656e"
    "742d547970650000000a746578742f706c61696effffffff00000004626f64790000000a746578742f706c61"
    "696e0000000568656c6c6f0000000171000000000000000176ffffffffffffffff"
)


class ChunkedSocket(object):
    """recv_into() hands out at most `size` bytes per call, like a slow peer."""

    def __init__(self, data, size):
        self.data = data
        self.pos = 0
        self.size = size
        self.calls = 0

    def recv_into(self, buffer):
        self.calls += 1
        chunk = self.data[self.pos : self.pos + min(len(buffer), self.size)]
        self.pos += len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


class ReaderTest(unittest.TestCase):
    def read_all(self, data, size):
        reader = codec.Reader(ChunkedSocket(data, size))
        out = []
        while True:
            cmd = reader.read_command()
            if cmd is None:
                return out
            self.assertEqual(cmd, b"I")
            out.append(
                [(r.request_id, r.headers, [(n, c, bytes(v)) for n, c, v in r.params]) for r in reader.read_predict()]
            )

    def test_reference_predict_whole_and_one_byte_at_a_time(self):
        self.assertEqual(len(PREDICT_209), 209)
        expected = [
            [
                ("req-1", [("Content-Type", "application/json"), ("X-Custom", "abc")], [("body", "application/json", b'{"x": 1}')]),
                ("req-2", [("Content-Type", "text/plain")], [("body", "text/plain", b"hello"), ("q", "", b"v")]),
            ]
        ]
        self.assertEqual(self.read_all(PREDICT_209, 1 << 20), expected)
        self.assertEqual(self.read_all(PREDICT_209, 1), expected)
        self.assertEqual(self.read_all(PREDICT_209 * 3, 7), expected * 3)

    def test_large_body_is_read_in_few_receives(self):
        body = b"x" * (4 << 20)
        message = b"I" + struct.pack("!i", 1) + b"r" + struct.pack("!i", -1)
        message += struct.pack("!i", 4) + b"body" + struct.pack("!i", 0) + struct.pack("!i", len(body)) + body
        message += struct.pack("!i", -1) + struct.pack("!i", -1)
        sock = ChunkedSocket(message, 65536)
        reader = codec.Reader(sock)
        self.assertEqual(reader.read_command(), b"I")
        (req,) = reader.read_predict()
        self.assertEqual(len(req.params[0][2]), len(body))
        self.assertLess(sock.calls, len(message) // 65536 + 5)
        self.assertIsNone(reader.read_command())

    def test_eof_inside_a_message_and_bad_lengths(self):
        reader = codec.Reader(ChunkedSocket(PREDICT_209[:100], 10))
        reader.read_command()
        with self.assertRaises(codec.PeerClosed):
            reader.read_predict()
        bad = struct.pack("!i", -5)
        with self.assertRaises(ValueError):
            codec.parse_predict(bad, 0)


class SimpleYamlTest(unittest.TestCase):
    def test_model_config_subset(self):
        text = (
            "# TorchServe model config\n"
            "minWorkers: 1\n"
            "batchSize: 4   # comment\n"
            "maxBatchDelay: 100.5\n"
            "deviceType: \"cpu\"\n"
            "name: 'it''s'\n"
            "enabled: yes\n"
            "off_flag: Off\n"
            "nothing: ~\n"
            "empty:\n"
            "url: http://x/y#frag\n"
            "not_float: 1e3\n"
            "octal: 010\n"
            "handler:\n"
            "  threshold: 0.5\n"
            "  labels: [a, \"b c\", 3, {x: [1, 2]}]\n"
            "  nested:\n"
            "    deep: true\n"
            "list:\n"
            "  - 1\n"
            "  - name: a\n"
            "    value: 2\n"
            "same_indent:\n"
            "- a\n"
            "- b\n"
        )
        self.assertEqual(
            simple_yaml.loads(text),
            {
                "minWorkers": 1,
                "batchSize": 4,
                "maxBatchDelay": 100.5,
                "deviceType": "cpu",
                "name": "it's",
                "enabled": True,
                "off_flag": False,
                "nothing": None,
                "empty": None,
                "url": "http://x/y#frag",
                "not_float": "1e3",
                "octal": 8,
                "handler": {"threshold": 0.5, "labels": ["a", "b c", 3, {"x": [1, 2]}], "nested": {"deep": True}},
                "list": [1, {"name": "a", "value": 2}],
                "same_indent": ["a", "b"],
            },
        )

    def test_matches_pyyaml_when_installed(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("PyYAML not installed")
        text = "a: 1\nb: [x, 2.5, null]\nc:\n  d: 'q'\n  e:\n  - on\n  - 0x1f\n"
        self.assertEqual(simple_yaml.loads(text), yaml.safe_load(text))

    def test_unsupported_syntax_is_refused(self):
        for text in ("a: |\n  text\n", "a: &anchor 1\n", "a: 1\n  b: 2\n", "a: [1, 2\n", "a: 1\n---\nb: 2\n"):
            with self.assertRaises(simple_yaml.UnsupportedYaml, msg=text):
                simple_yaml.loads(text)


class MetricsTest(unittest.TestCase):
    def test_line_format_and_request_ids(self):
        store = MetricsStore({0: "r1", 1: "r2"}, "m")
        store.add_counter("Hits", 1, 1)
        store.add_counter("Hits", 2, 1)  # counters add up within one store
        store.add_time("T", 1.5)
        store.add_size("S", 3, unit="GB", dimensions=[Dimension("Kind", "x")])
        store.add_error("E", 4)
        lines = [str(m) for m in store.store]
        self.assertRegex(lines[0], r"^Hits\.Count:3\|#ModelName:m,Level:Model\|#hostname:[^,]+,\d+,r2$")
        self.assertRegex(lines[1], r"^T\.Milliseconds:1\.5\|#ModelName:m,Level:Model\|#hostname:[^,]+,\d+,r1,r2$")
        self.assertRegex(lines[2], r"^S\.Gigabytes:3\|#Kind:x,ModelName:m,Level:Model\|#hostname:[^,]+,\d+,r1,r2$")
        self.assertRegex(lines[3], r"^E\.unit:4\|#Level:Error\|#hostname:[^,]+,\d+$")

    def test_unit_checks(self):
        store = MetricsStore("load-id", "m")
        with self.assertRaises(ValueError):
            store.add_time("T", 1, unit="h")
        with self.assertRaises(ValueError):
            store.add_size("S", 1, unit="TB")
        store.add_percent("P", 5)
        self.assertTrue(str(store.store[0]).endswith(",load-id"))


class ContextTest(unittest.TestCase):
    def test_mms_method_names_and_argument_orders(self):
        ctx = Context("m", "/d", None, 2, None, "1.0")
        ctx.request_ids = {0: "a", 1: "b"}
        ctx.request_processor = [RequestProcessor({"X": "1"}), RequestProcessor({})]
        ctx.set_response_status(404, "Nope", 1)
        ctx.set_response_content_type(0, "text/plain")
        self.assertEqual(ctx.get_response_status(1), (404, "Nope"))
        self.assertEqual(ctx.get_response_status(0), (200, None))
        self.assertEqual(ctx.get_response_content_type(0), "text/plain")
        self.assertEqual(ctx.get_response_headers(0), {"content-type": "text/plain"})
        self.assertEqual(ctx.get_request_header(0, "X"), "1")
        self.assertEqual(ctx.request_processor[0].get_request_header("X"), "1")
        self.assertEqual(ctx.get_request_id(1), "b")
        ctx.set_all_response_status(500, "All")
        self.assertEqual([ctx.get_response_status(i) for i in (0, 1)], [(500, "All"), (500, "All")])
        self.assertEqual(ctx.system_properties["server_name"], "MMS")
        self.assertEqual(ctx.model_yaml_config, {})

    def test_aliases_are_the_same_classes(self):
        self.assertIs(mms.service.PredictionException, ts.utils.util.PredictionException)
        self.assertIs(ts.context.Context, Context)

    def test_prediction_exception_duck_typing(self):
        self.assertEqual(prediction_error_of(PredictionException("x", 599)), (599, "x"))

        class PredictionException2(Exception):
            pass

        own = type("PredictionException", (Exception,), {})("own")
        own.error_code = "418"
        self.assertEqual(prediction_error_of(own), (418, "own"))
        self.assertIsNone(prediction_error_of(PredictionException2("no")))
        self.assertIsNone(prediction_error_of(RuntimeError("no")))

    def test_ts_label_helpers(self):
        self.assertEqual(
            ts.utils.util.map_class_to_label([[0.9, 0.1]], {"0": "cat", "1": "dog"}),
            [{"cat": 0.9, "dog": 0.1}],
        )


if __name__ == "__main__":
    unittest.main()
