"""Hyper-parameters of TransferTraj (arXiv 2505.12672), validated.

Source: TransferTraj paper, section "Experiments / Implementation details" and the
hyper-parameter study: the paper's best setting is d = 128, L = 2 RTTE blocks, C = 8 experts with
k = 4 active experts (:data:`PAPER_PRESET`). The dataclass defaults are sized for 2 CPU cores
(see the package README section): same architecture, smaller width. Units are part of the
field names where they matter (``_m`` metres, ``_min`` minutes).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from trajzoo.config import strict_from_dict

#: The paper's best configuration (d = 128, L = 2, C = 8, k = 4); everything else default.
PAPER_PRESET: dict[str, Any] = {"d_model": 128, "layers": 2, "heads": 4, "ffn_dim": 256, "experts": 8,
                                "top_k": 4}


@dataclass
class TransferTrajConfig:
    """Hyper-parameters of the TransferTraj model and of its pretraining masks and loss.

    Attributes:
        d_model: hidden size d of every token (paper: 128).
        layers: number L of RTTE blocks (TRIE attention + SC-MoE; paper: 2).
        heads: attention heads (d_model must be divisible by heads; the head size must be even
            for the TRIE rotation).
        ffn_dim: hidden size of each expert feed-forward network (and of the single FFN of the
            ``use_moe=False`` ablation, and of the point FFN after modality mixing).
        experts: number C of SC-MoE experts (paper: 8).
        top_k: experts active per point (paper: 4).
        dropout: dropout probability (0 on CPU: it roughly doubles the cost).
        use_trie: False -> ablation "w/o TRIE": plain attention plus an absolute sinusoidal
            encoding of the points' x, y.
        use_moe: False -> ablation "w/o SC-MoE": one feed-forward network per block.
        moe_dispatch: ``"dense"`` (every expert computes every point, outputs combined with the
            sparse gate weights; no Python loop over experts) or ``"sparse"`` (each expert computes
            only its routed points; a loop of C iterations). Same numbers up to rounding.
        load_balance_weight: weight of the SC-MoE load-balancing term added to the loss.
        gate_noise: scale of the noisy top-k gating noise during training (0 = no noise).
        gate_hidden: hidden size of the gating MLP that reads the local spatial context.
        trie_min_wavelength_m, trie_max_wavelength_m: initial range (metres) of the wavelengths of
            the learnable TRIE frequencies (log-spaced).
        trie_learnable: whether the TRIE frequencies are trained (paper: learnable).
        spatial_scale_m: metres per unit of the spatial modality input and of the x, y head
            output (1000: kilometres).
        time_scale_min: minutes per unit of the elapsed-time modality input and of the time
            head output.
        p_spatial, p_temporal, p_span: probabilities of the three pretraining mask kinds (spatial
            modality, temporal modality, sub-sequence); normalised to sum to 1.
        modality_ratio_min, modality_ratio_max: range of the per-trajectory fraction of points
            (excluding the origin) whose spatial or temporal modality is hidden.
        span_ratio_min, span_ratio_max: range of the per-trajectory fraction of points covered by
            the hidden sub-sequence.
        spatial_loss_weight: weight of the x, y recovery MSE (km^2).
        temporal_loss_weight: weight of the time recovery MSE (minutes^2).
        max_len: maximum number of points per trajectory (longer ones are truncated by the
            collate; also the size of the point-index encoding table).

    Raises:
        ValueError: (on construction) naming the first value out of range.
    """

    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    experts: int = 8
    top_k: int = 4
    dropout: float = 0.0
    use_trie: bool = True
    use_moe: bool = True
    moe_dispatch: str = "sparse"
    load_balance_weight: float = 0.01
    gate_noise: float = 1.0
    gate_hidden: int = 32
    trie_min_wavelength_m: float = 50.0
    trie_max_wavelength_m: float = 50_000.0
    trie_learnable: bool = True
    spatial_scale_m: float = 1000.0
    time_scale_min: float = 10.0
    p_spatial: float = 1.0 / 3.0
    p_temporal: float = 1.0 / 3.0
    p_span: float = 1.0 / 3.0
    modality_ratio_min: float = 0.2
    modality_ratio_max: float = 0.9
    span_ratio_min: float = 0.1
    span_ratio_max: float = 0.5
    spatial_loss_weight: float = 1.0
    temporal_loss_weight: float = 1.0
    max_len: int = 128

    def __post_init__(self) -> None:
        for name in ("d_model", "layers", "heads", "ffn_dim", "experts", "top_k", "gate_hidden", "max_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        if (self.d_model // self.heads) % 2:
            raise ValueError(f"head size d_model/heads={self.d_model // self.heads} must be even (TRIE rotates pairs)")
        if self.top_k > self.experts:
            raise ValueError(f"top_k={self.top_k} exceeds experts={self.experts}")
        if self.moe_dispatch not in ("dense", "sparse"):
            raise ValueError(f"moe_dispatch must be 'dense' or 'sparse', got {self.moe_dispatch!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("load_balance_weight", "gate_noise", "spatial_loss_weight", "temporal_loss_weight",
                     "p_spatial", "p_temporal", "p_span"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.p_spatial + self.p_temporal + self.p_span <= 0:
            raise ValueError("p_spatial + p_temporal + p_span must be > 0")
        if not 0 < self.trie_min_wavelength_m <= self.trie_max_wavelength_m:
            raise ValueError(f"need 0 < trie_min_wavelength_m <= trie_max_wavelength_m, got "
                             f"{self.trie_min_wavelength_m}, {self.trie_max_wavelength_m}")
        for name in ("spatial_scale_m", "time_scale_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for lo, hi in (("modality_ratio_min", "modality_ratio_max"), ("span_ratio_min", "span_ratio_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if not 0.0 < a <= b <= 1.0:
                raise ValueError(f"need 0 < {lo} <= {hi} <= 1, got {a}, {b}")

    @property
    def mask_kind_probs(self) -> tuple[float, float, float]:
        """(spatial, temporal, span) mask-kind probabilities, normalised to sum to 1."""
        total = self.p_spatial + self.p_temporal + self.p_span
        return (self.p_spatial / total, self.p_temporal / total, self.p_span / total)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (round-trips through :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "TransferTrajConfig":
        """Build a config from a mapping (e.g. a YAML section); missing keys take defaults.

        Raises:
            ValueError: naming every key that is not a field, or if a value is out of range.
        """
        return strict_from_dict(cls, d, "TransferTraj config")

    @classmethod
    def paper(cls, **overrides: Any) -> "TransferTrajConfig":
        """The paper's best configuration (:data:`PAPER_PRESET`) with optional overrides."""
        return cls.from_dict({**PAPER_PRESET, **overrides})
