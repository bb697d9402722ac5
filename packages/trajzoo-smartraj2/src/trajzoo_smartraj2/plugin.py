"""Entry point of the SMARTraj2 model package (group ``trajzoo.models``, name ``smartraj2``)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trajzoo.plugins import check_model_section

from .config import PretrainSchedule, SMARTraj2Config

if TYPE_CHECKING:  # the model, its pretraining and torch are imported where they are used: the DAG needs none
    import numpy as np
    from torch import nn


class SMARTraj2Plugin:
    """SMARTraj2: three views (GPS, route, grid with POI semantics), feature disentanglement,
    personalised gating, multi-city joint pretraining.

    Inputs ``roads``, ``points``, ``grid``. Settings: ``untrained`` (Fig. 3's no pre-training),
    ``in-city`` (pretrained on the target alone) and ``cross-city`` (the default: pretrained jointly
    on the target and the sources, with city-specific extractors and gates). Road-segment and
    cell ids make it city-bound: no zero-shot. Task kinds: ``road`` (every road task, the GPS and
    grid views built from the task's route view) and ``segment`` (road label classification,
    from the route encoder's z_v).
    """

    name = "smartraj2"
    inputs = frozenset({"roads", "points", "grid"})
    task_kinds = frozenset({"road", "segment"})
    settings = frozenset({"untrained", "in-city", "cross-city"})
    default_setting = "cross-city"

    @property
    def finetune_cls(self):
        """:class:`trajzoo.training.loop.FineTuneConfig`."""
        from trajzoo.training.configs import FineTuneConfig
        return FineTuneConfig

    def check_config(self, section: dict) -> None:
        """See :func:`trajzoo.plugins.check_model_section`."""
        check_model_section(section, SMARTraj2Config, PretrainSchedule, self.finetune_cls)

    def build(self, target, hparams: dict) -> nn.Module:
        """A fresh model for the target alone (the ``untrained`` setting), views attached.

        Raises:
            ValueError: no target, or a bad hparam.
        """
        if target is None:
            raise ValueError("smartraj2 reads road-segment and cell ids: it needs the target city")
        from .model import SMARTraj2
        from .pretraining import prepare_city
        config = SMARTraj2Config.from_dict(hparams, key="models.smartraj2.hparams")
        views, spec = prepare_city(target, config)
        model = SMARTraj2([spec], config)
        model.attach_views(views)
        return model

    def pretrain(self, target, sources: list, section: dict, context) -> nn.Module:
        """:func:`trajzoo_smartraj2.pretraining.pretrain_multi_city` on the target and the sources."""
        from .pretraining import pretrain_multi_city
        if target is None:
            raise ValueError("smartraj2 reads road-segment and cell ids: it needs the target city")
        config = SMARTraj2Config.from_dict(section.get("hparams", {}), key="models.smartraj2.hparams")
        schedule = PretrainSchedule.from_dict(section.get("pretrain", {}), key="models.smartraj2.pretrain")
        return pretrain_multi_city([target, *sources], config, schedule, context)

    def save(self, path: Path | str, model: nn.Module, target, meta: dict) -> None:
        """Weights, hparams and the city specs (atomic)."""
        from trajzoo.training.loop import atomic_save
        atomic_save({"model": self.name, "hparams": model.config.to_dict(), "cities": model.cities, "meta": dict(meta),
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, Path(path))

    def load(self, path: Path | str, target, device) -> nn.Module:
        """Rebuild, check the target matches the city it was trained on, attach the target's views.

        Raises:
            ValueError: the target is not among the model's cities, or its road graph or grid
                has another size.
        """
        from trajzoo.training.loop import load_checkpoint

        from .model import SMARTraj2
        from .pretraining import prepare_city
        ckpt = load_checkpoint(Path(path), device)
        config = SMARTraj2Config.from_dict(ckpt["hparams"])
        specs = {c["name"]: c for c in ckpt["cities"]}
        if target.name not in specs:
            raise ValueError(f"{path}: SMARTraj2 trained on {sorted(specs)}, not on {target.name!r}")
        model = SMARTraj2(list(ckpt["cities"]), config)
        model.load_state_dict(ckpt["state_dict"])
        views, spec = prepare_city(target, config)
        saved = specs[target.name]
        for key in ("num_segments", "attribute_dim", "n_cells"):
            if saved[key] != spec[key]:
                raise ValueError(f"{path}: built for {target.name} with {key} = {saved[key]}, the data has {spec[key]}")
        model.attach_views(views)
        return model.to(device)

    def embed(self, model: nn.Module, city, device) -> tuple[list[str], np.ndarray]:
        """Trip ids and ``(n, d)`` float32 H of every train/val/test trip that passes the filters."""
        from trajzoo.training.loop import embed_trips

        from .pretraining import view_rows
        views = model._views[city.name]
        rows = [r for s in ("train", "val", "test") for r in view_rows(city, views, s)]
        return [str(r["trip_id"]) for r in rows], embed_trips(model, city.require("road").graph, rows, 128, device)
