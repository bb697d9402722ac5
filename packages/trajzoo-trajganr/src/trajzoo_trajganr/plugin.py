"""Entry point of the TrajGANR model package (group ``trajzoo.models``, name ``trajganr``).

TrajGANR reads GPS points (``points``) and the task locations with the trajectories passing
them (``locations``, :mod:`trajzoo.locations`) and serves the ``location`` task kind. Settings
``untrained`` and ``in-city`` (pretrained on the target's TRAIN trips); default ``in-city``.
Every baseline and ablation row of ``results/<city>/trajganr.csv`` is a variant of the model
section (``baseline``, ``alignment``, ``modalities``, ``query_time``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from trajzoo.plugins import check_model_section

from .parameters import PretrainConfig, TrajGANRConfig

if TYPE_CHECKING:  # the model, its training and torch are imported where they are used: the DAG needs none
    from .model import TrajGANR

STREETVIEW_EXTRA = "pip install 'trajzoo-trajganr[streetview]' (timm, with a torchvision that works with your torch)"


class TrajGANRPlugin:
    """TrajGANR on the one model contract (:class:`trajzoo.registry.ModelPlugin`)."""

    name = "trajganr"
    inputs = frozenset({"points", "locations"})
    task_kinds = frozenset({"location"})
    settings = frozenset({"untrained", "in-city"})
    default_setting = "in-city"
    hparams_cls = TrajGANRConfig
    schedule_cls = PretrainConfig

    @property
    def finetune_cls(self):
        """:class:`trajzoo.training.location_tasks.LocationFineTuneConfig` (the trained head)."""
        from trajzoo.training.configs import LocationFineTuneConfig
        return LocationFineTuneConfig

    def check_config(self, section: dict) -> None:
        """Check ``hparams`` / ``pretrain`` / ``finetune`` and every variant with the config classes.

        Raises:
            ValueError: naming the key (``hparams: ...``).
        """
        check_model_section(section, self.hparams_cls, self.schedule_cls, self.finetune_cls)

    def unavailable_variants(self, section: dict) -> dict[str, str]:
        """Variants that cannot run on this installation, with the reason: a ``geoclip`` baseline
        without the optional geoclip package (the workflow leaves those rows out with a warning
        naming the install command, instead of failing every DAG)."""
        from .baselines import GEOCLIP_INSTALL, geoclip_available

        out = {}
        for name, over in (section.get("variants") or {}).items():
            hp = {**(section.get("hparams") or {}), **((over or {}).get("hparams") or {})}
            if hp.get("baseline") == "geoclip" and not geoclip_available():
                out[name] = f"the geoclip baseline needs the geoclip package: {GEOCLIP_INSTALL}"
        return out

    @staticmethod
    def check_images(section: dict, images_configured: bool) -> None:
        """When a city has street-view images, the frozen backbone features need timm
        (the ``streetview`` extra) unless the backbone is ``tiny``.

        Raises:
            ValueError: naming the extra to install.
        """
        backbone = (section.get("hparams") or {}).get("image_backbone", TrajGANRConfig().image_backbone)
        if images_configured and backbone != "tiny" and importlib.util.find_spec("timm") is None:
            raise ValueError(f"street-view images are configured, but timm is not installed: {STREETVIEW_EXTRA}")

    def depends_on(self, section: dict) -> list[str]:
        """Zoo models whose in-city pretraining this section reads (the ``foundation`` baseline)."""
        hp = TrajGANRConfig.from_dict(section.get("hparams") or {})
        return [hp.foundation_model] if hp.baseline == "foundation" else []

    def build(self, target, hparams: dict) -> TrajGANR:
        """A fresh model (seeded by the caller); with an image head when the target has image features."""
        from .model import TrajGANR
        images = target.locations.images if target is not None and target.locations is not None else None
        return TrajGANR(TrajGANRConfig.from_dict(hparams or {}), None if images is None else int(images.shape[1]))

    def pretrain(self, target, sources: list, section: dict, context) -> TrajGANR:
        """Eqs. 6-7 on the target's TRAIN view; the ``foundation`` baseline instead pools the
        dependency model's point states on every location; ``geoclip`` trains nothing.

        Raises:
            ValueError: no target, or sources given (in-city only).
        """
        from trajzoo.locations import train_view

        from .model import segment_radius_m
        from .training import pretrain as pretrain_model

        if target is None or sources:
            raise ValueError("trajganr pretrains in-city: it needs the target city and no source city")
        model = self.build(target, section.get("hparams") or {}).to(context.device)
        inputs = train_view(target)
        hp = model.config
        if hp.baseline == "foundation":
            from trajzoo.registry import get_model

            from .baselines import pooled_foundation_features
            path = (section.get("dependencies") or {}).get(hp.foundation_model)
            if not path:
                raise ValueError(f"foundation baseline: no pretraining of {hp.foundation_model!r} given")
            fm = get_model(hp.foundation_model).load(path, target, context.device)
            max_len = int(getattr(getattr(fm, "config", None), "max_len", 128))
            model.fixed_features["traj_pooled"] = pooled_foundation_features(
                fm, inputs, hp.max_trips_per_location, segment_radius_m(inputs.frame), max_len, 1234, context.device)
            context.logger.info("foundation baseline: %s point states pooled on %d locations", hp.foundation_model,
                                len(inputs.table))
            return model
        if hp.baseline == "geoclip":
            return model
        pretrain_model(model, inputs, PretrainConfig.from_dict(section.get("pretrain") or {}), context)
        return model

    def save(self, path: Path | str, model: TrajGANR, target, meta: dict) -> None:
        """Write the model with ``meta`` (training key, variant, seed)."""
        from .training import save_model
        save_model(path, model, {k: v for k, v in meta.items() if k != "hparams"})

    def load(self, path: Path | str, target, device) -> TrajGANR:
        """Rebuild a model written by :meth:`save`."""
        from .training import load_model
        return load_model(path, device)

    def fetch_street_view(self, bbox, out_dir: Path, options: dict, logger):
        """Mapillary download (:func:`trajzoo_trajganr.mapillary.fetch_images`): ``(table, reasons)``."""
        from .mapillary import fetch_images
        return fetch_images(bbox, out_dir, float(options.get("min_quality", 0.5)), int(options.get("max_images", 2000)),
                            logger)

    def image_features(self, paths: list[str], hparams: dict, device) -> np.ndarray:
        """Frozen features ``(n, F)`` of the images with the configured backbone (eq. 1's f)."""
        from .image_encoder import backbone, encode_images
        hp = TrajGANRConfig.from_dict(hparams or {})
        return encode_images(paths, backbone(hp.image_backbone), hp.image_size, device=device)

    def embed(self, model: TrajGANR, city, device) -> tuple[list[str], np.ndarray]:
        """Trip ids and ``(n, d)`` trip representations (mean of the waypoint outputs) of every
        train/val/test trip."""
        rows = [r for s in ("train", "val", "test") for r in city.require("points")[s]]
        frame = city.require("locations").frame
        return [r["trip_id"] for r in rows], model.embed_rows(rows, frame, device).numpy().astype(np.float32)
