"""Metrics as MMS has them (mms/metrics/{dimension,unit,metric,metrics_store}.py), plus the names
TorchServe 0.9+ handlers call (ts/metrics: MetricTypes, add_metric's unit-first order, get_metric).

A store collects metrics for one message (the LOAD or one PREDICT batch); the worker prints
every metric after the message as `[METRICS]<str(metric)>`, i.e.
`[METRICS]<Name>.<Unit>:<value>|#<dims>[|#type:<TYPE>]|#hostname:<host>,<epoch_s>[,<request id(s)>]`
(the type segment, TorchServe's, only for metrics given a MetricTypes). Difference from MMS:
`dimensions` given to add_time/add_size/add_percent/add_metric are honoured (MMS silently drops them).
"""

import enum
import logging
import socket
import time

_HOSTNAME = socket.gethostname()


class Dimension(object):
    def __init__(self, name, value):
        self.name = name
        self.value = value

    def __str__(self):
        return "{}:{}".format(self.name, self.value)

    def to_dict(self):
        return {"Name": self.name, "Value": self.value}


class MetricUnit(object):
    units = {
        "ms": "Milliseconds",
        "s": "Seconds",
        "percent": "Percent",
        "count": "Count",
        "MB": "Megabytes",
        "GB": "Gigabytes",
        "kB": "Kilobytes",
        "B": "Bytes",
        "": "unit",
    }


