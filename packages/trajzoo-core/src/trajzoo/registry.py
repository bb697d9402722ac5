"""The model contract and the registries of models, tasks and trajectory readers.

Everything pluggable is found through entry points, never through a string-to-class table in
the core (the LibCity anti-pattern of ``../shared/notes/style.md``). A package declares, in its
pyproject::

    [project.entry-points."trajzoo.models"]
    metatrl = "trajzoo_metatrl.plugin:MetaTRLPlugin"

    [project.entry-points."trajzoo.tasks"]
    tte = "trajzoo.tasks.tte:TravelTimeEstimation"

    [project.entry-points."trajzoo.readers"]
    porto_csv = "trajzoo.ingest.porto:read_porto_trips"

and the core finds it with :func:`get_model`, :func:`get_task` and :func:`get_reader`. A name that
is not installed fails with the list of installed names.

One contract serves every model, whatever view of a trip it reads (:class:`ModelPlugin`): the
plugin declares the prepared inputs it needs, the experiment settings it supports, the task kinds
it serves, and implements build / pretrain / save / load / embed / check_config. The workflow has
one ``pretrain`` and one ``evaluate`` rule for all of them.
"""
from __future__ import annotations

import functools

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: building the Snakemake DAG imports this module, not torch
    import numpy as np
    import torch
    from torch import nn

MODEL_GROUP = "trajzoo.models"
TASK_GROUP = "trajzoo.tasks"
READER_GROUP = "trajzoo.readers"

#: Prepared inputs a model may declare: ``roads`` (road graph, road features and map-matched
#: trips), ``points`` (per-fix GPS features), ``grid`` (grid cells with POI semantics),
#: ``images`` (street-view images), ``locations`` (task locations on the road network and the
#: trips passing them, :mod:`trajzoo.locations`).
INPUTS = ("roads", "points", "grid", "images", "locations")
#: Experiment settings (config ``experiments``). ``untrained``: the encoder with random weights,
#: fine-tuned like the others; ``in-city``: pretrained on the target alone; ``cross-city``: the
#: model's own use of source cities and target; ``zero-shot``: pretrained on the sources only and
#: evaluated with no target data; ``few-shot``: the zero-shot model fine-tuned on a fraction of the
#: target's train split.
SETTINGS = ("untrained", "in-city", "cross-city", "zero-shot", "few-shot")
#: Task kinds: ``road`` tasks read road-segment sequences (:class:`trajzoo.tasks.base.Task`),
#: ``point`` tasks read GPS fixes (:class:`trajzoo.tasks.point_base.PointTask`), ``segment``
#: tasks score road-segment representations (``model.segment_embeddings(graph) -> (N, d)``,
#: :class:`trajzoo.tasks.road_label.RoadLabelClassification`), ``location`` tasks label task
#: locations on the road network (:class:`trajzoo.tasks.location.LocationTask`; a model serving
#: them implements :class:`LocationModel`), ``embedding`` tasks score any model's trajectory
#: embeddings without fine-tuning, in the view the model reads
#: (:class:`trajzoo.tasks.similarity.MostSimilarSearch`): every model with ``embed_rows`` serves
#: them. A task may also declare ``required_inputs`` (a subset of :data:`INPUTS`); it then runs
#: only for models reading them.
TASK_KINDS = ("road", "point", "segment", "location", "embedding")


@runtime_checkable
class TrajectoryEncoder(Protocol):
    """What the core needs from a road-sequence encoder (an ``nn.Module``).

    ``forward(batch, graph) -> (B, L, d)`` token states; ``embed(batch, graph) -> (B, d)``
    trajectory representations; ``d_model`` = d.
    """

    d_model: int

    def embed(self, batch, graph) -> torch.Tensor:
        """``(B, d)`` trajectory representations."""


@runtime_checkable
class LocationModel(Protocol):
    """What the core needs from a model that serves ``location`` tasks (an ``nn.Module``).

    ``location_features(inputs, device) -> dict[str, Tensor]``: FROZEN features of every
    location of ``inputs`` (:class:`trajzoo.locations.LocationInputs`, which holds only TRAIN
    trips), each tensor with the locations on its first axis (e.g. ``"loc": (n, d)``,
    ``"traj": (n, K, d)`` with ``"traj_mask": (n, K)`` bool True at padding); computed once
    per model and city (rule ``location_features``).
    ``location_head(features, n_outputs) -> nn.Module``: a fresh trainable head mapping a dict of
    such tensors (a batch of locations) to ``(b, n_outputs)``.
    """

    def location_features(self, inputs, device) -> dict:
        """Frozen per-location features."""

    def location_head(self, features: dict, n_outputs: int) -> nn.Module:
        """A fresh trainable head."""


