"""What to tell a user whose handler needs a package their worker's Python lacks (one message for the
worker's load failure, BaseHandler without torch and the text classifier's torchtext vocabulary)."""

import sys

# import name -> (what it is called, pip, Debian package or None)
_PACKAGES = {
    "torch": ("PyTorch", "pip install torch", "python3-torch"),
    "torchvision": ("torchvision", "pip install torchvision", "python3-torchvision"),
    "PIL": ("Pillow", "pip install Pillow", "python3-pil"),
    "numpy": ("numpy", "pip install numpy", "python3-numpy"),
    "yaml": ("PyYAML", "pip install PyYAML", "python3-yaml"),
    "torchtext": ("torchtext", "pip install torchtext", None),
    "captum": ("captum", "pip install captum", None),
}


def interpreter():
    """`Python 3.11.2 at /usr/bin/python3`: the worker's interpreter, as users choose it."""
    return "Python {} at {}".format(".".join(str(v) for v in sys.version_info[:3]), sys.executable or "?")


def install_hint(name):
    """How to get package `name` (an import name) for this interpreter, or how to pick another one."""
    top = (name or "").split(".")[0]
    title, pip, debian = _PACKAGES.get(top, (top, "pip install " + top, None))
    how = pip + ("; Debian: apt-get install " + debian if debian else "")
    return "install {} for this interpreter ({}), or run the workers with a Python that has it (--python, the python config key or MAR_PYTHON)".format(
        title, how
    )


def missing_package_message(name):
    """`No module named 'torch' in Python 3.11.7 at /usr/local/bin/python3: install PyTorch ...`"""
    return "No module named '{}' in {}: {}".format(name, interpreter(), install_hint(name))
