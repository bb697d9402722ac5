"""Entry point of the MetaTRL model package (group ``trajzoo.models``, name ``metatrl``)."""
from __future__ import annotations

from torch import nn

from .meta_learning import PretrainSchedule, meta_pretrain
from .model import MetaTRLConfig, MetaTRLEncoder


class MetaTRLPlugin:
    """MetaTRL (AAAI 2026): meta-knowledge road encoder, transferable temporal encoder,
    knowledge-fusion trajectory encoder, dual-modal masking, cross-city meta-learning."""

    name = "metatrl"

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`MetaTRLEncoder` for ``graph`` (N segments, F_u attributes)."""
        return MetaTRLEncoder(graph.num_segments, int(graph.attributes.shape[1]), MetaTRLConfig.from_dict(hparams))

    def pretrain(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """Eqs. 1-4 (see :func:`trajzoo_metatrl.meta_learning.meta_pretrain`); returns the
        target encoder. ``hparams`` = ``{"hparams": model config, "pretrain": schedule}``."""
        config = MetaTRLConfig.from_dict(hparams["hparams"])
        schedule = PretrainSchedule.from_dict(hparams["pretrain"])
        return meta_pretrain(target, sources, config, schedule, context).encoder
