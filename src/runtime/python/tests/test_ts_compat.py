"""Unit tests of the TorchServe-facing parts of the compat package that need no torch: ts.metrics, ts.utils.util,
ts.handler_utils (timer, text_utils), the worker's thread rule and messages, and the built-in fallback.

    python3 -m unittest discover -s src/runtime/python/tests
"""

import json
import os
import shutil
import sys
import tempfile
import types
import unittest

import test_compat  # noqa: F401 (sets up sys.path as the worker does)
from _mar_worker import loading, torch_env  # noqa: E402
from _mms_compat import packages  # noqa: E402
from _mms_compat.metrics import MetricsStore  # noqa: E402
from ts.handler_utils import text_utils  # noqa: E402
from ts.handler_utils.timer import timed  # noqa: E402
from ts.metrics.dimension import Dimension  # noqa: E402
from ts.metrics.metric_cache_errors import MetricsCacheKeyError  # noqa: E402
from ts.metrics.metric_type_enum import MetricTypes  # noqa: E402
from ts.utils import util  # noqa: E402


class TsMetricsTest(unittest.TestCase):
    def test_add_metric_in_torchserve_order_is_typed_and_keeps_the_unit(self):
        store = MetricsStore({0: "r1", 1: "r2"}, "m")
        store.add_metric("Hits", 2, "count")  # TorchServe: unit third, a COUNTER by default
        store.add_metric("Lat", 3.5, "ms", 1, [Dimension("Kind", "x")], MetricTypes.GAUGE)
        store.add_metric("Old", 4, 0, "MB")  # MMS: idx third, then unit
        lines = [str(m) for m in store.store]
        self.assertRegex(lines[0], r"^Hits\.Count:2\|#ModelName:m,Level:Model\|#type:COUNTER\|#hostname:[^,]+,\d+,r1,r2$")
        self.assertRegex(lines[1], r"^Lat\.Milliseconds:3\.5\|#Kind:x,ModelName:m,Level:Model\|#type:GAUGE\|#hostname:[^,]+,\d+,r2$")
        self.assertRegex(lines[2], r"^Old\.Megabytes:4\|#ModelName:m,Level:Model\|#hostname:[^,]+,\d+,r1$")

    def test_typed_metrics_keep_a_model_name_the_handler_gave(self):
        store = MetricsStore({0: "r"}, "m")
        store.add_time("T", 1, dimensions=[Dimension("ModelName", "other")], metric_type=MetricTypes.GAUGE)
        self.assertRegex(str(store.store[0]), r"^T\.Milliseconds:1\|#ModelName:other,Level:Model\|#type:GAUGE\|")

    def test_declared_metrics_outlive_the_batch_store_and_print_at_once(self):
        load_store = MetricsStore("load", "m")
        declared = load_store.add_metric_to_cache("Seen", "count", ["ModelName"], MetricTypes.COUNTER)
        batch_store = MetricsStore({0: "r"}, "m")
        self.assertIs(batch_store.get_metric("Seen", MetricTypes.COUNTER), declared)
        with self.assertRaises(MetricsCacheKeyError):
            batch_store.get_metric("Seen", MetricTypes.GAUGE)
        with self.assertLogs(level="INFO") as logs:
            declared.add_or_update(3, ["m"], "r")
        self.assertRegex(logs.records[0].getMessage(), r"^\[METRICS\]Seen\.Count:3\|#ModelName:m\|#type:COUNTER\|#hostname:[^,]+,\d+,r$")
        with self.assertLogs(level="ERROR"):
            declared.add_or_update(1, ["m", "extra"])  # wrong number of dimension values: logged, not raised


