"""Hyper-parameters and pretraining schedule of START (Jiang et al., ICDE 2023)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common import strict_from_dict
from ..training import PretrainSchedule


@dataclass
class STARTConfig:
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
        min_keep_fraction: trajectory trimming keeps at least this fraction of the real
            positions (a contiguous window), in (0, 1].
        max_shift_minutes: temporal shifting moves a trajectory's minute-of-day (and day of week
            on wrap-around) by an integer offset drawn uniformly from
            [-max_shift_minutes, max_shift_minutes], >= 0.

    Raises:
        ValueError: (on construction) a value out of range; (``from_dict``) unknown keys.
    """

    d_model: int = 64
    gat_layers: int = 2
    gat_heads: int = 4
    use_structural: bool = True
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.1
    interval_hidden: int = 16
    mask_ratio: float = 0.15
    mean_span_length: float = 2.0
    temperature: float = 0.05
    mask_weight: float = 0.6
    min_keep_fraction: float = 0.6
    max_shift_minutes: int = 60

    def __post_init__(self) -> None:
        for name in ("d_model", "gat_layers", "gat_heads", "layers", "heads", "ffn_dim", "interval_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("heads", "gat_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"d_model={self.d_model} is not divisible by {name}={getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.mean_span_length < 1.0:
            raise ValueError(f"mean_span_length must be >= 1, got {self.mean_span_length}")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.mask_weight <= 1.0:
            raise ValueError(f"mask_weight must be in [0, 1], got {self.mask_weight}")
        if not 0.0 < self.min_keep_fraction <= 1.0:
            raise ValueError(f"min_keep_fraction must be in (0, 1], got {self.min_keep_fraction}")
        if int(self.max_shift_minutes) < 0:
            raise ValueError(f"max_shift_minutes must be >= 0, got {self.max_shift_minutes}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "STARTConfig":
        """Build from the config's ``hparams`` section; missing keys take defaults.

        Raises:
            ValueError: naming every unknown key, or a value out of range.
        """
        return strict_from_dict(cls, d, "start hparams")


@dataclass(frozen=True)
class STARTSchedule(PretrainSchedule):
    """Pretraining schedule of START (fields of
    :class:`trajzoo_baselines.training.PretrainSchedule`)."""

    model_name = "start"
