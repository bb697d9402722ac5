"""Base classes of model plugins: what every road-sequence model and every GPS-point model shares
in the one contract :class:`trajzoo.registry.ModelPlugin`.

A model package subclasses one of them, names its config classes and implements the model-
specific part (``build_encoder`` + ``pretrain_road`` for road models, ``build_model`` +
``pretrain_points`` for point models). Config checking, save/load, embedding and the shape of
the data handed to pretraining live here once.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: building the Snakemake DAG imports this module
    from torch import nn

#: Keys a variant (``models.<model>.variants.<name>``) may override.
VARIANT_KEYS = ("hparams", "pretrain")


def check_model_section(section: dict, hparams_cls, schedule_cls, finetune_cls) -> None:
    """Validate a model's config section with its own config classes.

    Checks ``hparams``, ``pretrain`` and ``finetune``, then every variant's overrides merged
    onto them (``variants.<name>.hparams``, ``variants.<name>.pretrain``).

    Args:
        section: ``config["models"][name]``.
        hparams_cls, schedule_cls, finetune_cls: classes with ``from_dict(d)`` raising
            ValueError on an unknown or out-of-range key.

    Raises:
        ValueError: ``"<part>: <the class's message>"`` (``hparams: unknown ... 'd_modle'``), or
            ``"variants.<name>.<part>: ..."``; an unknown key of a variant.
    """
    parts = {"hparams": hparams_cls, "pretrain": schedule_cls, "finetune": finetune_cls}
    for part, cls in parts.items():
        try:
            cls.from_dict(dict(section.get(part) or {}))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{part}: {exc}") from None
    for name, over in (section.get("variants") or {}).items():
        unknown = sorted(set(over or {}) - set(VARIANT_KEYS))
        if unknown:
            raise ValueError(f"variants.{name}: unknown key(s) {unknown}; a variant overrides {list(VARIANT_KEYS)}")
        for part in VARIANT_KEYS:
            if part in (over or {}):
                try:
                    parts[part].from_dict({**(section.get(part) or {}), **(over[part] or {})})
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"variants.{name}.{part}: {exc}") from None


class RoadModelPlugin:
    """Base of models that read map-matched road-segment sequences (input ``roads``).

    Such a model's parameters include per-segment tables of the city it is trained on, so it
    supports ``untrained`` and ``in-city`` (and ``cross-city`` when it has its own use of source
    cities), never ``zero-shot``. Subclasses set ``name``, ``hparams_cls``, ``schedule_cls``
    and implement :meth:`build_encoder` and :meth:`pretrain_road`.
    """

    name = ""
    inputs = frozenset({"roads"})
    task_kinds = frozenset({"road"})
    settings = frozenset({"untrained", "in-city"})
    default_setting = "in-city"
    hparams_cls: type = None
    schedule_cls: type = None

    @property
    def finetune_cls(self):
        """:class:`trajzoo.training.loop.FineTuneConfig` (a linear head on the encoder)."""
        from trajzoo.training.configs import FineTuneConfig
        return FineTuneConfig

    def check_config(self, section: dict) -> None:
        """See :func:`check_model_section`."""
        check_model_section(section, self.hparams_cls, self.schedule_cls, self.finetune_cls)

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh encoder for ``graph`` (:class:`trajzoo.data.batch.RoadGraph`, N segments)."""
        raise NotImplementedError

    def pretrain_road(self, target, sources: list, section: dict, context) -> nn.Module:
        """Pretraining on :class:`trajzoo.data.city.CityData` (target, sources); returns the encoder."""
        raise NotImplementedError

    def build(self, target, hparams: dict) -> nn.Module:
        """A fresh encoder for the target's road graph (weights from the caller-seeded torch RNG).

        Raises:
            ValueError: the target has no road view.
        """
        return self.build_encoder(target.require("road").graph, hparams)

    def pretrain(self, target, sources: list, section: dict, context) -> nn.Module:
        """:meth:`pretrain_road` on the road views of the target and the sources.

        Raises:
            ValueError: no target (road models cannot pretrain on sources only).
        """
        if target is None:
            raise ValueError(f"{self.name} reads road-segment ids: it needs the target city's data")
        return self.pretrain_road(target.require("road"), [s.require("road") for s in sources], section, context)

    def save(self, path: Path | str, model: nn.Module, target, meta: dict) -> None:
        """Write weights, hparams and the target road graph's N and F_u
        (:func:`trajzoo.training.loop.save_encoder`)."""
        from trajzoo.training.loop import save_encoder
        save_encoder(Path(path), model, self.name, dict(meta.get("hparams", {})), target.require("road").graph)

    def load(self, path: Path | str, target, device) -> nn.Module:
        """Rebuild for the target's road graph (:func:`trajzoo.training.loop.load_encoder`).

        Raises:
            ValueError: the file was written for a road graph of another size.
        """
        from trajzoo.training.loop import load_encoder
        return load_encoder(Path(path), target.require("road").graph, device)

    def embed(self, model: nn.Module, city, device) -> tuple[list[str], np.ndarray]:
        """Trip ids and ``(n, d)`` float32 embeddings of every train/val/test matched trip."""
        from trajzoo.data.city import trip_rows
        from trajzoo.training.loop import embed_trips
        road = city.require("road")
        return list(road.trips["trip_id"]), embed_trips(model, road.graph, trip_rows(road.trips), 128, device)

    def embed_rows(self, model: nn.Module, rows: list[dict], device, graph=None, city: str = "",
                   batch_size: int = 128) -> np.ndarray:
        """``(n, d)`` float32 embeddings of any road-sequence rows (:func:`trajzoo.data.city.trip_rows`
        dicts: ``roads``, ``seconds``, ``day_of_week``, ``minute_of_day``) on ``graph`` (the
        :class:`~trajzoo.data.batch.RoadGraph` the model was built for), in eval mode. Used by
        :meth:`embed`, the similarity task and :mod:`trajzoo.bundle` (new trips).

        Raises:
            ValueError: no ``graph``.
        """
        from trajzoo.training.loop import embed_trips
        if graph is None:
            raise ValueError(f"{self.name}: embedding road-segment rows needs the road graph")
        return embed_trips(model, graph, rows, batch_size, device)


