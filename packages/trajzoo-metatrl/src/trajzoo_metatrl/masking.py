"""Dual-modal masking of MetaTRL pre-training (paper section "Self-supervised Pre-training").

1. Full (span) masking: randomly selected, NON-CONTIGUOUS sub-trajectories are masked entirely
   (road replaced by [MASK], time hidden) -- :func:`span_mask`.
2. Temporal masking: among the road segments left unmasked, a random subset has only its time
   hidden -- :func:`time_mask`.

Both take an explicit ``torch.Generator`` (a CPU generator) so masks are reproducible; the masks
are returned on the device of ``padding_mask``. Real positions must form a prefix of each row
(padding only at the end), as produced by the core's batching.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_padding(padding_mask: Tensor) -> Tensor:
    if padding_mask.dim() != 2 or padding_mask.dtype != torch.bool:
        raise ValueError(
            f"padding_mask must be a (B, L) bool tensor, got {padding_mask.dtype} {tuple(padding_mask.shape)}"
        )
    pad = padding_mask.detach().cpu()
    if pad.shape[1] > 1 and bool((pad[:, :-1] & ~pad[:, 1:]).any()):
        raise ValueError("padding_mask must mark a suffix of each row (padding only at the end)")
    return pad


def _geometric(count: int, mean: float, generator: torch.Generator) -> Tensor:
    """``count`` draws from the geometric law on {1, 2, ...} with the given mean (>= 1)."""
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
    """Choose non-contiguous spans of real positions to mask fully (MetaTRL pre-training).

    For a trajectory with n real positions: if n < 2 nothing is masked; otherwise exactly
    k = clip(round(ratio * n), 1, n - 1) (round half to even) positions among 1..n-1 are masked
    (position 0, the departure, never is). Span lengths are drawn from a geometric law on {1, 2, ...} with mean
    ``mean_span_length`` until they cover k (the last one truncated); spans are placed in random
    order at random offsets with at least one unmasked position between consecutive spans
    (when there is not enough room, the last spans are merged). So the maximal runs of masked
    positions are exactly the spans.

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions (a suffix of each row).
        ratio: target fraction of real positions to mask, in (0, 1).
        mean_span_length: mean span length in segments, >= 1.
        generator: CPU ``torch.Generator`` providing all randomness.

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
    pad = _check_padding(padding_mask)
    mask = torch.zeros(pad.shape, dtype=torch.bool)
    lengths = (~pad).sum(dim=1).tolist()
    for row, n in enumerate(lengths):
        if n < 2:
            continue
        k = min(n - 1, max(1, round(ratio * n)))
        # span lengths covering k exactly
        draws = _geometric(k, mean_span_length, generator).tolist()
        spans: list[int] = []
        total = 0
        for length in draws:
            take = min(length, k - total)
            spans.append(take)
            total += take
            if total == k:
                break
        free = (n - 1) - k  # unmasked candidate positions among 1..n-1
        while len(spans) - 1 > free:  # not enough room for separating gaps: merge
            last = spans.pop()
            spans[-1] += last
        s = len(spans)
        spare = free - (s - 1)
        # uniform composition of `spare` into s + 1 non-negative gaps (stars and bars)
        bars = torch.randperm(spare + s, generator=generator)[:s].sort().values.tolist()
        gaps = [bars[0]] + [bars[t] - bars[t - 1] - 1 for t in range(1, s)] + [spare + s - 1 - bars[-1]]
        position = 1 + gaps[0]
        for t, length in enumerate(spans):
            mask[row, position : position + length] = True
            position += length
            if t + 1 < s:
                position += 1 + gaps[t + 1]
    return mask.to(padding_mask.device)


def time_mask(
    padding_mask: Tensor,
    road_mask: Tensor,
    ratio: float,
    generator: torch.Generator,
) -> Tensor:
    """Choose positions whose time only is masked (MetaTRL temporal masking).

    Candidates are the real positions other than position 0 that are not span-masked; in each
    trajectory with c candidates, round(ratio * c) (round half to even) of them are chosen uniformly
    at random.

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions (a suffix of each row).
        road_mask: ``(B, L)`` bool span mask (e.g. from :func:`span_mask`).
        ratio: fraction of candidates to choose, in [0, 1].
        generator: CPU ``torch.Generator`` providing all randomness.

    Returns:
        ``(B, L)`` bool on ``padding_mask.device``, disjoint from ``road_mask``, never True at
        padding or at position 0.

    Raises:
        ValueError: if ``ratio`` is not in [0, 1] or the masks have the wrong shape/dtype.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    pad = _check_padding(padding_mask)
    if road_mask.shape != pad.shape or road_mask.dtype != torch.bool:
        raise ValueError(
            f"road_mask must be a {tuple(pad.shape)} bool tensor, got {road_mask.dtype} {tuple(road_mask.shape)}"
        )
    candidates = ~pad & ~road_mask.detach().cpu()
    candidates[:, 0] = False
    count = torch.round(candidates.sum(dim=1).double() * ratio).long()  # (B,)
    scores = torch.rand(pad.shape, generator=generator)
    scores = scores.masked_fill(~candidates, 2.0)  # non-candidates rank last
    rank = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    chosen = (rank < count.unsqueeze(1)) & candidates
    return chosen.to(padding_mask.device)
