"""trajzoo core: data ingest, road networks, map matching, road features, splits, tasks,
metrics and the training loop shared by every trajectory representation model."""

__version__ = "0.1.0"
