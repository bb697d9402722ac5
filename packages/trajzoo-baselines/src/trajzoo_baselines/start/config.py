"""Hyper-parameters and pretraining schedule of START (Jiang et al., ICDE 2023)."""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.config import ConfigClass, check_divisible, check_ordered, ranged

from ..config import PretrainSchedule


@dataclass
class STARTConfig(ConfigClass):
    """Hyper-parameters of START.

    Attributes:
        d_model: hidden size d of TPE-GAT and TAT-Enc.
        gat_layers: TPE-GAT graph attention layers.
        gat_heads: TPE-GAT attention heads per layer (concatenated; must divide ``d_model``).
        use_structural: feed the road graph's structural vector s (N, 6) to TPE-GAT alongside
            the attribute vector u.
        layers: TAT-Enc Transformer layers.
        heads: TAT-Enc attention heads (must divide ``d_model``); each head has its own
            time-interval bias.
        ffn_dim: TAT-Enc feed-forward hidden size.
        dropout: dropout (inputs, attention weights, residual branches, GAT attention).
        interval_hidden: hidden size of the time-interval bias network.
        mask_ratio: fraction of each trajectory's real positions that are span-masked, in (0, 1).
        mean_span_length: mean length (segments) of a masked span, >= 1.
        temperature: tau of the NT-Xent contrastive loss, > 0.
        mask_weight: lambda of the total loss lambda * L_mask + (1 - lambda) * L_con, in [0, 1].
        trim_ratio_min, trim_ratio_max: trajectory trimming removes a fraction r ~ U(min, max)
            of the trajectory from its start or its end (paper: 5-15 %).
        shift_fraction: temporal shifting changes the travel times of this share of the
            segments (paper: about 15 %).
        shift_ratio_min, shift_ratio_max: ... by r ~ U(min, max) of the way toward their mean
            travel time, ``t' = t + r (t_mean - t)`` (paper: 15-30 %).
        activation_checkpointing: recompute each TAT-Enc layer's activations in the backward
            pass instead of keeping them (:mod:`trajzoo.nn.checkpointing`; not in the paper):
            the same numbers, bit for bit, with less memory and about a third more time per
            step. Off by default; for large ``d_model`` / sequence lengths.

    Build from the config's ``hparams`` section with :meth:`trajzoo.config.ConfigClass.from_dict`.

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range, or ``d_model``
            not divisible by ``heads`` / ``gat_heads``; (``from_dict``) unknown keys, naming them.
    """

    d_model: int = ranged(64, ge=1)
    gat_layers: int = ranged(2, ge=1)
    gat_heads: int = ranged(4, ge=1)
    use_structural: bool = True
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    dropout: float = ranged(0.1, ge=0, lt=1)
    interval_hidden: int = ranged(16, ge=1)
    mask_ratio: float = ranged(0.15, gt=0, lt=1)
    mean_span_length: float = ranged(2.0, ge=1)
    temperature: float = ranged(0.05, gt=0)
    mask_weight: float = ranged(0.6, ge=0, le=1)
    trim_ratio_min: float = ranged(0.05, gt=0, lt=1)
    trim_ratio_max: float = ranged(0.15, gt=0, lt=1)
    shift_fraction: float = ranged(0.15, gt=0, le=1)
    shift_ratio_min: float = ranged(0.15, gt=0, le=1)
    shift_ratio_max: float = ranged(0.3, gt=0, le=1)
    activation_checkpointing: bool = False

    def check(self) -> None:
        """``d_model`` divisible by ``heads`` (TAT-Enc) and by ``gat_heads`` (TPE-GAT); ordered
        trimming and shifting ranges."""
        for name in ("heads", "gat_heads"):
            check_divisible(self, "d_model", name)
        check_ordered(self, "trim_ratio_min", "trim_ratio_max")
        check_ordered(self, "shift_ratio_min", "shift_ratio_max")


@dataclass(frozen=True)
class STARTSchedule(PretrainSchedule):
    """Pretraining schedule of START (fields of
    :class:`trajzoo_baselines.training.PretrainSchedule`)."""

    model_name = "start"
