"""ts.torch_handler.base_handler.BaseHandler without torch (mar-tools compatibility).

TorchServe custom handlers often subclass BaseHandler and override preprocess/inference/postprocess.
This version keeps TorchServe's attribute names and the handle() flow (preprocess -> inference ->
postprocess, then a HandlerTime metric) but never loads weights: there is no torch here. Load your
model in your own initialize() (after calling super().initialize(context) if you want the fields
below set), and set self.model to a callable or override inference().
Not provided: describe/explain requests, the profiler, torch.compile/IPEX/ONNX/TensorRT set-up.
"""

import logging
import os
import time

from ts.utils.util import load_label_mapping

logger = logging.getLogger(__name__)


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

    def initialize(self, context):
        """Sets context, manifest, model_yaml_config, device ("cpu"), model_pt_path and the
        index_to_name.json mapping; does not load the serialized file."""
        self.context = context
        self.model_yaml_config = getattr(context, "model_yaml_config", {})
        properties = context.system_properties
        self.map_location = "cpu"
        self.device = "cpu"
        self.manifest = context.manifest
        model_dir = properties.get("model_dir")
        model = (self.manifest or {}).get("model") or {}
        if model.get("serializedFile"):
            self.model_pt_path = os.path.join(model_dir, model["serializedFile"])
            logger.info(
                "BaseHandler (mar-tools): %s is not loaded (no torch in this runtime); load it in initialize()",
                model["serializedFile"],
            )
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def preprocess(self, data):
        return data

    def inference(self, data, *args, **kwargs):
        if self.model is None:
            raise RuntimeError(
                "BaseHandler has no model: set self.model in initialize() or override inference()"
            )
        return self.model(data, *args, **kwargs)

    def postprocess(self, data):
        return data.tolist() if hasattr(data, "tolist") else data

    def handle(self, data, context):
        start_time = time.time()
        self.context = context
        output = self.postprocess(self.inference(self.preprocess(data)))
        if context.metrics is not None:
            context.metrics.add_time("HandlerTime", round((time.time() - start_time) * 1000, 2), None, "ms")
        return output
