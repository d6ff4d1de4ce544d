"""Metrics as MMS has them (mms/metrics/{dimension,unit,metric,metrics_store}.py).

A store collects metrics for one message (the LOAD or one PREDICT batch); the worker prints
every metric after the message as `[METRICS]<str(metric)>`, i.e.
`[METRICS]<Name>.<Unit>:<value>|#<dims>|#hostname:<host>,<epoch_s>[,<request id(s)>]`.
Difference from MMS: `dimensions` given to add_time/add_size/add_percent/add_metric are
honoured (MMS silently drops them).
"""

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


class Metric(object):
    def __init__(self, name, value, unit, dimensions, request_id=None, metric_method=None):
        self.name = name
        self.unit = MetricUnit.units.get(unit, unit) if unit is not None else "unit"
        self.metric_method = metric_method
        self.value = value
        self.dimensions = dimensions
        self.request_id = request_id

    def update(self, value):
        if self.metric_method == "counter":
            self.value += value
        else:
            self.value = value

    def __str__(self):
        dims = ",".join(str(d) for d in self.dimensions)
        if self.request_id:
            return "{}.{}:{}|#{}|#hostname:{},{},{}".format(
                self.name, self.unit, self.value, dims, _HOSTNAME, int(time.time()), self.request_id
            )
        return "{}.{}:{}|#{}|#hostname:{},{}".format(
            self.name, self.unit, self.value, dims, _HOSTNAME, int(time.time())
        )

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


class MetricsStore(object):
    """`MetricsStore(request_ids, model_name)`; request_ids is {batch_idx: id} or one id string."""

    def __init__(self, request_ids, model_name):
        self.store = []
        self.request_ids = request_ids
        self.model_name = model_name
        self.cache = {}

    def _add_or_update(self, name, value, req_id, unit, metrics_method=None, dimensions=None):
        if dimensions is None:
            dimensions = []
        elif not isinstance(dimensions, list):
            raise ValueError("Please provide a list of dimensions")
        else:
            dimensions = list(dimensions)  # never mutate the caller's list
        if req_id is None:
            dimensions.append(Dimension("Level", "Error"))
        else:
            dimensions.append(Dimension("ModelName", self.model_name))
            dimensions.append(Dimension("Level", "Model"))
        key = "{}-{}-{}-{}".format(name, unit, req_id, ",".join(str(d) for d in dimensions))
        metric = self.cache.get(key)
        if metric is None:
            metric = Metric(name, value, unit, dimensions, req_id, metrics_method)
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

    def add_counter(self, name, value, idx=None, dimensions=None):
        self._add_or_update(name, value, self._get_req(idx), "count", "counter", dimensions)

    def add_time(self, name, value, idx=None, unit="ms", dimensions=None):
        if unit not in ["ms", "s"]:
            raise ValueError("the unit for a timed metric should be one of ['ms', 's']")
        self._add_or_update(name, value, self._get_req(idx), unit, None, dimensions)

    def add_size(self, name, value, idx=None, unit="MB", dimensions=None):
        if unit not in ["MB", "kB", "GB", "B"]:
            raise ValueError("The unit for size based metric is one of ['MB','kB', 'GB', 'B']")
        self._add_or_update(name, value, self._get_req(idx), unit, None, dimensions)

    def add_percent(self, name, value, idx=None, dimensions=None):
        self._add_or_update(name, value, self._get_req(idx), "percent", None, dimensions)

    def add_error(self, name, value, dimensions=None):
        self._add_or_update(name, value, None, "", None, dimensions)

    def add_metric(self, name, value, idx=None, unit=None, dimensions=None):
        self._add_or_update(name, value, self._get_req(idx), unit, None, dimensions)
