"""ts.handler_utils.utils.import_class: a class by its dotted name (optionally under a module prefix)."""

import importlib


def import_class(class_name, module_prefix=None):
    if not class_name:
        raise ImportError("class name is not defined")
    module_name, _, name = class_name.rpartition(".")
    if module_prefix:
        module = importlib.import_module("{}.{}".format(module_prefix, module_name) if module_name else module_prefix)
    elif module_name:
        module = importlib.import_module(module_name)
    else:
        raise ImportError("module name is not defined.")
    cls = getattr(module, name, None)
    if cls is None:
        raise ImportError("class:{} not found in module:{}.".format(name, module_name))
    return cls
