"""A small YAML subset reader for TorchServe's model-config files (context.model_yaml_config).

The worker may not depend on PyYAML, and model configs are simple: block mappings and sequences by
indentation, flow lists/maps (`[a, b]`, `{k: v}`), plain and quoted scalars, comments. Scalars
follow PyYAML (YAML 1.1) as TorchServe uses it: true/false/yes/no/on/off, null/~, ints, floats.
Anything else (anchors, tags, block scalars `|`/`>`, multi-document) raises UnsupportedYaml, and
the caller falls back to {}.
"""

import re


class UnsupportedYaml(ValueError):
    pass


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_OCT = re.compile(r"^[-+]?0[0-7_]+$")
# As PyYAML: a float needs a dot ("1e3" stays a string) and a signed exponent.
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")
# PyYAML's (YAML 1.1) booleans: exactly these spellings.
_BOOLS = {}
for _word, _value in (("true", True), ("yes", True), ("on", True), ("false", False), ("no", False), ("off", False)):
    for _form in (_word, _word.capitalize(), _word.upper()):
        _BOOLS[_form] = _value


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text):
    text = text.strip()
    if text == "":
        return None
    if text[0] in "&*!|>%@`":
        raise UnsupportedYaml("unsupported YAML syntax: {}".format(text[:20]))
    if text[0] == '"':
        if len(text) < 2 or text[-1] != '"':
            raise UnsupportedYaml("unterminated string")
        import json

        return json.loads(text)
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise UnsupportedYaml("unterminated string")
        return text[1:-1].replace("''", "'")
    if text[0] in "[{":
        value, rest = _flow(text, 0)
        if text[rest:].strip():
            raise UnsupportedYaml("trailing text after a flow collection")
        return value
    lower = text.lower()
    if text in ("null", "Null", "NULL", "~"):
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _HEX.match(text):
        return int(text.replace("_", ""), 16)
    if _OCT.match(text):
        return int(text.replace("_", ""), 8)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text.replace("_", ""))
    if lower in (".inf", "+.inf"):
        return float("inf")
    if lower == "-.inf":
        return float("-inf")
    if lower == ".nan":
        return float("nan")
    return text


def _skip_ws(text, pos):
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _flow_token(text, pos, stops):
    start = pos
    quote = None
    while pos < len(text):
        ch = text[pos]
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"') and pos == _skip_ws(text, start):
            quote = ch
        elif ch in stops:
            break
        pos += 1
    return text[start:pos], pos


def _flow_value(text, pos):
    pos = _skip_ws(text, pos)
    if pos < len(text) and text[pos] in "[{":
        return _flow(text, pos)
    token, pos = _flow_token(text, pos, ",]}")
    return _scalar(token), pos


def _flow(text, pos):
    """Parses a flow list/map starting at text[pos]; returns (value, position after it)."""
    is_list = text[pos] == "["
    closer = "]" if is_list else "}"
    items = [] if is_list else {}
    pos += 1
    while True:
        pos = _skip_ws(text, pos)
        if pos >= len(text):
            raise UnsupportedYaml("unterminated flow collection")
        if text[pos] == closer:
            return items, pos + 1
        if is_list:
            value, pos = _flow_value(text, pos)
            items.append(value)
        else:
            key_text, pos = _flow_token(text, pos, ":,}")
            if pos >= len(text) or text[pos] != ":":
                raise UnsupportedYaml("flow map entry without ':'")
            value, pos = _flow_value(text, pos + 1)
            items[_scalar(key_text)] = value
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] != closer:
            raise UnsupportedYaml("expected ',' or '{}' in a flow collection".format(closer))


def _split_key(content):
    """'key: value' -> (key, value text) or None if the line is not a mapping entry."""
    quote = None
    for i, ch in enumerate(content):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"') and i == 0:
            quote = ch
        elif ch == ":" and (i + 1 == len(content) or content[i + 1] in " \t"):
            return _scalar(content[:i]), content[i + 1 :].strip()
        elif ch in "[{" and i == 0:
            return None
    return None


def loads(text):
    lines = []
    for raw in text.splitlines():
        if raw.strip() in ("---", "...") and not lines:
            continue
        if raw.strip() in ("---", "..."):
            raise UnsupportedYaml("multiple documents")
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise UnsupportedYaml("tab indentation")
        line = _strip_comment(raw)
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    if not lines:
        return None
    value, pos = _block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise UnsupportedYaml("unexpected indentation at '{}'".format(lines[pos][1][:30]))
    return value


def _block(lines, pos, indent):
    """Parses the block (mapping or sequence) whose lines start at `indent`."""
    first = lines[pos][1]
    if first == "-" or first.startswith("- "):
        result = []
        while pos < len(lines) and lines[pos][0] == indent and (lines[pos][1] == "-" or lines[pos][1].startswith("- ")):
            rest = lines[pos][1][1:].strip()
            if not rest:
                pos += 1
                if pos < len(lines) and lines[pos][0] > indent:
                    value, pos = _block(lines, pos, lines[pos][0])
                else:
                    value = None
                result.append(value)
            elif _split_key(rest) is not None:
                # "- key: value" starts a mapping whose further keys are indented under the key.
                child_indent = indent + (len(lines[pos][1]) - len(rest))
                sub = [(child_indent, rest)]
                pos += 1
                while pos < len(lines) and lines[pos][0] >= child_indent:
                    sub.append(lines[pos])
                    pos += 1
                value, used = _block(sub, 0, child_indent)
                if used != len(sub):
                    raise UnsupportedYaml("bad indentation in a sequence item")
                result.append(value)
            else:
                result.append(_scalar(rest))
                pos += 1
        return result, pos
    result = {}
    while pos < len(lines) and lines[pos][0] == indent:
        entry = _split_key(lines[pos][1])
        if entry is None:
            raise UnsupportedYaml("expected 'key: value' at '{}'".format(lines[pos][1][:30]))
        key, value_text = entry
        pos += 1
        if value_text:
            result[key] = _scalar(value_text)
        elif pos < len(lines) and (
            lines[pos][0] > indent or (lines[pos][0] == indent and lines[pos][1].startswith("- "))
        ):
            result[key], pos = _block(lines, pos, lines[pos][0])
        else:
            result[key] = None
    return result, pos
