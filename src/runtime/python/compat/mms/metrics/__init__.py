"""mms.metrics: MetricsStore and friends (MMS's module layout; no psutil system metrics)."""