class PointModelPlugin:
    """Base of models that read raw GPS fixes (input ``points``): no city-bound parameters, so
    they support every setting including ``zero-shot`` and ``few-shot``. Subclasses set
    ``name``, ``hparams_cls``, ``schedule_cls`` and implement :meth:`build_model`,
    :meth:`pretrain_points`, :meth:`save_model` and :meth:`load_model`."""

    name = ""
    inputs = frozenset({"points"})
    task_kinds = frozenset({"point"})
    settings = frozenset({"untrained", "in-city", "zero-shot", "few-shot"})
    default_setting = "zero-shot"
    hparams_cls: type = None
    schedule_cls: type = None

    @property
    def finetune_cls(self):
        """:class:`trajzoo.training.point_tasks.PointFineTuneConfig`."""
        from trajzoo.training.configs import PointFineTuneConfig
        return PointFineTuneConfig

    def check_config(self, section: dict) -> None:
        """See :func:`check_model_section`."""
        check_model_section(section, self.hparams_cls, self.schedule_cls, self.finetune_cls)

    def build(self, target, hparams: dict) -> nn.Module:
        """A fresh model (``target`` is not used: no city-bound parameters)."""
        return self.build_model(hparams)

    def pretrain(self, target, sources: list, section: dict, context) -> nn.Module:
        """Build a model from ``section["hparams"]`` and pretrain it on the TRAIN rows of every
        training city (target first, then sources), logging the VAL rows' loss.

        Raises:
            ValueError: no training city.
        """
        cities = ([target] if target is not None else []) + list(sources)
        if not cities:
            raise ValueError(f"{self.name}: pretraining needs at least one city")
        rows = {c.name: c.require("points")["train"] for c in cities}
        val_rows = {c.name: c.require("points")["val"] for c in cities}
        for c in cities:
            context.logger.info("%s: %d train and %d val trajectories (test and unused trips are never read)",
                                c.name, len(rows[c.name]), len(val_rows[c.name]))
        model = self.build_model(section.get("hparams", {})).to(context.device)
        self.pretrain_points(model, rows, section.get("pretrain", {}), context, val_rows)
        return model

    def save(self, path: Path | str, model: nn.Module, target, meta: dict) -> None:
        """Write the model with ``meta`` (training cities, variant, seed)."""
        self.save_model(path, model, meta)

    def load(self, path: Path | str, target, device) -> nn.Module:
        """Rebuild a model written by :meth:`save` (``target`` is not used)."""
        return self.load_model(path, device)

    def embed(self, model: nn.Module, city, device) -> tuple[list[str], np.ndarray]:
        """Trip ids and ``(n, d)`` float32 embeddings (``model.embed(batch)``) of every
        train/val/test trip with point features, the first ``max_len`` points of each."""
        rows = [r for split in ("train", "val", "test") for r in city.require("points")[split]]
        return [r["trip_id"] for r in rows], self.embed_rows(model, rows, device, city=city.name)

    def embed_rows(self, model: nn.Module, rows: list[dict], device, graph=None, city: str = "",
                   batch_size: int = 128) -> np.ndarray:
        """``(n, d)`` float32 embeddings (``model.embed(batch)``, eval mode) of any point rows
        (:func:`trajzoo.data.points.point_rows` dicts), the first ``max_len`` points of each;
        ``city`` is the city key the collate records, ``graph`` is not used."""
        import torch

        from trajzoo.data.points import iterate_point_batches
        model.eval().to(device)
        out = []
        with torch.no_grad():
            for batch in iterate_point_batches(rows, batch_size, city, model.config.max_len):
                out.append(model.embed(batch.to(device)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, model.config.d_model), dtype=np.float32)

    def build_model(self, hparams: dict) -> nn.Module:
        """A fresh model from ``hparams``."""
        raise NotImplementedError

    def pretrain_points(self, model, rows_by_city, schedule: dict, context, val_rows_by_city) -> list[dict]:
        """Pretrain ``model`` in place; returns the history."""
        raise NotImplementedError

    def save_model(self, path, model, meta: dict) -> None:
        """Write the model."""
        raise NotImplementedError

    def load_model(self, path, device) -> nn.Module:
        """Read the model."""
        raise NotImplementedError
