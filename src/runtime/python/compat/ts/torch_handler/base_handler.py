"""ts.torch_handler.base_handler.BaseHandler: TorchServe's base handler, written for mar-tools.

With torch installed for the worker's Python, initialize() does what TorchServe's does: picks the device
(cpu, or cuda:<gpu_id> when CUDA is available and the server assigned a GPU), loads the model (an eager
model: the one nn.Module class in the manifest's modelFile plus the state dict in serializedFile; else a
TorchScript serializedFile with torch.jit.load), puts it in eval mode, reads index_to_name.json and
model_yaml_config. handle() runs preprocess -> inference (under torch.inference_mode()) -> postprocess and
records HandlerTime. torch is imported only when there is something to load or run with it, so a
subclass that brings its own (torch-free) model keeps working without torch, as before.

mar-tools additions: a request the preprocess step cannot use (a broken image, a missing text) is answered
on its own with a 400 JSON error (_reject) while the rest of the batch runs. Not provided: the profiler
(ENABLE_TORCH_PROFILER), IPEX, XLA, TensorRT, torch.export AOT; explanations need captum.
"""

import http
import importlib
import logging
import os
import sys
import time

from _mms_compat.packages import interpreter, install_hint
from ts.handler_utils.timer import timed
from ts.utils.util import list_classes_from_module, load_label_mapping

logger = logging.getLogger(__name__)

_torch = []  # [module or None] once looked up


def _import_torch():
    """torch, or None when this interpreter has none (looked up once)."""
    if not _torch:
        try:
            import torch
        except ImportError as e:
            if getattr(e, "name", None) not in (None, "torch"):
                raise  # torch is there but broken: say so, don't pretend it is missing
            torch = None
        _torch.append(torch)
    return _torch[0]


def no_torch_message(what):
    return "torch is not installed for {}, so {}: {}".format(interpreter(), what, install_hint("torch"))


