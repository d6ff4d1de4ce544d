"""Compares model-server's answers with expected.json (the model called directly): every label and list
length must match, every number within 1e-5 (relative for numbers above 1: a box corner at 170 px is only
exact to 1.5e-5 in float32).

    python3 check_answers.py EXPECTED.json PREDICT.json NAME...    # `model-server predict --json` output; NAME: input file names, in order
    python3 check_answers.py EXPECTED.json --answers DIR            # DIR/<input file name>: one HTTP answer each

Exit status 0 when all match, 1 (with the first difference) otherwise.
"""

import json
import math
import os
import sys

TOLERANCE = 1e-5


def compare(expected, actual, where):
    """None when equal (numbers within TOLERANCE), else where and how they differ."""
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return None if expected == actual else "{}: expected {!r}, got {!r}".format(where, expected, actual)
    if isinstance(expected, (int, float)):
        if isinstance(actual, (int, float)) and not isinstance(actual, bool) and math.isclose(expected, actual, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            return None
        return "{}: expected {!r}, got {!r}".format(where, expected, actual)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return "{}: expected a list of {}, got {!r:.80}".format(where, len(expected), actual)
        for i, (e, a) in enumerate(zip(expected, actual)):
            diff = compare(e, a, "{}[{}]".format(where, i))
            if diff:
                return diff
        return None
    if not isinstance(actual, dict) or list(actual) != list(expected):
        return "{}: expected the keys {}, got {!r:.200}".format(where, list(expected), actual)
    for key in expected:
        diff = compare(expected[key], actual[key], "{}.{}".format(where, key))
        if diff:
            return diff
    return None


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        expected = json.load(f)
    if argv[2] == "--answers":
        answers = {}
        for name in expected:
            with open(os.path.join(argv[3], name)) as f:
                answers[name] = json.load(f)
    else:
        with open(argv[2]) as f:
            results = json.load(f)
        names = argv[3:]
        answers = {name: json.loads(r["body"]) for name, r in zip(names, results) if r.get("status") == 200}
    for name in expected:
        if name not in answers:
            sys.exit("{}: no answer".format(name))
        diff = compare(expected[name], answers[name], name)
        if diff:
            sys.exit("MISMATCH " + diff)
    print("ok: {} answers equal the direct model call (within {})".format(len(expected), TOLERANCE))


if __name__ == "__main__":
    main(sys.argv)
