"""Hyper-parameters of TransferTraj (arXiv 2505.12672), validated.

Source: TransferTraj paper, section "Experiments / Implementation details" and the
hyper-parameter study: the paper's best setting is d = 128, L = 2 RTTE blocks, C = 8 experts with
k = 4 active experts (:data:`PAPER_PRESET`). The dataclass defaults are sized for 2 CPU cores
(see the package README section): same architecture, smaller width. Units are part of the
field names where they matter (``_m`` metres, ``_min`` minutes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trajzoo.config import ConfigClass, check_divisible, check_ordered, ranged

#: The paper's best configuration (d = 128, L = 2, C = 8, k = 4); everything else default.
PAPER_PRESET: dict[str, Any] = {"d_model": 128, "layers": 2, "heads": 4, "ffn_dim": 256, "experts": 8,
                                "top_k": 4}


@dataclass
class TransferTrajConfig(ConfigClass):
    """Hyper-parameters of the TransferTraj model and of its pretraining masks and loss.

    Attributes:
        d_model: hidden size d of every token (paper: 128).
        layers: number L of RTTE blocks (TRIE attention + SC-MoE; paper: 2).
        heads: attention heads (d_model must be divisible by heads; the head size must be even
            for the TRIE rotation).
        ffn_dim: hidden size of every feed-forward layer of the model: each SC-MoE expert, the
            single FFN of the ``use_moe=False`` ablation, and the point FFN of modality mixing.
        causal: causal self-attention over the points (point i attends to points 0..i), as the
            paper's public code masks its sequence model.
        experts: number C of SC-MoE experts (paper: 8).
        top_k: experts active per point (paper: 4).
        dropout: dropout probability (0 on CPU: it roughly doubles the cost).
        use_trie: False -> ablation "w/o TRIE" (paper): plain attention plus the standard
            sinusoidal positional encoding of the points' ABSOLUTE x, y in the city frame
            (``PointBatch.origin`` + relative x, y, metres in the city's projected CRS).
        use_moe: False -> ablation "w/o SC-MoE": one feed-forward network per block.
        moe_dispatch: ``"dense"`` (every expert computes every point, outputs combined with the
            sparse gate weights; no Python loop over experts) or ``"sparse"`` (each expert computes
            only its routed points; a loop of C iterations). Same numbers up to rounding.
        load_balance_weight: weight of the SC-MoE load-balancing term added to the loss.
        gate_noise: scale of the noisy top-k gating noise during training (0 = no noise).
        gate_hidden: 0 = linear SC-MoE router ``W_g h`` on the point token (the paper's router,
            Shazeer et al. 2017 eq. 4); > 0 = hidden size of a GELU MLP router on the token.
        trie_min_wavelength_m, trie_max_wavelength_m: initial range (metres) of the wavelengths of
            the learnable TRIE frequencies (log-spaced).
        trie_learnable: whether the TRIE frequencies are trained (paper: learnable).
        spatial_scale_m: metres per unit of the spatial modality input and of the x, y head
            output (1000: kilometres).
        time_scale_min: minutes per unit of the elapsed-time modality input and of the time
            head output.
        p_span: probability that a pretraining trajectory gets a hidden sub-sequence (span, both
            modalities); every trajectory also gets per-point feature masks outside the span
            (:mod:`~trajzoo_transfertraj.masking`).
        p_spatial, p_temporal: relative weights of hiding the spatial vs the temporal modality of
            a feature-masked point (normalised: :attr:`spatial_share`).
        modality_ratio_min, modality_ratio_max: range of the per-trajectory fraction of the points
            outside the span (excluding the origin) that get a feature mask.
        span_ratio_min, span_ratio_max: range of the per-trajectory fraction of points covered by
            the hidden sub-sequence.
        spatial_loss_weight: weight of the x, y recovery MSE (km^2).
        temporal_loss_weight: weight of the time recovery MSE (minutes^2).
        context_dropout: pretraining only: probability, per trajectory and per context kind (POI,
            road), of showing a city that HAS that context as if it had none (``has_context``
            False, values zeroed), so that the "context absent" tokens are trained even when every
            source city has the context (issue 11, zero-shot with contexts the sources lack).
        max_len: maximum number of points per trajectory (longer ones are truncated by the
            collate; also the size of the point-index encoding table).

    Build from a config section with :meth:`trajzoo.config.ConfigClass.from_dict` (``to_dict``
    round-trips).

    Raises:
        ValueError: (on construction) naming the first value of the wrong type or out of range
            and its allowed range, or the fields of a failed constraint between fields;
            (``from_dict``) unknown keys, naming them.
    """

    d_model: int = ranged(64, ge=1)
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    experts: int = ranged(8, ge=1)
    top_k: int = ranged(4, ge=1)
    dropout: float = ranged(0.0, ge=0, lt=1)
    causal: bool = True
    use_trie: bool = True
    use_moe: bool = True
    moe_dispatch: str = ranged("sparse", choices=("dense", "sparse"))
    load_balance_weight: float = ranged(0.01, ge=0)
    gate_noise: float = ranged(1.0, ge=0)
    gate_hidden: int = ranged(0, ge=0)
    trie_min_wavelength_m: float = ranged(50.0, gt=0)
    trie_max_wavelength_m: float = ranged(50_000.0, gt=0)
    trie_learnable: bool = True
    spatial_scale_m: float = ranged(1000.0, gt=0)
    time_scale_min: float = ranged(10.0, gt=0)
    p_spatial: float = ranged(0.5, ge=0)
    p_temporal: float = ranged(0.5, ge=0)
    p_span: float = ranged(0.5, ge=0, le=1)
    modality_ratio_min: float = ranged(0.1, gt=0, le=1)
    modality_ratio_max: float = ranged(0.5, gt=0, le=1)
    span_ratio_min: float = ranged(0.1, gt=0, le=1)
    span_ratio_max: float = ranged(0.5, gt=0, le=1)
    spatial_loss_weight: float = ranged(1.0, ge=0)
    temporal_loss_weight: float = ranged(1.0, ge=0)
    context_dropout: float = ranged(0.2, ge=0, le=1)
    max_len: int = ranged(128, ge=1)

    def check(self) -> None:
        """Constraints between fields: heads divide d_model into even head sizes (TRIE rotates
        pairs), top_k <= experts, a positive p_spatial + p_temporal, and ordered ranges."""
        check_divisible(self, "d_model", "heads")
        if (self.d_model // self.heads) % 2:
            raise ValueError(f"head size d_model/heads={self.d_model // self.heads} must be even (TRIE rotates pairs)")
        if self.top_k > self.experts:
            raise ValueError(f"top_k={self.top_k} exceeds experts={self.experts}")
        if self.p_spatial + self.p_temporal <= 0:
            raise ValueError("p_spatial + p_temporal must be > 0")
        for low, high in (("trie_min_wavelength_m", "trie_max_wavelength_m"), ("modality_ratio_min", "modality_ratio_max"),
                          ("span_ratio_min", "span_ratio_max")):
            check_ordered(self, low, high)

    @property
    def spatial_share(self) -> float:
        """Probability that a feature-masked point hides its spatial (not temporal) modality."""
        return self.p_spatial / (self.p_spatial + self.p_temporal)

    @classmethod
    def paper(cls, **overrides: Any) -> "TransferTrajConfig":
        """The paper's best configuration (:data:`PAPER_PRESET`) with optional overrides."""
        return cls.from_dict({**PAPER_PRESET, **overrides})


@dataclass(frozen=True)
class PretrainConfig(ConfigClass):
    """Pretraining schedule.

    Attributes:
        epochs: passes over the (capped) rows of every city.
        batch_size: trajectories per step (one city per batch).
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm (0 = no clipping).
        max_trips_per_city: keep at most this many trips per city (a seeded random subset of the
            given rows; None = all). Counted in the history's ``n_trips`` entries.
        max_steps_per_epoch: stop an epoch after this many steps (None = full pass); for quick runs.
        warmup_steps: linear learning-rate warm-up steps (0 = none). cosine: cosine decay of the
            learning rate over the run (off by default); see :class:`trajzoo.training.engine.TrainSchedule`.

    Build from the config's ``pretrain`` section with :meth:`trajzoo.config.ConfigClass.from_dict`.

    Raises:
        ValueError: (on construction) ``<field> must be <allowed>, got <value>``; (``from_dict``)
            unknown keys, naming them.
    """

    epochs: int = ranged(3, ge=0)
    batch_size: int = ranged(64, ge=1)
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.0, ge=0)
    grad_clip: float = ranged(1.0, ge=0)
    max_trips_per_city: int | None = ranged(None, ge=1)
    max_steps_per_epoch: int | None = ranged(None, ge=1)
    warmup_steps: int = ranged(0, ge=0)
    cosine: bool = False
