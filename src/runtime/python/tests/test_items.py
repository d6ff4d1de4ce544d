"""Unit tests of item rows (docs/worker-protocol.md §3.3): how a batch with item rows becomes `data`, how the
handler's outputs are cut back per request, and which handlers explain (standard library only)."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(PYDIR, "compat"))
sys.path.insert(0, PYDIR)

import mms_worker  # noqa: E402,F401
from _mar_worker.codec import Request  # noqa: E402
from _mar_worker.inputs import build_batch  # noqa: E402
from _mar_worker.items import ITEMS_PARAM, asks_explain, can_explain, expected_outputs, split_outputs  # noqa: E402
from ts.torch_handler.base_handler import BaseHandler  # noqa: E402


def request(rid, params, headers=()):
    r = Request(rid.encode())
    r.params = params
    r.headers = list(headers)
    return r


def items_row(rid, items, headers=()):
    return request(rid, [(ITEMS_PARAM, "application/json", json.dumps(items).encode())], headers)


class ItemRowsTest(unittest.TestCase):
    def test_items_join_data_one_by_one_ordinary_rows_stay_dicts(self):
        batch = [
            request("a", [("body", "text/plain", b"hi")]),
            items_row("b", [1, {"x": 2}], [("explain", "False")]),
            items_row("c", []),
        ]
        data, processors, counts = build_batch(batch)
        self.assertEqual(data, [{"body": "hi"}, 1, {"x": 2}])
        self.assertEqual(counts, [None, 2, 0])
        self.assertEqual(processors[1].get_request_header("explain"), "False")
        self.assertIsNone(build_batch([request("a", [("body", "text/plain", b"hi")])])[2], "no item rows: no counts")

    def test_items_are_decoded_even_with_decoding_off(self):
        data, _, _ = build_batch([items_row("a", [[1, 2]])], decode=False)
        self.assertEqual(data, [[1, 2]])

    def test_outputs_cut_per_request(self):
        self.assertEqual(split_outputs(["p", 1, 2], [None, 2, 0]), ["p", b"[1, 2]", b"[]"])
        self.assertEqual(expected_outputs([0, 1, 2], [None, 2, 0]), 3)
        self.assertEqual(expected_outputs([0, 1], None), 2)

    def test_one_item_row_takes_the_whole_list_whatever_its_length(self):
        # TorchServe's envelopes take one request: a BERT handler answers one output for two input tensors
        self.assertIsNone(expected_outputs([0], [2]))
        self.assertEqual(split_outputs(["only"], [2]), [b'["only"]'])

    def test_numpy_like_outputs_are_listed(self):
        class Array(object):
            def tolist(self):
                return [1.5, 2.0]

        self.assertEqual(split_outputs([Array()], [1]), [b"[[1.5, 2.0]]"])
        with self.assertRaises(TypeError):
            split_outputs([object()], [1])

    def test_explain(self):
        self.assertTrue(asks_explain(request("a", [], [("explain", "False"), ("explain", "True")])))
        self.assertFalse(asks_explain(request("a", [], [("explain", "False")])))

        class Plain(BaseHandler):
            pass

        class Insights(BaseHandler):
            def get_insights(self, tensor_data, raw_data, target=0):
                return []

        class Own(object):
            def explain_handle(self, data_preprocess, raw_data):
                return []

        self.assertFalse(can_explain(None), "a function entry point")
        self.assertFalse(can_explain(Plain()))
        self.assertTrue(can_explain(Insights()))
        self.assertTrue(can_explain(Own()))


if __name__ == "__main__":
    unittest.main()
