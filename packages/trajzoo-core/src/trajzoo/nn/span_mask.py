"""Non-contiguous span masks with geometric span lengths.

Source: MetaTRL (AAAI 2026), section "Self-supervised Pre-training" (full masking of randomly
selected, non-contiguous sub-trajectories), also START's span-masked trajectory recovery
(Jiang et al., ICDE 2023, section "Span-Masked Trajectory Recovery"), both after SpanBERT
(Joshi et al. 2020: span lengths from a geometric law).

All randomness comes from an explicit CPU ``torch.Generator``; masks are returned on the device
of ``padding_mask``. Real positions must form a prefix of each row (padding only at the end).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .random_mask import check_suffix_padding


def geometric_lengths(count: int, mean: float, generator: torch.Generator) -> Tensor:
    """``count`` draws from the geometric law on {1, 2, ...} with the given mean.

    Inverse-CDF sampling with success probability q = 1 / mean: ``1 + floor(log(u) / log(1 - q))``
    for u uniform in (0, 1] (one float64 ``torch.rand(count)``). With ``mean <= 1`` every length
    is 1 and the generator is not used.

    Args:
        count: number of draws.
        mean: mean length in positions (>= 1 for a proper law).
        generator: CPU ``torch.Generator``.

    Returns:
        ``(count,)`` int64 lengths >= 1.
    """
    if mean <= 1.0:
        return torch.ones(count, dtype=torch.long)
    q = 1.0 / mean  # success probability
    u = 1.0 - torch.rand(count, generator=generator, dtype=torch.float64)  # in (0, 1]
    return 1 + torch.floor(torch.log(u) / math.log1p(-q)).long()


def span_mask(
    padding_mask: Tensor,
    ratio: float,
    mean_span_length: float,
    generator: torch.Generator,
) -> Tensor:
    """Choose non-contiguous spans of real positions to mask fully (MetaTRL / START pre-training).

    For a trajectory with n real positions: if n < 2 nothing is masked; otherwise exactly
    k = clip(round(ratio * n), 1, n - 1) (round half to even) positions among 1..n-1 are masked
    (position 0, the departure, never is). Span lengths are drawn from a geometric law on
    {1, 2, ...} with mean ``mean_span_length`` (:func:`geometric_lengths`) until they cover k
    (the last one truncated); spans are placed in random order at random offsets with at least
    one unmasked position between consecutive spans (when there is not enough room, the last
    spans are merged). So the maximal runs of masked positions are exactly the spans.

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions (a suffix of each row).
        ratio: target fraction of real positions to mask, in (0, 1).
        mean_span_length: mean span length in positions (road segments), >= 1.
        generator: CPU ``torch.Generator`` providing all randomness (per row: the span lengths,
            then one ``randperm`` for the gaps).

    Returns:
        ``(B, L)`` bool on ``padding_mask.device``, True at span-masked positions; never True at
        padding or at position 0.

    Raises:
        ValueError: if ``ratio`` is not in (0, 1), ``mean_span_length < 1``, or
            ``padding_mask`` is not a ``(B, L)`` bool suffix mask.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if mean_span_length < 1.0:
        raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length}")
    pad = check_suffix_padding(padding_mask)
    mask = torch.zeros(pad.shape, dtype=torch.bool)
    lengths = (~pad).sum(dim=1).tolist()
    for row, n in enumerate(lengths):
        if n < 2:
            continue
        k = min(n - 1, max(1, round(ratio * n)))
        # span lengths covering k exactly
        draws = geometric_lengths(k, mean_span_length, generator).tolist()
        spans: list[int] = []
        total = 0
        for length in draws:
            take = min(length, k - total)
            spans.append(take)
            total += take
            if total == k:
                break
        _place_spans(mask[row], n, k, spans, generator)
    return mask.to(padding_mask.device)


def _place_spans(row_mask: Tensor, n: int, k: int, spans: list[int], generator: torch.Generator) -> None:
    """Place ``spans`` (lengths summing to ``k``) among positions 1..n-1 of one row, in place:
    spans merged while there is no room for an unmasked position between them, then random
    offsets (a uniform composition of the spare positions into ``len(spans) + 1`` gaps, stars and
    bars, drawn from ``generator``). Shared by :func:`span_mask` and :func:`fixed_span_mask`."""
    free = (n - 1) - k  # unmasked candidate positions among 1..n-1
    while len(spans) - 1 > free:  # not enough room for separating gaps: merge
        last = spans.pop()
        spans[-1] += last
    s = len(spans)
    spare = free - (s - 1)
    bars = torch.randperm(spare + s, generator=generator)[:s].sort().values.tolist()
    gaps = [bars[0]] + [bars[t] - bars[t - 1] - 1 for t in range(1, s)] + [spare + s - 1 - bars[-1]]
    position = 1 + gaps[0]
    for t, length in enumerate(spans):
        row_mask[position : position + length] = True
        position += length
        if t + 1 < s:
            position += 1 + gaps[t + 1]


def fixed_span_mask(padding_mask: Tensor, ratio: float, span_length: int, generator: torch.Generator) -> Tensor:
    """Mask about ``ratio`` of each row's real positions in spans of exactly ``span_length``
    positions (SMARTraj2 appendix B.1.4: "a masking length of 2 with a probability of 20 %").

    For n real positions, k = clip(round(ratio * n), 1, n - 1) positions among 1..n-1 (position 0
    is never masked; nothing when n < 2) are masked as ``ceil(k / span_length)`` spans of
    ``span_length`` (the last one truncated to cover k exactly), placed as in :func:`span_mask`
    (random order and offsets, an unmasked position between spans, merged when short of room).
    Only the placement draws from ``generator`` (span lengths are fixed).

    Args:
        padding_mask: ``(B, L)`` bool suffix padding mask. ratio: in (0, 1).
        span_length: >= 1 positions per span. generator: CPU ``torch.Generator``.

    Returns:
        ``(B, L)`` bool, True at masked positions; never at padding or position 0.

    Raises:
        ValueError: ``ratio`` not in (0, 1), ``span_length < 1``, or a bad padding mask.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if int(span_length) < 1:
        raise ValueError(f"span_length must be >= 1, got {span_length}")
    pad = check_suffix_padding(padding_mask)
    mask = torch.zeros(pad.shape, dtype=torch.bool)
    for row, n in enumerate((~pad).sum(dim=1).tolist()):
        if n < 2:
            continue
        k = min(n - 1, max(1, round(ratio * n)))
        spans = [span_length] * (k // span_length) + ([k % span_length] if k % span_length else [])
        _place_spans(mask[row], n, k, spans, generator)
    return mask.to(padding_mask.device)
