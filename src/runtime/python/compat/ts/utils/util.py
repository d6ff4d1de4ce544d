"""ts.utils.util: the helpers TorchServe handlers import (label mapping, class listing, PredictionException,
the YAML reader, the pt2 backend names). Standard library only: nothing here needs torch."""

import enum
import functools
import inspect
import json
import logging
import os
import re
import warnings

from _mms_compat.errors import PredictionException  # noqa: F401

logger = logging.getLogger(__name__)

# What TorchServe's text handlers strip before tokenizing: HTML tags and character entities.
CLEANUP_REGEX = re.compile("<.*?>|&([a-z0-9]+|#[0-9]{1,6}|#x[0-9a-f]{1,6});")


class PT2Backend(str, enum.Enum):
    """torch.compile backends TorchServe accepts in model-config.yaml's `pt2` section."""

    EAGER = "eager"
    AOT_EAGER = "aot_eager"
    INDUCTOR = "inductor"
    NVFUSER = "nvfuser"
    AOT_NVFUSER = "aot_nvfuser"
    AOT_CUDAGRAPHS = "aot_cudagraphs"
    OFI = "ofi"
    FX2TRT = "fx2trt"
    ONNXRT = "onnxrt"
    IPEX = "ipex"
    TORCHXLA_TRACE_ONCE = "torchxla_trace_once"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"
    HPU_BACKEND = "hpu_backend"


def check_valid_pt2_backend(backend):
    if backend in [b.value for b in PT2Backend]:
        return True
    logger.warning("%s is not a supported backend", backend)
    return False


def list_classes_from_module(module, parent_class=None):
    """The classes defined in `module` itself (not imported into it), optionally only subclasses of parent_class."""
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    if parent_class is not None:
        classes = [c for c in classes if issubclass(c, parent_class)]
    return classes


def load_label_mapping(mapping_file_path):
    """Reads an index -> label JSON file (index_to_name.json) as TorchServe does: None if the file is missing;
    {"object_type_names": [...]} and list values ([id, name]: the last element) are accepted."""
    if not os.path.isfile(mapping_file_path):
        logger.warning("%r is missing. Inference output will not include class name.", mapping_file_path)
        return None
    with open(mapping_file_path) as f:
        mapping = json.load(f)
    if not isinstance(mapping, dict):
        raise Exception('index->name JSON mapping should be in "class": "label" format.')
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(i): name for i, name in enumerate(names)}
    for key, value in mapping.items():
        label = value[-1] if isinstance(value, list) else value
        if not isinstance(label, str):
            raise Exception("labels in index->name mapping must be either str or List[str]")
        mapping[key] = label
    return mapping


def map_class_to_label(probs, mapping=None, lbl_classes=None):
    """[[p, ...], ...] -> [{label: p, ...}, ...]: each row's classes (default 0..n-1) named through `mapping`."""
    if not isinstance(probs, list):
        raise Exception("Convert classes to list before doing mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise Exception("Mapping must be a dict")
    if lbl_classes is None:
        width = len(probs[0]) if probs else 0
        lbl_classes = [range(width)] * len(probs)
    return [
        {(mapping[str(lbl)] if mapping is not None else str(lbl)): prob for lbl, prob in zip(classes, row)}
        for classes, row in zip(lbl_classes, probs)
    ]


def get_yaml_config(yaml_file_path):
    """A YAML file as a dict: PyYAML when installed, else our reader of the subset model configs use."""
    with open(yaml_file_path, "r") as f:
        text = f.read()
    try:
        import yaml

        return yaml.safe_load(text)
    except ImportError:
        from _mms_compat import simple_yaml

        return simple_yaml.loads(text)


def deprecated(version, replacement="", klass=PendingDeprecationWarning):
    """Marks a function as deprecated: calling it warns that it goes away in `version`."""

    def deprecator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            warnings.warn(
                "{} is deprecated in {} and moved to {}".format(func.__name__, version, replacement), klass, stacklevel=2
            )
            return func(*args, **kwargs)

        return wrapper

    return deprecator
