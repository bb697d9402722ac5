"""Mean pooling of per-position representations over the real (non-padded) positions.

This is the trajectory vector of MetaTRL (the z after eq. 18), START (mean of TAT-Enc outputs),
``transformer-mlm`` / ``node2vec`` and TransferTraj (mean of RTTE outputs).
"""
from __future__ import annotations

from torch import Tensor


def mean_pool(z: Tensor, padding_mask: Tensor) -> Tensor:
    """Average over real positions: ``out[b] = sum_t keep[b, t] z[b, t] / max(1, sum_t keep[b, t])``.

    Args:
        z: ``(B, L, d)`` per-position representations.
        padding_mask: ``(B, L)`` bool, True at padded positions (ignored, whatever ``z`` holds there).

    Returns:
        ``(B, d)`` mean of ``z`` over the non-padded positions of each row; a zero vector for a
        row that is all padding.
    """
    keep = (~padding_mask).unsqueeze(-1).to(z.dtype)
    return (z * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
