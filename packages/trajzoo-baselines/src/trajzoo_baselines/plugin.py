"""Entry points of the baseline models (group ``trajzoo.models``): ``random``,
``transformer-mlm`` and ``start``.

``pretrain(target, sources, hparams, context)`` takes ``hparams = {"hparams": model config,
"pretrain": schedule}``; every baseline is single-city, so ``sources`` is ignored (and logged).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from trajzoo_metatrl.model import MetaTRLConfig, MetaTRLEncoder

from .common import strict_from_dict
from .start.config import STARTConfig, STARTSchedule
from .start.model import STARTEncoder
from .start.objective import STARTPretrainer
from .training import pretrain_single_city
from .transformer_mlm import TransformerMLMConfig, TransformerMLMEncoder, TransformerMLMPretrainer, TransformerMLMSchedule


@dataclass(frozen=True)
class RandomInitSchedule:
    """The ``random`` baseline has no pretraining schedule: its ``pretrain`` section must be
    empty (``from_dict`` raises ValueError naming any key)."""

    @classmethod
    def from_dict(cls, d: dict) -> "RandomInitSchedule":
        """Raises: ValueError naming every key (there are none to set)."""
        return strict_from_dict(cls, d, "random pretrain (this model is not pretrained)")


class RandomInitPlugin:
    """``random``: the MetaTRL encoder with NO pretraining, the reference that shows what
    pretraining adds. Its weights come from the (caller-seeded) global torch RNG."""

    name = "random"

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`trajzoo_metatrl.model.MetaTRLEncoder` for ``graph`` (N segments, F_u
        attributes) built from :class:`MetaTRLConfig` ``hparams``.

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        return MetaTRLEncoder(graph.num_segments, int(graph.attributes.shape[1]), MetaTRLConfig.from_dict(hparams))

    def pretrain(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """No training: returns a freshly built encoder for the target city on
        ``context.device`` (in eval mode). Adds no history row and writes no checkpoint.

        Raises:
            ValueError: an unknown hparam, or any key in the ``pretrain`` section.
        """
        RandomInitSchedule.from_dict(hparams.get("pretrain", {}))
        if sources:
            context.logger.info("random is a single-city baseline: ignoring source cities %s",
                                [s.name for s in sources])
        context.logger.info("random: no pretraining; returning a freshly initialised MetaTRL encoder for %s",
                            target.name)
        return self.build_encoder(target.graph, hparams.get("hparams", {})).to(context.device).eval()


class TransformerMLMPlugin:
    """``transformer-mlm``: BERT-style road-id Transformer with masked-road pretraining
    (:mod:`trajzoo_baselines.transformer_mlm`)."""

    name = "transformer-mlm"

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`TransformerMLMEncoder` for ``graph`` (uses N only).

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        return TransformerMLMEncoder(graph.num_segments, TransformerMLMConfig.from_dict(hparams))

    def pretrain(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """Masked-road pretraining on the target city's train split
        (:func:`trajzoo_baselines.training.pretrain_single_city`); returns the encoder.

        Raises:
            ValueError: unknown hparam/schedule keys, or an empty train split.
        """
        config = TransformerMLMConfig.from_dict(hparams.get("hparams", {}))
        schedule = TransformerMLMSchedule.from_dict(hparams.get("pretrain", {}))
        model = TransformerMLMPretrainer(target.graph.num_segments, config)
        return pretrain_single_city(model, self.name, config, schedule, target, sources, context).encoder


class STARTPlugin:
    """``start``: START (Jiang et al., ICDE 2023): TPE-GAT + TAT-Enc, span-masked recovery and
    contrastive pretraining (:mod:`trajzoo_baselines.start`)."""

    name = "start"

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`STARTEncoder` for ``graph`` (N segments, F_u attributes).

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        return STARTEncoder(graph.num_segments, int(graph.attributes.shape[1]), STARTConfig.from_dict(hparams))

    def pretrain(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """START pretraining on the target city's train split
        (:func:`trajzoo_baselines.training.pretrain_single_city`); returns the encoder.

        Raises:
            ValueError: unknown hparam/schedule keys, or an empty train split.
        """
        config = STARTConfig.from_dict(hparams.get("hparams", {}))
        schedule = STARTSchedule.from_dict(hparams.get("pretrain", {}))
        model = STARTPretrainer(target.graph.num_segments, int(target.graph.attributes.shape[1]), config)
        return pretrain_single_city(model, self.name, config, schedule, target, sources, context).encoder
