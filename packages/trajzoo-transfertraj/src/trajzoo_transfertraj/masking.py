"""Unified masking of TransferTraj pretraining.

Source: TransferTraj paper, section "Unified Task-Transferable Input-Output Scheme / pre-training":
every trajectory of a batch gets one of three mask kinds, drawn independently with probabilities
``(p_spatial, p_temporal, p_span)``:

* :data:`SPATIAL` -- the spatial modality (x, y) of a random subset of points is hidden
  (as in trajectory recovery / prediction);
* :data:`TEMPORAL` -- the temporal modality of a random subset of points is hidden (as in
  travel-time estimation);
* :data:`SPAN` -- both modalities of one contiguous sub-sequence are hidden.

For a trajectory of n real points the candidates are points 1..n-1: point 0 (the origin, whose
x, y = 0 and t = 0 by construction) and padding are never masked, and nothing is masked when
n < 2. The fraction r is drawn uniformly per trajectory from ``[modality_ratio_min,
modality_ratio_max]`` (SPATIAL, TEMPORAL) or ``[span_ratio_min, span_ratio_max]`` (SPAN); the
number of hidden points is ``m = clip(round(r (n - 1)), 1, n - 1)``. SPATIAL/TEMPORAL pick m
candidates uniformly without replacement; SPAN hides points ``s .. s + m - 1`` with s uniform in
``1 .. n - m`` (so the span may end at the last point, like trajectory prediction).

All randomness comes from the given CPU ``torch.Generator``; masks are returned on the device of
``padding_mask``. Real points must be a prefix of each row (padding at the end).
"""
from __future__ import annotations

import torch
from torch import Tensor

from trajzoo.nn.random_mask import check_suffix_padding, random_subset

#: Mask kinds returned by :func:`unified_masks`.
SPATIAL, TEMPORAL, SPAN = 0, 1, 2
KIND_NAMES = ("spatial", "temporal", "span")


def unified_masks(padding_mask: Tensor, kind_probs: tuple[float, float, float],
                  modality_ratio: tuple[float, float], span_ratio: tuple[float, float],
                  generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the pretraining masks of a batch.

    Args:
        padding_mask: ``(B, L)`` bool, True at padding (a suffix of each row).
        kind_probs: probabilities of (spatial, temporal, span), non-negative, positive sum.
        modality_ratio: (min, max) fraction of candidates hidden by SPATIAL / TEMPORAL, in (0, 1].
        span_ratio: (min, max) fraction of candidates covered by SPAN, in (0, 1].
        generator: CPU generator providing all randomness.

    Returns:
        ``(spatial_mask, temporal_mask, kind)``: two ``(B, L)`` bool masks (True = hidden) and
        ``(B,)`` long kinds (:data:`SPATIAL`, :data:`TEMPORAL`, :data:`SPAN`).

    Raises:
        ValueError: bad probabilities or ratios, or a padding mask that is not a ``(B, L)`` bool
            suffix mask.
    """
    if padding_mask.dim() != 2 or padding_mask.dtype != torch.bool:
        raise ValueError(f"padding_mask must be a (B, L) bool tensor, got {padding_mask.dtype} "
                         f"{tuple(padding_mask.shape)}")
    probs = torch.tensor(kind_probs, dtype=torch.float64)
    if probs.shape != (3,) or bool((probs < 0).any()) or float(probs.sum()) <= 0:
        raise ValueError(f"kind_probs must be 3 non-negative numbers with a positive sum, got {kind_probs}")
    for name, (lo, hi) in (("modality_ratio", modality_ratio), ("span_ratio", span_ratio)):
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}")
    pad = check_suffix_padding(padding_mask)
    b, l = pad.shape
    n = (~pad).sum(dim=1)  # (B,)
    kind = torch.multinomial(probs, b, replacement=True, generator=generator) if b else torch.zeros(0, dtype=torch.long)
    u = torch.rand(b, generator=generator, dtype=torch.float64)
    lo = torch.where(kind == SPAN, span_ratio[0], modality_ratio[0])
    hi = torch.where(kind == SPAN, span_ratio[1], modality_ratio[1])
    ratio = lo + u * (hi - lo)
    cand = (n - 1).clamp(min=0)
    m = torch.round(ratio * cand.double()).long().clamp(min=1)
    m = torch.minimum(m, cand)  # 0 when n < 2
    idx = torch.arange(l).expand(b, l)
    candidates = (idx >= 1) & ~pad
    subset = random_subset(candidates, m, generator)  # m candidates uniformly without replacement
    # contiguous span: start uniform in 1 .. n - m
    v = torch.rand(b, generator=generator, dtype=torch.float64)
    start = 1 + torch.floor(v * (n - m).clamp(min=1).double()).long()
    span = (idx >= start.unsqueeze(1)) & (idx < (start + m).unsqueeze(1)) & candidates
    k = kind.unsqueeze(1)
    spatial = torch.where(k == SPAN, span, subset & (k == SPATIAL))
    temporal = torch.where(k == SPAN, span, subset & (k == TEMPORAL))
    dev = padding_mask.device
    return spatial.to(dev), temporal.to(dev), kind.to(dev)
