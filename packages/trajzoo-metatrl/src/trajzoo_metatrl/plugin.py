"""Entry point of the MetaTRL model package (group ``trajzoo.models``, name ``metatrl``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from trajzoo.plugins import RoadModelPlugin

from .config import MetaTRLConfig, PretrainSchedule

if TYPE_CHECKING:  # the model and torch are imported where they are used: building the DAG needs neither
    from torch import nn


class MetaTRLPlugin(RoadModelPlugin):
    """MetaTRL (AAAI 2026): meta-knowledge road encoder, transferable temporal encoder,
    knowledge-fusion trajectory encoder, dual-modal masking, cross-city meta-learning.

    Settings: ``untrained``, ``in-city`` (pretrained on the target alone: eq. 4 without the
    meta phase) and ``cross-city`` (eqs. 1-3 on the source cities, then eq. 4 on the target; the
    default). Road-segment ids make it city-bound: no zero-shot.
    """

    name = "metatrl"
    settings = frozenset({"untrained", "in-city", "cross-city"})
    default_setting = "cross-city"
    hparams_cls = MetaTRLConfig
    schedule_cls = PretrainSchedule

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`MetaTRLEncoder` for ``graph`` (N segments, F_u attributes).

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        from .model import MetaTRLEncoder
        return MetaTRLEncoder(graph.num_segments, int(graph.attributes.shape[1]), MetaTRLConfig.from_dict(hparams))

    def pretrain_road(self, target, sources: list, section: dict, context) -> nn.Module:
        """Eqs. 1-4 (see :func:`trajzoo_metatrl.meta_learning.meta_pretrain`); returns the
        target encoder. ``section`` = ``{"hparams": model config, "pretrain": schedule}``;
        with no sources the meta phase is skipped (in-city)."""
        from .meta_learning import meta_pretrain
        config = MetaTRLConfig.from_dict(section.get("hparams", {}), key="models.metatrl.hparams")
        schedule = PretrainSchedule.from_dict(section.get("pretrain", {}), key="models.metatrl.pretrain")
        return meta_pretrain(target, sources, config, schedule, context).target.encoder