class ModelPlugin(Protocol):
    """The one model contract: a model package's entry point (group ``trajzoo.models``).

    Attributes:
        name: the entry-point name (``"metatrl"``).
        inputs: prepared inputs it reads, a subset of :data:`INPUTS`.
        settings: experiment settings it supports, a subset of :data:`SETTINGS`. A model that
            reads road-segment ids cannot run ``zero-shot`` (the target's segments are unknown
            to it), and then not ``few-shot`` either.
        task_kinds: task kinds it serves, a subset of :data:`TASK_KINDS`.
        default_setting: the setting of ``results/<city>/<model>.csv``.

    Methods (``city`` arguments are :class:`trajzoo.data.prepared.PreparedCity`):
        check_config(section): validate the model's config section (``hparams``, ``pretrain``,
            ``finetune``, ``variants``) with its own config classes; raises ValueError naming
            the key (``hparams.d_model: ...``). Called when the DAG is built.
        build(target, hparams) -> nn.Module: a fresh model (the ``untrained`` setting);
            ``target`` is None for models whose parameters do not depend on a city.
        pretrain(target, sources, section, context) -> nn.Module: self-supervised
            pretraining; ``target`` is None for zero-shot (sources only), ``sources`` is empty
            for in-city; ``context`` a :class:`trajzoo.training.loop.RunContext`.
        save(path, model, target, meta) / load(path, target, device): persist and rebuild
            (``target`` is None for source-only pretrainings of point models).
        embed(model, city, device) -> (trip_ids, (n, d) float32): representations of every
            train/val/test trip of ``city`` in the view the model reads.

    Optional hooks of the loaded model (not of the plugin): ``eligible_trip_ids(city) -> set``
    restricts a road task's trips to those the model can encode (e.g. SMARTraj2's view filters;
    the rest are counted as rejected ``model_views``); ``segment_embeddings(graph) -> (N, d)``
    serves ``segment`` tasks.

    :class:`trajzoo.plugins.RoadModelPlugin` and :class:`trajzoo.plugins.PointModelPlugin`
    implement everything but the model-specific part.

    Building the Snakemake DAG (every ``snakemake`` call, every SLURM job) loads the plugin and
    reads only its attributes, ``check_config``, ``hparams_cls``, ``unavailable_variants`` and
    ``depends_on``: the plugin module and its config classes import no torch, PyG, scikit-learn
    or SciPy at module level (the model, training and torch are imported inside ``build``,
    ``pretrain``, ``save``, ``load`` and ``embed``); tests/test_dag_imports.py checks it. The same
    holds for task classes (group ``trajzoo.tasks``): ``input_kind``, ``required_inputs`` and
    ``recovered`` are read at DAG time.
    """

    name: str
    inputs: frozenset
    settings: frozenset
    task_kinds: frozenset
    default_setting: str

    def check_config(self, section: dict) -> None:
        """Raise ValueError naming an unknown or out-of-range key of ``section``."""

    def build(self, target, hparams: dict) -> nn.Module:
        """A fresh (untrained) model."""

    def pretrain(self, target, sources: list, section: dict, context) -> nn.Module:
        """Self-supervised pretraining; returns the model to fine-tune."""

    def save(self, path, model: nn.Module, target, meta: dict) -> None:
        """Write the model atomically."""

    def load(self, path, target, device) -> nn.Module:
        """Rebuild a model written by :meth:`save`."""

    def embed(self, model: nn.Module, city, device) -> tuple[list[str], np.ndarray]:
        """Trip ids and ``(n, d)`` float32 trajectory representations."""


@functools.lru_cache(maxsize=None)
def _entry_points(group: str) -> dict:
    """``{name: EntryPoint}`` of the installed group, read once per process: scanning every
    installed distribution costs ~10 ms, and building the default DAG asks ~12,000 times."""
    return {ep.name: ep for ep in entry_points(group=group)}


@functools.lru_cache(maxsize=None)
def _load(group: str, name: str) -> Any:
    found = _entry_points(group)
    if name not in found:
        raise KeyError(f"no {group} entry point named {name!r}; installed: {sorted(found)} "
                       "(is the package installed, e.g. pip install -e packages/trajzoo-<name>?)")
    return found[name].load()


def list_models() -> list[str]:
    """Names of the installed models."""
    return sorted(_entry_points(MODEL_GROUP))


def get_model(name: str) -> ModelPlugin:
    """Instantiate the installed model plugin ``name``.

    Raises:
        KeyError: no such model installed (lists the installed ones).
    """
    return _load(MODEL_GROUP, name)()


def list_tasks() -> list[str]:
    """Names of the installed downstream tasks."""
    return sorted(_entry_points(TASK_GROUP))


def task_class(name: str) -> type:
    """The class of the installed task ``name`` (its ``input_kind`` says which models serve it).

    Raises:
        KeyError: no such task installed.
    """
    return _load(TASK_GROUP, name)


def get_task(name: str, **kwargs):
    """Instantiate the installed downstream task ``name`` with ``kwargs``.

    Raises:
        KeyError: no such task installed.
    """
    return task_class(name)(**kwargs)


def list_readers() -> list[str]:
    """Names of the installed trajectory readers (``cities.<city>.trajectories.format``)."""
    return sorted(_entry_points(READER_GROUP))


def get_reader(name: str):
    """The installed trajectory reader ``name`` (a function, see :mod:`trajzoo.ingest`).

    Raises:
        KeyError: no such reader installed.
    """
    return _load(READER_GROUP, name)
