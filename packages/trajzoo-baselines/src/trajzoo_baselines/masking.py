"""Token masking for masked-road pretraining (BERT's masked language model objective applied
to road-id sequences, as in Toast and the other BERT-style trajectory models)."""
from __future__ import annotations

import torch
from torch import Tensor


def random_position_mask(padding_mask: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """Choose, independently per trajectory, real positions to mask.

    A trajectory with n real positions gets exactly k = clip(round(ratio * n), 1, n) masked
    positions (round half to even), chosen uniformly without replacement; padded positions are
    never chosen. Position 0 may be chosen (the road-only model has no departure time to keep).

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions.
        ratio: target fraction of real positions to mask, in (0, 1).
        generator: CPU ``torch.Generator`` providing the randomness.

    Returns:
        ``(B, L)`` bool on ``padding_mask.device``, True at masked positions.

    Raises:
        ValueError: ``ratio`` outside (0, 1) or ``padding_mask`` not a ``(B, L)`` bool tensor.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if padding_mask.dim() != 2 or padding_mask.dtype != torch.bool:
        raise ValueError(f"padding_mask must be a (B, L) bool tensor, got {padding_mask.dtype} "
                         f"{tuple(padding_mask.shape)}")
    real = ~padding_mask.detach().cpu()
    n = real.sum(dim=1)  # (B,)
    k = torch.round(n.double() * ratio).long().clamp_min(1).minimum(n)
    scores = torch.rand(real.shape, generator=generator).masked_fill(~real, 2.0)  # padding ranks last
    rank = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return ((rank < k.unsqueeze(1)) & real).to(padding_mask.device)
