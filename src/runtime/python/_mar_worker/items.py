"""Item rows (docs/worker-protocol.md §3.3): a request whose only parameter is named `mar:items` carries a JSON
array, and the handler sees each element as one entry of `data` (how the server hands a TorchServe-style handler
KServe v1 instances and v2 input tensors, as TorchServe's request envelopes do). The handler's outputs for a row's
items go back as one JSON array in that row's body."""

import json

ITEMS_PARAM = "mar:items"


def items_of(req):
    """The items of an item row, or None for an ordinary request. Always decoded: the envelopes need the JSON."""
    params = req.params
    if len(params) != 1 or params[0][0] != ITEMS_PARAM:
        return None
    items = json.loads(params[0][2])  # bytes or bytearray: json reads UTF-8 itself
    if not isinstance(items, list):
        raise ValueError("the {} parameter of request {} is not a JSON array".format(ITEMS_PARAM, req.request_id))
    return items


def asks_explain(req):
    """TorchServe's explain marker: the request header `explain: True` (its BaseHandler reads request 0's)."""
    explain = None
    for name, value in req.headers:
        if name == "explain":
            explain = value  # the last one, as the context's header table keeps it
    return explain == "True"


def can_explain(service):
    """Whether a handler object explains: TorchServe's get_insights, or an explain_handle, defined by a class
    other than ts's BaseHandler (whose explain_handle calls get_insights, and whose get_insights only raises)."""
    if service is None:
        return False
    for cls in type(service).__mro__:
        if "get_insights" in vars(cls) or "explain_handle" in vars(cls):
            return not (cls.__name__ == "BaseHandler" and cls.__module__.endswith("base_handler"))
    return False


def _plain(value):
    """json.dumps fallback: numpy arrays and scalars, torch tensors (what TorchServe's envelope flattens with numpy)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError("{} is not JSON serializable".format(type(value).__name__))


def expected_outputs(requests, counts):
    """How many outputs the handler must return: one per request or item; None when any number will do (a
    single item row)."""
    if counts is None:
        return len(requests)
    if len(counts) == 1 and counts[0] is not None:
        return None
    return sum(1 if c is None else c for c in counts)


def _json(outputs):
    try:
        return json.dumps(outputs).encode("utf-8")  # the shared encoder: no new JSONEncoder per call
    except TypeError:
        return json.dumps(outputs, default=_plain).encode("utf-8")


def split_outputs(ret, counts):
    """The handler's list cut into one value per request: an item row gets the JSON array of its items' outputs
    (all of `ret` when it is the only request, whatever its length: TorchServe's envelopes take one request),
    an ordinary request its one output; the caller checked the length (expected_outputs). Raises TypeError for
    outputs that are not JSON."""
    if len(counts) == 1 and counts[0] is not None:
        return [_json(ret)]
    rows = []
    pos = 0
    for c in counts:
        if c is None:
            rows.append(ret[pos])
            pos += 1
        else:
            rows.append(_json(ret[pos : pos + c]))
            pos += c
    return rows