class BaseHandler(object):
    def __init__(self):
        self.model = None
        self.mapping = None
        self.device = None
        self.initialized = False
        self.context = None
        self.model_pt_path = None
        self.manifest = None
        self.map_location = None
        self.explain = False
        self.target = 0
        self.profiler_args = {}
        self.model_yaml_config = {}
        self._request_errors = {}

    def initialize(self, context):
        self.context = context
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        properties = context.system_properties
        self.manifest = context.manifest
        model_dir = properties.get("model_dir")
        model = (self.manifest or {}).get("model") or {}
        serialized_file = model.get("serializedFile")
        self.model_pt_path = os.path.join(model_dir, serialized_file) if serialized_file else None
        model_file = model.get("modelFile") or ""
        torch = _import_torch() if (self.model_pt_path or model_file) else None
        self._pick_device(torch, properties.get("gpu_id"))
        if torch is None:
            if self.model_pt_path or model_file:
                logger.warning("BaseHandler: %s", no_torch_message("{} is not loaded".format(serialized_file or model_file)))
        elif model_file:
            self.model = self._load_pickled_model(model_dir, model_file, self.model_pt_path)
            self.model.to(self.device)
            self.model.eval()
        elif self.model_pt_path.endswith(".pt"):
            self.model = self._load_torchscript_model(self.model_pt_path)
            self.model.eval()
        elif self.model_pt_path.endswith(".onnx"):
            self.model = self._load_onnx_model(self.model_pt_path)
        else:
            raise RuntimeError(
                "No model weights could be loaded: {} is not TorchScript (.pt) and the manifest names no modelFile; "
                "archive the model class with --model-file, or load the model in your handler's initialize()".format(
                    serialized_file
                )
            )
        if torch is not None:
            self._compile(torch)
            logger.info("Model file %s loaded on %s", serialized_file or model_file, self.device)
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def _pick_device(self, torch, gpu_id):
        if torch is None:
            self.map_location = self.device = "cpu"
        elif gpu_id is not None and torch.cuda.is_available():
            self.map_location = "cuda"
            self.device = torch.device("cuda:{}".format(gpu_id))
        elif gpu_id is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            self.map_location = "mps"
            self.device = torch.device("mps")
        else:
            self.map_location = "cpu"
            self.device = torch.device("cpu")

    def _load_torchscript_model(self, model_pt_path):
        torch = _import_torch()
        try:
            return torch.jit.load(model_pt_path, map_location=self.device)
        except RuntimeError as e:
            raise RuntimeError(
                "cannot load {} as TorchScript (torch.jit.load: {}); for an eager model's state dict, archive its "
                "class with --model-file".format(os.path.basename(model_pt_path), str(e).splitlines()[0] if str(e) else e)
            ) from e

    def _load_pickled_model(self, model_dir, model_file, model_pt_path):
        """The one class defined in model_file, instantiated without arguments, with the state dict loaded."""
        torch = _import_torch()
        if not os.path.isfile(os.path.join(model_dir, model_file)):
            raise RuntimeError("Missing the model.py file: the manifest names {} as modelFile".format(model_file))
        module = importlib.import_module(os.path.splitext(os.path.basename(model_file))[0])
        classes = list_classes_from_module(module)
        if len(classes) != 1:
            raise ValueError(
                "Expected only one class as model definition in {}, found {}: {}".format(
                    model_file, len(classes), ", ".join(c.__name__ for c in classes) or "none"
                )
            )
        model = classes[0]()
        if model_pt_path:
            model.load_state_dict(torch.load(model_pt_path, map_location=self.device))
        return model

    def _load_onnx_model(self, path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError("{} is an ONNX model, which needs onnxruntime: {}".format(
                os.path.basename(path), install_hint("onnxruntime")))
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.map_location == "cuda" else ["CPUExecutionProvider"]
        return ort.InferenceSession(path, providers=providers)

    def _compile(self, torch):
        """model-config.yaml `pt2: {compile: {enable: true, backend: ...}}` (or the older `pt2: backend`)."""
        pt2 = self.model_yaml_config.get("pt2") if isinstance(self.model_yaml_config, dict) else None
        if not pt2:
            return
        if isinstance(pt2, dict) and "compile" in pt2:
            options = dict(pt2["compile"] or {})
            if not options.pop("enable", False):
                return
        elif isinstance(pt2, str):
            options = {"backend": pt2}
        elif isinstance(pt2, dict) and "export" not in pt2:
            options = dict(pt2)
        else:
            return
        if not hasattr(torch, "compile"):
            logger.warning("model config asks for torch.compile, which torch %s does not have: running uncompiled", torch.__version__)
            return
        try:
            self.model = torch.compile(self.model, **options)
            logger.info("Compiled model with %s", options)
        except Exception as e:  # TorchServe too serves the uncompiled model
            logger.warning("Compiling the model with %s failed, proceeding without compilation: %s", options, e)

    @timed
    def preprocess(self, data):
        torch = _import_torch()
        return data if torch is None else torch.as_tensor(data, device=self.device)

    @timed
    def inference(self, data, *args, **kwargs):
        if self.model is None:
            raise RuntimeError(
                "BaseHandler has no model: set self.model in initialize() or override inference()"
                if _import_torch() is not None
                else no_torch_message("BaseHandler has no model; set self.model in initialize() or override inference()")
            )
        torch = sys.modules.get("torch")  # a model that runs on tensors was loaded with torch: no import here
        if torch is None:
            return self.model(data, *args, **kwargs)
        with torch.inference_mode():
            marshalled = data.to(self.device) if hasattr(data, "to") else data
            return self.model(marshalled, *args, **kwargs)

    @timed
    def postprocess(self, data):
        return data.tolist() if hasattr(data, "tolist") else data

    def handle(self, data, context):
        start_time = time.time()
        self.context = context
        self._request_errors = {}
        if self._is_describe():
            output = [self.describe_handle()]
        else:
            data_preprocess = self.preprocess(data)
            if self._is_explain():
                output = self.explain_handle(data_preprocess, data)
            elif self._request_errors and len(self._request_errors) >= len(data):
                output = []  # nothing left to run
            else:
                output = self.postprocess(self.inference(data_preprocess))
            output = self._with_request_errors(output, len(data))
        if context.metrics is not None:
            context.metrics.add_time("HandlerTime", round((time.time() - start_time) * 1000, 2), None, "ms")
        return output

    def _reject(self, idx, message, code=400):
        """Answers request idx of the batch with `code` and a JSON error instead of running it (preprocess
        leaves it out of the tensors it returns)."""
        self._request_errors[idx] = (code, message)

    def _with_request_errors(self, output, count):
        """The outputs of the requests that ran, in order, with the rejected ones' errors put back in place."""
        errors = self._request_errors
        if not errors or not isinstance(output, list) or len(output) != count - len(errors):
            return output
        results = iter(output)
        merged = []
        for idx in range(count):
            if idx not in errors:
                merged.append(next(results))
                continue
            code, message = errors[idx]
            try:
                phrase = http.HTTPStatus(code).phrase
            except ValueError:
                phrase = ""
            self.context.set_response_status(code, phrase, idx)
            self.context.set_response_content_type(idx, "application/json")
            kind = "BadRequestException" if 400 <= code < 500 else "InternalServerException"
            merged.append({"code": code, "type": kind, "message": message})
        return merged

    def explain_handle(self, data_preprocess, raw_data):
        row = raw_data[0]
        inputs, target = None, 0
        if isinstance(row, dict):
            inputs = row.get("data") or row.get("body")
            target = row.get("target") or 0
        return self.get_insights(data_preprocess, inputs, target)

    def get_insights(self, tensor_data, raw_data, target=0):
        raise NotImplementedError("this handler does not explain its predictions (define get_insights)")

    def _is_explain(self):
        if self.context and self.context.get_request_header(0, "explain") == "True":
            self.explain = True
            return True
        return False

    def _is_describe(self):
        return bool(self.context and self.context.get_request_header(0, "describe") == "True")

    def describe_handle(self):
        return None

    def get_device(self):
        return self.device