class TsUtilTest(unittest.TestCase):
    def write(self, value):
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(value, f)
        f.close()
        self.addCleanup(os.remove, f.name)
        return f.name

    def test_label_mapping_formats(self):
        self.assertEqual(util.load_label_mapping(self.write({"0": ["n01", "tench"], "1": "goldfish"})), {"0": "tench", "1": "goldfish"})
        self.assertEqual(util.load_label_mapping(self.write({"object_type_names": ["bg", "person"]})), {"0": "bg", "1": "person"})
        with self.assertLogs(level="WARNING"):
            self.assertIsNone(util.load_label_mapping("/no/such/index_to_name.json"))
        with self.assertRaises(Exception):
            util.load_label_mapping(self.write(["not", "a", "dict"]))

    def test_map_class_to_label(self):
        self.assertEqual(util.map_class_to_label([[0.7, 0.2]], {"3": "c", "5": "d"}, [[3, 5]]), [{"c": 0.7, "d": 0.2}])
        self.assertEqual(util.map_class_to_label([[0.1, 0.9], [0.5, 0.5]]), [{"0": 0.1, "1": 0.9}, {"0": 0.5, "1": 0.5}])

    def test_list_classes_counts_only_the_module_s_own(self):
        module = types.ModuleType("m")
        exec("from collections import OrderedDict\nclass A(object): pass\nclass B(A): pass\n", module.__dict__)
        self.assertEqual([c.__name__ for c in util.list_classes_from_module(module)], ["A", "B"])
        self.assertEqual([c.__name__ for c in util.list_classes_from_module(module, module.B)], ["B"])


class TextUtilsTest(unittest.TestCase):
    def test_basic_english_and_ngrams(self):
        tokenize = text_utils.get_tokenizer("basic_english")
        self.assertEqual(tokenize('You can now install "TorchText" using pip!'), ["you", "can", "now", "install", "torchtext", "using", "pip", "!"])
        self.assertEqual(tokenize("it's 3.5, (ok)?"), ["it", "'", "s", "3", ".", "5", ",", "(", "ok", ")", "?"])
        self.assertEqual(list(text_utils.ngrams_iterator(["here", "we", "are"], 2)), ["here", "we", "are", "here we", "we are"])
        self.assertEqual(text_utils.get_tokenizer(None)("a  b"), ["a", "b"])
        with self.assertRaises(ValueError):
            text_utils.get_tokenizer("spacy")

    def test_dict_vocabulary_answers_unknown_tokens_without_growing(self):
        vocab = text_utils.DictVocab({"<unk>": 7, "a": 1})
        self.assertEqual([vocab["a"], vocab["zzz"]], [1, 7])
        self.assertNotIn("zzz", vocab)


class TimedTest(unittest.TestCase):
    def handler(self, config):
        store = MetricsStore({0: "r"}, "m")
        context = types.SimpleNamespace(model_yaml_config=config, metrics=store)

        class Handler(object):
            def __init__(self):
                self.context = context

            @timed
            def preprocess(self, data):
                return data * 2

        return Handler(), store

    def test_records_ts_handler_metrics_only_when_the_model_config_asks(self):
        handler, store = self.handler({})
        self.assertEqual(handler.preprocess(2), 4)
        self.assertEqual(store.store, [])
        handler, store = self.handler({"handler": {"profile": True}})
        self.assertEqual(handler.preprocess(2), 4)
        self.assertEqual([m.name for m in store.store], ["ts_handler_preprocess"])


class ThreadsAndMessagesTest(unittest.TestCase):
    def setUp(self):
        saved = {k: os.environ.get(k) for k in ("MAR_TORCH_THREADS", "OMP_NUM_THREADS")}

        def restore():
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

        self.addCleanup(restore)

    def test_thread_setting_precedence(self):
        os.environ["MAR_TORCH_THREADS"] = "3"
        os.environ["OMP_NUM_THREADS"] = "1"  # the frontend's default next to its share
        self.assertEqual(torch_env.thread_setting({}), (3, "the cores shared among the model's workers"))
        self.assertEqual(torch_env.thread_setting({"torchrun": {"OMP_NUMBER_THREADS": 2}})[0], 2)
        del os.environ["MAR_TORCH_THREADS"]  # the user set OMP_NUM_THREADS: torch keeps it
        self.assertEqual(torch_env.thread_setting({}), (None, "OMP_NUM_THREADS"))
        self.assertIsNone(torch_env.apply_threads({}) if "torch" not in sys.modules else None)

    def test_missing_package_message_names_the_interpreter_and_the_fix(self):
        message = packages.missing_package_message("torch")
        self.assertIn("No module named 'torch' in Python", message)
        self.assertIn(sys.executable, message)
        self.assertIn("apt-get install python3-torch", message)
        self.assertIn("--python, the python config key or MAR_PYTHON", message)
        self.assertIn("pip install Pillow", packages.install_hint("PIL.Image"))