class MetricTypes(enum.Enum):
    """TorchServe's metric types (ts.metrics.metric_type_enum)."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class MetricsCacheKeyError(KeyError):
    """get_metric() of a metric never added (TorchServe: ts.metrics.metric_cache_errors)."""


def _unit_name(unit):
    return MetricUnit.units.get(unit, unit) if unit is not None else "unit"


class Metric(object):
    def __init__(self, name, value, unit, dimensions, request_id=None, metric_method=None, metric_type=None):
        self.name = name
        self.unit = _unit_name(unit)
        self.metric_method = metric_method
        self.metric_type = metric_type
        self.value = value
        self.dimensions = dimensions
        self.request_id = request_id

    def update(self, value):
        if self.metric_method == "counter":
            self.value += value
        else:
            self.value = value

    def __str__(self):
        return _line(self.name, self.unit, self.value, self.dimensions, self.metric_type, self.request_id)

    def to_dict(self):
        return {
            "MetricName": self.name,
            "Value": self.value,
            "Unit": self.unit,
            "Dimensions": [d.to_dict() for d in self.dimensions],
            "Timestamp": int(time.time()),
            "HostName": _HOSTNAME,
            "RequestId": self.request_id,
        }


def _line(name, unit, value, dimensions, metric_type, request_id):
    """One metric as printed after `[METRICS]` (MMS's format; TorchServe's `|#type:` when typed)."""
    dims = ",".join(str(d) for d in dimensions)
    kind = "|#type:" + metric_type.name if isinstance(metric_type, MetricTypes) else ""
    text = "{}.{}:{}|#{}{}|#hostname:{},{}".format(name, unit, value, dims, kind, _HOSTNAME, int(time.time()))
    return text + "," + str(request_id) if request_id else text


class CachingMetric(object):
    """A metric declared once (TorchServe's add_metric_to_cache / get_metric) and updated any time later:
    each add_or_update prints its `[METRICS]` line at once, as TorchServe's CachingMetric does, because the
    handler keeps the object across batches while the worker's per-batch store changes."""

    def __init__(self, metric_name, unit, dimension_names=None, metric_type=MetricTypes.COUNTER):
        self.metric_name = metric_name
        self.unit = _unit_name(unit)
        self.dimension_names = list(dimension_names or [])
        self.metric_type = metric_type

    def add_or_update(self, value, dimension_values=None, request_id=""):
        values = list(dimension_values or [])
        if len(values) != len(self.dimension_names):
            logging.getLogger(__name__).error(
                "Failed to update metric %s: dimension values %s do not match the names %s",
                self.metric_name, values, self.dimension_names,
            )
            return
        if self.metric_type == MetricTypes.COUNTER and value < 0:
            logging.getLogger(__name__).error("Failed to update metric %s: a counter cannot decrease", self.metric_name)
            return
        dims = [Dimension(n, v) for n, v in zip(self.dimension_names, values)]
        logging.getLogger(__name__).info(
            "[METRICS]%s", _line(self.metric_name, self.unit, value, dims, self.metric_type, request_id)
        )

    def update(self, value, request_id="", dimensions=None):
        """TorchServe's backwards-compatible form: dimensions as Dimension objects."""
        dimensions = dimensions or []
        self.dimension_names = [d.name for d in dimensions]
        self.add_or_update(value, [d.value for d in dimensions], request_id)


# Metrics declared with add_metric_to_cache, for the life of the worker (one model per process): the worker
# gives each batch a new store, and a handler that declared a metric at load finds it again with get_metric.
_DECLARED = {}


class MetricsStore(object):
    """`MetricsStore(request_ids, model_name)`; request_ids is {batch_idx: id} or one id string."""

    def __init__(self, request_ids, model_name):
        self.store = []
        self.request_ids = request_ids
        self.model_name = model_name
        self.cache = {}

    def _add_or_update(self, name, value, req_id, unit, metrics_method=None, dimensions=None, metric_type=None):
        if dimensions is None:
            dimensions = []
        elif not isinstance(dimensions, list):
            raise ValueError("Please provide a list of dimensions")
        else:
            dimensions = list(dimensions)  # never mutate the caller's list
        names = [d.name for d in dimensions]
        # TorchServe adds these only when the caller did not name them; MMS always adds them.
        if req_id is None:
            if metric_type is None or "Level" not in names:
                dimensions.append(Dimension("Level", "Error"))
        else:
            if metric_type is None or "ModelName" not in names:
                dimensions.append(Dimension("ModelName", self.model_name))
            if metric_type is None or "Level" not in names:
                dimensions.append(Dimension("Level", "Model"))
        key = "{}-{}-{}-{}".format(name, unit, req_id, ",".join(str(d) for d in dimensions))
        metric = self.cache.get(key)
        if metric is None:
            metric = Metric(name, value, unit, dimensions, req_id, metrics_method, metric_type)
            self.store.append(metric)
            self.cache[key] = metric
        else:
            metric.update(value)

    def _get_req(self, idx):
        req_id = self.request_ids
        if isinstance(req_id, dict):
            req_id = ",".join(str(v) for v in self.request_ids.values())
        if idx is not None and isinstance(self.request_ids, dict) and idx in self.request_ids:
            req_id = self.request_ids[idx]
        return req_id

    def set_request_ids(self, request_ids):
        self.request_ids = request_ids

    def add_counter(self, name, value, idx=None, dimensions=None, metric_type=None):
        self._add_or_update(name, value, self._get_req(idx), "count", "counter", dimensions, metric_type)

    def add_time(self, name, value, idx=None, unit="ms", dimensions=None, metric_type=None):
        if unit not in ["ms", "s"]:
            raise ValueError("the unit for a timed metric should be one of ['ms', 's']")
        self._add_or_update(name, value, self._get_req(idx), unit, None, dimensions, metric_type)

    def add_size(self, name, value, idx=None, unit="MB", dimensions=None, metric_type=None):
        if unit not in ["MB", "kB", "GB", "B"]:
            raise ValueError("The unit for size based metric is one of ['MB','kB', 'GB', 'B']")
        self._add_or_update(name, value, self._get_req(idx), unit, None, dimensions, metric_type)

    def add_percent(self, name, value, idx=None, dimensions=None, metric_type=None):
        self._add_or_update(name, value, self._get_req(idx), "percent", None, dimensions, metric_type)

    def add_error(self, name, value, dimensions=None):
        self._add_or_update(name, value, None, "", None, dimensions)

    def add_metric(self, name, value, *args, **kwargs):
        """MMS: add_metric(name, value, idx=None, unit=None, dimensions=None).
        TorchServe: add_metric(name, value, unit, idx=None, dimensions=[], metric_type=MetricTypes.COUNTER).
        A string third argument is TorchServe's unit (MMS's idx is a batch index); keywords work for both."""
        torchserve = bool(args) and isinstance(args[0], str)
        order = ("unit", "idx", "dimensions", "metric_type") if torchserve else ("idx", "unit", "dimensions", "metric_type")
        if len(args) > len(order):
            raise TypeError("add_metric() takes at most {} positional arguments after the value".format(len(order)))
        params = dict(zip(order, args))
        for key, value_ in kwargs.items():
            if key not in order or key in params:
                raise TypeError("add_metric() got an unexpected or repeated argument '{}'".format(key))
            params[key] = value_
        metric_type = params.get("metric_type")
        if torchserve and metric_type is None:
            metric_type = MetricTypes.COUNTER
        self._add_or_update(
            name, value, self._get_req(params.get("idx")), params.get("unit"), None, params.get("dimensions"), metric_type
        )

    def add_metric_to_cache(self, metric_name, unit, dimension_names=None, metric_type=MetricTypes.COUNTER):
        """TorchServe: declares a metric; update it with the returned object's add_or_update(value, dimension_values)."""
        metric = CachingMetric(metric_name, unit, dimension_names, metric_type)
        _DECLARED[(metric_name, metric_type)] = metric
        return metric

    def get_metric(self, metric_name, metric_type=MetricTypes.COUNTER):
        """TorchServe: a metric declared with add_metric_to_cache (MetricsCacheKeyError if there is none)."""
        try:
            return _DECLARED[(metric_name, metric_type)]
        except KeyError:
            raise MetricsCacheKeyError(
                "Metric of type {} and name {} doesn't exist: declare it with add_metric_to_cache".format(
                    metric_type, metric_name
                )
            )
