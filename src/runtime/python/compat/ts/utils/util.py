"""ts.utils.util: PredictionException plus the label helpers custom handlers use (no torch, no yaml)."""

import inspect
import json
import os

from _mms_compat.errors import PredictionException  # noqa: F401


def list_classes_from_module(module, parent_class=None):
    classes = [
        c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__
    ]
    if parent_class is not None:
        classes = [c for c in classes if issubclass(c, parent_class)]
    return classes


def load_label_mapping(mapping_file_path):
    """Reads an index -> label JSON file (e.g. index_to_name.json); None if the file is missing."""
    if not os.path.isfile(mapping_file_path):
        return None
    with open(mapping_file_path) as f:
        mapping = json.load(f)
    if not isinstance(mapping, dict):
        raise Exception('index -> name JSON mapping should be in "class": "label" format.')
    return mapping


def map_class_to_label(probs, mapping=None, lbl_classes=None):
    """[[p, ...], ...] -> [{label: p, ...}, ...] as TorchServe's helper (plain lists, no tensors)."""
    if not isinstance(probs, list):
        raise Exception("Convert classes to list before doing mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise Exception("Mapping must be a dict")
    if lbl_classes is None:
        lbl_classes = [[str(i) for i in range(len(row))] for row in probs]
    return [
        {(mapping[str(lbl)] if mapping is not None else str(lbl)): prob for lbl, prob in zip(*row)}
        for row in zip(lbl_classes, probs)
    ]
