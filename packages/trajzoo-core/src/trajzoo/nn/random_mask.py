"""Uniform random subsets of the positions of padded batches, and the padding checks of masks.

:func:`random_subset` is the one sampler behind MetaTRL's temporal masking, BERT-style masked
road prediction (:func:`random_position_mask`, Devlin et al. 2019, section 3.1 "Masked LM", as in
Toast and the other BERT-style trajectory models) and TransferTraj's spatial / temporal modality
masks: every candidate position gets a uniform score from the given CPU ``torch.Generator``
(one ``torch.rand`` of the batch shape), and the ``count`` lowest-scored candidates of each row
are chosen. So a mask depends only on the generator state, and the draws happen in one call
whatever the counts.
"""
from __future__ import annotations

import torch
from torch import Tensor


def check_suffix_padding(padding_mask: Tensor) -> Tensor:
    """Check that ``padding_mask`` is a ``(B, L)`` bool mask whose padding is a suffix of each row.

    Args:
        padding_mask: ``(B, L)`` bool, True at padded positions.

    Returns:
        The mask detached on the CPU.

    Raises:
        ValueError: not a 2-D bool tensor, or a padded position followed by a real one.
    """
    if padding_mask.dim() != 2 or padding_mask.dtype != torch.bool:
        raise ValueError(
            f"padding_mask must be a (B, L) bool tensor, got {padding_mask.dtype} {tuple(padding_mask.shape)}"
        )
    pad = padding_mask.detach().cpu()
    if pad.shape[1] > 1 and bool((pad[:, :-1] & ~pad[:, 1:]).any()):
        raise ValueError("padding_mask must mark a suffix of each row (padding only at the end)")
    return pad


def random_subset(candidates: Tensor, count: Tensor, generator: torch.Generator) -> Tensor:
    """Choose ``count[b]`` of the candidate positions of each row uniformly without replacement.

    Draws one ``torch.rand(B, L)`` from ``generator`` (under data parallelism, while this process
    holds rows ``start:stop`` of a global batch of B' rows, :func:`trajzoo.training.distributed.batch_view`:
    one ``torch.rand(B', L)`` whose rows ``start:stop`` are used); candidates are ranked by their score
    (stable sort), non-candidates rank last, and the first ``count[b]`` ranks are chosen.

    Args:
        candidates: ``(B, L)`` bool CPU tensor, True where a position may be chosen.
        count: ``(B,)`` int64, how many to choose per row (more than the candidates = all of them).
        generator: CPU ``torch.Generator`` providing the randomness.

    Returns:
        ``(B, L)`` bool CPU tensor, True at chosen positions (a subset of ``candidates``).
    """
    from trajzoo.training.distributed import batch_view

    view = batch_view()  # data parallelism: this process holds rows start:stop of a global batch
    if view is not None and candidates.dim() == 2 and candidates.shape[0] == view[2] - view[1]:
        # the draw of the whole global batch (same masks and generator state as one process)
        scores = torch.rand((view[0], candidates.shape[1]), generator=generator)[view[1]:view[2]]
    else:
        scores = torch.rand(candidates.shape, generator=generator)
    scores = scores.masked_fill(~candidates, 2.0)
    rank = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return (rank < count.unsqueeze(1)) & candidates


def random_position_mask(padding_mask: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """Choose, independently per trajectory, real positions to mask (BERT's masked LM on road ids).

    A trajectory with n real positions gets exactly k = clip(round(ratio * n), 1, n) masked
    positions (round half to even), chosen uniformly without replacement (:func:`random_subset`);
    padded positions are never chosen. Position 0 may be chosen (a road-only model has no
    departure time to keep).

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
    return random_subset(real, k, generator).to(padding_mask.device)
