"""Unified masking of TransferTraj pretraining: a span and per-point feature masks in the same
trajectory.

Source: TransferTraj paper, section "Unified Task-Transferable Input-Output Scheme / pre-training"
and its public code (the masks of one trajectory combine a masked sub-sequence with points whose
spatial or temporal feature alone is masked). For every trajectory of n real points the
candidates are points 1..n-1 (point 0, the origin, whose x, y = 0 and t = 0 by construction, and
padding are never masked; nothing is masked when n < 2):

1. **span** (both modalities, as in trajectory prediction): with probability ``span_prob`` the
   trajectory gets one contiguous span of ``m = clip(round(r_s (n - 1)), 1, n - 1)`` points,
   ``r_s`` uniform in ``span_ratio``, starting at s uniform in ``1 .. n - m`` (so it may end at
   the last point);
2. **feature masks** (one modality per point, as in trajectory recovery / travel-time
   estimation): of the candidates outside the span, ``m_f = clip(round(r_f c), 1, c)`` (c their
   number; 0 if c = 0), ``r_f`` uniform in ``modality_ratio``, chosen uniformly without
   replacement; each hides its spatial modality with probability ``spatial_share``, else its
   temporal modality.

All randomness comes from the given CPU ``torch.Generator``; masks are returned on the device of
``padding_mask``. Real points must be a prefix of each row (padding at the end).
"""
from __future__ import annotations

import torch
from torch import Tensor

from trajzoo.nn.random_mask import check_suffix_padding, random_subset


def unified_masks(padding_mask: Tensor, span_prob: float, spatial_share: float,
                  modality_ratio: tuple[float, float], span_ratio: tuple[float, float],
                  generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the pretraining masks of a batch (see the module docstring).

    Args:
        padding_mask: ``(B, L)`` bool, True at padding (a suffix of each row).
        span_prob: probability in [0, 1] that a trajectory has a masked span.
        spatial_share: probability in [0, 1] that a feature-masked point hides x, y (else time).
        modality_ratio: (min, max) fraction, in (0, 1], of the candidates outside the span that
            get a feature mask.
        span_ratio: (min, max) fraction, in (0, 1], of the candidates covered by the span.
        generator: CPU generator providing all randomness.

    Returns:
        ``(spatial_mask, temporal_mask, has_span)``: two ``(B, L)`` bool masks (True = hidden;
        both True on the span) and ``(B,)`` bool, whether the trajectory got a span.

    Raises:
        ValueError: probabilities outside [0, 1], bad ratios, or a padding mask that is not a
            ``(B, L)`` bool suffix mask.
    """
    if padding_mask.dim() != 2 or padding_mask.dtype != torch.bool:
        raise ValueError(f"padding_mask must be a (B, L) bool tensor, got {padding_mask.dtype} "
                         f"{tuple(padding_mask.shape)}")
    for name, p in (("span_prob", span_prob), ("spatial_share", spatial_share)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    for name, (lo, hi) in (("modality_ratio", modality_ratio), ("span_ratio", span_ratio)):
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}")
    pad = check_suffix_padding(padding_mask)
    b, l = pad.shape
    n = (~pad).sum(dim=1)  # (B,)
    cand_n = (n - 1).clamp(min=0)
    idx = torch.arange(l).expand(b, l)
    candidates = (idx >= 1) & ~pad
    # 1. span
    has_span = (torch.rand(b, generator=generator, dtype=torch.float64) < span_prob) & (cand_n > 0)
    r_s = span_ratio[0] + torch.rand(b, generator=generator, dtype=torch.float64) * (span_ratio[1] - span_ratio[0])
    m = torch.minimum(torch.round(r_s * cand_n.double()).long().clamp(min=1), cand_n)
    v = torch.rand(b, generator=generator, dtype=torch.float64)
    start = 1 + torch.floor(v * (n - m).clamp(min=1).double()).long()
    span = (idx >= start.unsqueeze(1)) & (idx < (start + m).unsqueeze(1)) & candidates & has_span.unsqueeze(1)
    # 2. per-point feature masks outside the span
    rest = candidates & ~span
    c = rest.sum(dim=1)
    r_f = modality_ratio[0] + torch.rand(b, generator=generator, dtype=torch.float64) * (
        modality_ratio[1] - modality_ratio[0])
    m_f = torch.minimum(torch.round(r_f * c.double()).long().clamp(min=1), c)
    feature = random_subset(rest, m_f, generator)
    to_spatial = torch.rand(b, l, generator=generator, dtype=torch.float64) < spatial_share
    spatial = span | (feature & to_spatial)
    temporal = span | (feature & ~to_spatial)
    dev = padding_mask.device
    return spatial.to(dev), temporal.to(dev), has_span.to(dev)


def config_masks(cfg, padding_mask: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`unified_masks` with the mask parameters of a
    :class:`~trajzoo_transfertraj.parameters.TransferTrajConfig` (``p_span``, ``spatial_share``,
    the modality and span ratio ranges)."""
    return unified_masks(padding_mask, cfg.p_span, cfg.spatial_share, (cfg.modality_ratio_min, cfg.modality_ratio_max),
                         (cfg.span_ratio_min, cfg.span_ratio_max), generator)
