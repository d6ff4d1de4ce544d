"""ts.metrics: the metric names TorchServe handlers import (MetricTypes, Dimension, the stores)."""