class BaseHandlerWithoutTorchTest(unittest.TestCase):
    def setUp(self):
        from ts.torch_handler import base_handler

        self.base_handler = base_handler
        saved = list(base_handler._torch)
        base_handler._torch[:] = [None]  # as on a Python without torch, whatever this one has
        self.addCleanup(lambda: base_handler._torch.__setitem__(slice(None), saved))

    def test_the_serialized_file_is_not_loaded_and_the_log_and_the_error_say_how_to_get_torch(self):
        context = types.SimpleNamespace(
            system_properties={"model_dir": tempfile.gettempdir(), "gpu_id": None},
            manifest={"model": {"serializedFile": "model.pt"}},
            model_yaml_config={},
            metrics=MetricsStore({0: "r"}, "m"),
            get_request_header=lambda idx, name: None,
        )
        handler = self.base_handler.BaseHandler()
        with self.assertLogs(level="WARNING") as logs:
            handler.initialize(context)
        self.assertIn("torch is not installed for Python", logs.output[0])
        self.assertIn("model.pt is not loaded", logs.output[0])
        self.assertIn("apt-get install python3-torch", logs.output[0])
        self.assertEqual((handler.model, handler.device), (None, "cpu"))
        with self.assertRaises(RuntimeError) as caught:
            handler.handle([{"body": [1]}], context)
        self.assertIn("BaseHandler has no model; set self.model in initialize() or override inference()", str(caught.exception))
        handler.model = lambda rows: [sum(r["body"]) for r in rows]  # a torch-free model still runs
        self.assertEqual(handler.handle([{"body": [1, 2]}], context), [3])


@unittest.skipIf(__import__("importlib").util.find_spec("torch") is not None, "this Python has torch")
class BuiltinFallbackWithoutTorchTest(unittest.TestCase):
    def test_a_builtin_name_loads_ts_torch_handler_and_says_torch_is_missing(self):
        with self.assertRaises(ModuleNotFoundError) as caught:
            loading.import_handler_module("image_classifier", None)
        self.assertEqual(caught.exception.name, "torch")
        with self.assertRaises(ModuleNotFoundError) as caught:
            loading.import_handler_module("no_such_handler_module", None)
        self.assertEqual(caught.exception.name, "no_such_handler_module")


@unittest.skipIf(__import__("importlib").util.find_spec("torch") is None, "needs torch")
@unittest.skipIf(__import__("importlib").util.find_spec("torchtext") is not None, "this Python has torchtext")
class TorchtextVocabularyTest(unittest.TestCase):
    def test_a_torchtext_vocabulary_without_torchtext_says_so_and_how_to_save_a_plain_one(self):
        import torch
        from ts.torch_handler import text_handler

        # A pickle that names torchtext's Vocab class, as torch.save(torchtext_vocab) writes it.
        fake = types.ModuleType("torchtext.vocab")
        Vocab = type("Vocab", (object,), {"__module__": "torchtext.vocab"})
        fake.Vocab = Vocab
        sys.modules["torchtext"], sys.modules["torchtext.vocab"] = types.ModuleType("torchtext"), fake
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "source_vocab.pt")
        try:
            torch.save(Vocab(), path)
        finally:
            del sys.modules["torchtext"], sys.modules["torchtext.vocab"]
        with self.assertRaises(RuntimeError) as caught:
            text_handler._load_vocab(path)
        message = str(caught.exception)
        self.assertIn("source_vocab.pt holds a torchtext vocabulary, and torchtext is not installed for Python", message)
        self.assertIn("torch.save(dict(vocab.get_stoi()), 'source_vocab.pt')", message)
        torch.save({"<unk>": 0, "a": 1}, path)
        with self.assertLogs(level="INFO") as logs:
            vocab = text_handler._load_vocab(path)
        self.assertEqual([vocab["a"], vocab["zzz"]], [1, 0])
        self.assertIn("tokenizer basic_english", logs.output[0])


if __name__ == "__main__":
    unittest.main()
