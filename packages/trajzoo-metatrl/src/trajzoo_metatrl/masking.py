"""Dual-modal masking of MetaTRL pre-training (paper section "Self-supervised Pre-training").

1. Full (span) masking: randomly selected, NON-CONTIGUOUS sub-trajectories are masked entirely
   (road replaced by [MASK], time hidden) -- :func:`trajzoo.nn.span_mask.span_mask` (shared
   with START).
2. Temporal masking: among the road segments left unmasked, a random subset has only its time
   hidden -- :func:`time_mask`.

Both take an explicit ``torch.Generator`` (a CPU generator) so masks are reproducible; the masks
are returned on the device of ``padding_mask``. Real positions must form a prefix of each row
(padding only at the end), as produced by the core's batching.
"""
from __future__ import annotations

import torch
from torch import Tensor

from trajzoo.nn.random_mask import check_suffix_padding, random_subset


def time_mask(
    padding_mask: Tensor,
    road_mask: Tensor,
    ratio: float,
    generator: torch.Generator,
) -> Tensor:
    """Choose positions whose time only is masked (MetaTRL temporal masking).

    Candidates are the real positions other than position 0 that are not span-masked; in each
    trajectory with c candidates, round(ratio * c) (round half to even) of them are chosen uniformly
    at random (:func:`trajzoo.nn.random_mask.random_subset`).

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions (a suffix of each row).
        road_mask: ``(B, L)`` bool span mask (e.g. from :func:`trajzoo.nn.span_mask.span_mask`).
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
    pad = check_suffix_padding(padding_mask)
    if road_mask.shape != pad.shape or road_mask.dtype != torch.bool:
        raise ValueError(
            f"road_mask must be a {tuple(pad.shape)} bool tensor, got {road_mask.dtype} {tuple(road_mask.shape)}"
        )
    candidates = ~pad & ~road_mask.detach().cpu()
    candidates[:, 0] = False
    count = torch.round(candidates.sum(dim=1).double() * ratio).long()  # (B,)
    return random_subset(candidates, count, generator).to(padding_mask.device)
