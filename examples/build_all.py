"""Builds the examples' models in one Python process (torch is imported once):

    python3 build_all.py OUT_DIR [EXAMPLE ...]     (default: every example)

Each example goes to OUT_DIR/<example>/, as its own `build_model.py OUT` would write it.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = ["image_classifier", "mnist", "object_detector", "image_segmenter", "text_classifier"]


def build(name, out_root):
    path = os.path.join(HERE, name, "build_model.py")
    spec = importlib.util.spec_from_file_location("build_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(module._build.out_dir([path, os.path.join(out_root, name)], None))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    names = argv[2:] or EXAMPLES
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        sys.exit("unknown example(s): {}; choose from {}".format(", ".join(unknown), ", ".join(EXAMPLES)))
    for name in names:
        build(name, argv[1])
        print("built", name, flush=True)


if __name__ == "__main__":
    main(sys.argv)
