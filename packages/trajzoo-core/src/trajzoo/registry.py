"""Model and task registries, filled by installed packages through entry points.

A model package declares, in its pyproject::

    [project.entry-points."trajzoo.models"]
    metatrl = "trajzoo_metatrl.plugin:MetaTRLPlugin"

and the core finds it with :func:`get_model`. No string-to-class table lives in the core: a model
that is not installed, or whose entry point does not import, fails here with its name.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

MODEL_GROUP = "trajzoo.models"
TASK_GROUP = "trajzoo.tasks"


@runtime_checkable
class TrajectoryEncoder(Protocol):
    """What the core needs from a pretrained encoder (an ``nn.Module``).

    ``forward(batch, graph) -> (B, L, d)`` token states; ``embed(batch, graph) -> (B, d)``
    trajectory representations; ``d_model`` = d.
    """

    d_model: int

    def embed(self, batch, graph) -> torch.Tensor:
        """``(B, d)`` trajectory representations."""


class ModelPlugin(Protocol):
    """A road-network model package's entry point (raw-GPS models follow :class:`PointModelPlugin`).

    Methods:
        build_encoder(graph, hparams) -> nn.Module: a fresh encoder for a city's road graph.
        pretrain(target, sources, hparams, context) -> nn.Module: self-supervised pretraining on
            the target city (and the source cities, for cross-city models); ``context`` is a
            :class:`trajzoo.training.loop.RunContext` (device, seed, checkpoint dir, logger).
    """

    name: str

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh encoder for ``graph``."""

    def pretrain(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """Self-supervised pretraining; returns the target encoder."""


class PointModelPlugin(Protocol):
    """A raw-GPS model package's entry point (``kind = "points"``, e.g. TransferTraj): it works on
    :class:`trajzoo.data.points.PointBatch` es, has no road graph and no ``build_encoder``.

    Methods:
        build(hparams) -> nn.Module: a fresh model with ``predict(batch) -> {"xy", "t_minutes"}``
            (the contract of :mod:`trajzoo.training.point_tasks`).
        pretrain(model, rows_by_city, schedule, context) -> list[dict]: self-supervised
            pretraining in place on the point rows of every city; returns the history.
        save(path, model) / load(path, device): persist and rebuild a model.
    """

    name: str
    kind: str

    def build(self, hparams: dict) -> nn.Module:
        """A fresh point model."""

    def pretrain(self, model: nn.Module, rows_by_city: dict, schedule: dict, context) -> list[dict]:
        """Self-supervised pretraining; returns the per-epoch history."""


def _load(group: str, name: str) -> Any:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        raise KeyError(f"no {group} entry point named {name!r}; installed: {sorted(found)} "
                       "(is the package installed, e.g. pip install -e packages/trajzoo-<name>?)")
    return found[name].load()


def list_models() -> list[str]:
    """Names of the installed models."""
    return sorted(ep.name for ep in entry_points(group=MODEL_GROUP))


def get_model(name: str) -> ModelPlugin:
    """Instantiate the installed model plugin ``name``.

    Raises:
        KeyError: no such model installed (lists the installed ones).
    """
    return _load(MODEL_GROUP, name)()


def list_tasks() -> list[str]:
    """Names of the installed downstream tasks."""
    return sorted(ep.name for ep in entry_points(group=TASK_GROUP))


def get_task(name: str, **kwargs):
    """Instantiate the installed downstream task ``name`` with ``kwargs``.

    Raises:
        KeyError: no such task installed.
    """
    return _load(TASK_GROUP, name)(**kwargs)
