"""Loading a model (docs/worker-protocol.md §5.1): the handler string, the manifest, TorchServe's
model_yaml_config, then importing the handler module and initialising its entry point."""

import importlib
import importlib.util
import json
import logging
import os
import sys

from _mms_compat.context import Context
from _mms_compat.metrics import MetricsStore
from _mms_compat.packages import missing_package_message

from _mar_worker.torch_env import apply_threads, runtime_line

from _mar_worker.items import can_explain

logger = logging.getLogger("mms_worker")

MAX_MESSAGE_CHARS = 1000


class LoadedModel(object):
    def __init__(self, context, entry):
        self.context = context
        self.entry = entry
        # KServe's :explain is refused (501) for a handler that cannot explain (§3.3)
        self.explains = can_explain(getattr(entry, "__self__", None))


def _one_line(text):
    text = " ".join(str(text).split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def parse_handler(handler):
    """'dir/module[.py][:function]' -> (handler dir or None, module, function)."""
    module_part, _, function_name = handler.partition(":")
    function_name = function_name or "handle"
    handler_dir = None
    if "/" in module_part:
        handler_dir, _, module_part = module_part.rpartition("/")
        handler_dir = handler_dir or "/"
    if module_part.endswith(".py"):
        module_part = module_part[:-3]
    return handler_dir, module_part, function_name


def read_manifest(model_dir):
    path = os.path.join(model_dir, "MAR-INF", "MANIFEST.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("Could not read %s: %s", path, e)
        return None


def read_model_yaml_config(model_dir, manifest):
    """TorchServe's context.model_yaml_config: the manifest's configFile parsed with PyYAML when it is
    installed (as TorchServe does), else with our reader of the simple subset model configs use; {} if
    there is no config file or it cannot be read."""
    try:
        config_file = manifest["model"]["configFile"]
    except (TypeError, KeyError):
        return {}
    if not isinstance(config_file, str) or not config_file:
        return {}
    path = os.path.join(model_dir, config_file)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        logger.warning("model_yaml_config left empty: cannot read %s: %s", config_file, e)
        return {}
    try:
        try:
            import yaml  # optional, as in TorchServe

            parsed = yaml.safe_load(text)
        except ImportError:
            from _mms_compat import simple_yaml  # only for models with a config file (startup time)

            parsed = simple_yaml.loads(text)
    except Exception as e:  # any parser error: the handler still loads
        logger.warning("model_yaml_config left empty: cannot parse %s: %s", config_file, _one_line(e))
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _uuid4():
    """str(uuid.uuid4()) without importing uuid (worker startup time)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return "{}-{}-{}-{}-{}".format(h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def list_classes_from_module(module):
    import inspect  # ~7 ms of worker startup, only needed for class entry points

    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
    ]


# TorchServe's handlers, importable by their bare name: what a manifest's `image_classifier` means when the
# model has no module of that name (TorchServe's model_loader falls back the same way).
BUILTIN_PACKAGE = "ts.torch_handler"


def import_handler_module(module_name, handler_dir):
    """The handler's module: the model's own, else (a bare name only) TorchServe's built-in of that name."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name or handler_dir is not None or "." in module_name:
            raise
        builtin = "{}.{}".format(BUILTIN_PACKAGE, module_name)
        try:
            found = importlib.util.find_spec(builtin) is not None
        except ImportError:
            found = False
        if not found:
            raise
    return importlib.import_module(builtin)


def _explain_missing(e, module_name):
    """A package the handler needs is missing: name the interpreter and how to install it (not for the
    handler module itself, whose absence the message already says)."""
    if isinstance(e, ModuleNotFoundError) and e.name and e.name != module_name:
        raise ModuleNotFoundError(missing_package_message(e.name), name=e.name) from e


def load_model(model_name, model_path, batch_size, handler, gpu_id):
    model_dir = os.path.realpath(model_path)
    handler_dir, module_name, function_name = parse_handler(handler)
    # handler dir first, then the model dir (MMS's PYTHONPATH order); compat stays last.
    for entry in ([model_dir] + ([os.path.join(model_dir, handler_dir)] if handler_dir else [])):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    os.chdir(model_dir)

    manifest = read_manifest(model_dir)
    gpu = None if gpu_id < 0 else gpu_id
    version = os.environ.get("MAR_SERVER_VERSION") or "1.0"
    context = Context(model_name, model_dir, manifest, batch_size, gpu, version)
    context.model_yaml_config = read_model_yaml_config(model_dir, manifest)
    context.metrics = MetricsStore(_uuid4(), model_name)

    importlib.invalidate_caches()
    try:
        module = import_handler_module(module_name, handler_dir)
        entry, initialize, what = resolve_entry_point(module, module_name, function_name)
        apply_threads(context.model_yaml_config)  # before the handler loads weights and runs anything
        initialize(context)  # exceptions propagate: a failed load (as TorchServe)
    except ImportError as e:
        _explain_missing(e, module_name)
        raise
    logger.info("%s", runtime_line(model_name, what, apply_threads(context.model_yaml_config)))
    return LoadedModel(context, entry)


def resolve_entry_point(module, module_name, function_name):
    """(the per-batch callable, its initialiser, what runs as one phrase) as MMS and TorchServe resolve it:
    the module's function if it has one, else its one class."""
    where = "" if module.__name__ == module_name else " (built-in, {})".format(_origin(module))
    entry = getattr(module, function_name, None)
    if entry is not None:
        if not callable(entry):
            raise ValueError("'{}' in module '{}' is not a function".format(function_name, module_name))
        # MMS initialises a function entry point with data=None
        return entry, lambda context: entry(None, context), "{}.{}{}".format(module.__name__, function_name, where)
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        raise ValueError(
            "Expected only one class in custom service code or a function entry point: "
            "module '{}' has no function '{}' and defines {} classes ({})".format(
                module_name, function_name, len(classes), ", ".join(c.__name__ for c in classes) or "none"
            )
        )
    service = classes[0]()
    entry = getattr(service, "handle", None)
    if entry is None:
        raise AttributeError("class {} has no handle(data, context) method".format(classes[0].__name__))
    initialize = getattr(service, "initialize", None) or (lambda context: None)
    return entry, initialize, "{}.{}{}".format(module.__name__, classes[0].__name__, where)


def _origin(module):
    """mar-tools' own copy of a built-in, or the installed TorchServe's (whichever `ts` this Python imports)."""
    path = os.path.realpath(getattr(module, "__file__", "") or "")
    ours = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))
    return "mar-tools" if path.startswith(ours + os.sep) else "from " + path
