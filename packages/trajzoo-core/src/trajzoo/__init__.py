"""trajzoo core: data ingest, road networks, map matching, road features, splits, tasks,
metrics and the training loop shared by every trajectory representation model."""

__version__ = "0.1.0"


def load_model(path, device: str = "cpu"):
    """Read a trained-model bundle: ``trajzoo.load_model(path).embed(trips)`` (see :mod:`trajzoo.bundle`).

    Raises:
        FileNotFoundError: ``path`` is not a bundle folder; see :func:`trajzoo.bundle.load_model`.
    """
    from trajzoo.bundle import load_model as _load_model

    return _load_model(path, device)
