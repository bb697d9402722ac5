"""Contrastive losses with in-batch negatives: InfoNCE and its symmetric two-view form NT-Xent.

:func:`nt_xent_share` is the data-parallel form of NT-Xent: negatives gathered from every process.

Sources: InfoNCE, van den Oord et al. 2018 ("Representation learning with contrastive predictive
coding", eq. 4); NT-Xent, Chen et al. 2020 (SimCLR, eq. 1), used by START's trajectory
contrastive learning (Jiang et al., ICDE 2023, eq. 13). Similarities are cosine similarities
divided by a temperature tau; losses are in nats.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(z1: Tensor, z2: Tensor, temperature: float) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def info_nce(anchors: Tensor, positives: Tensor, temperature: float) -> Tensor:
    """InfoNCE with in-batch negatives (van den Oord et al. 2018, eq. 4), one direction.

    ``L = -(1/B) sum_b log( exp(s(a_b, p_b) / tau) / sum_c exp(s(a_b, p_c) / tau) )`` with
    s the cosine similarity: row b's positive is ``positives[b]``, its B - 1 negatives the other
    rows of ``positives``.

    Args:
        anchors: ``(B, d)``.
        positives: ``(B, d)``, row b the positive of ``anchors[b]``.
        temperature: tau > 0.

    Returns:
        Scalar mean loss in nats (0 when B = 1).

    Raises:
        ValueError: shapes differ or are not 2-D, or ``temperature`` <= 0.
    """
    _check_pair(anchors, positives, temperature)
    logits = F.normalize(anchors, dim=-1) @ F.normalize(positives, dim=-1).t() / temperature  # (B, B)
    return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1)
    and of START's contrastive term.

    The 2B vectors are L2-normalised; for each, the logits are its cosine similarities to the
    other 2B - 1 vectors divided by ``temperature`` and the target is its other view: InfoNCE
    over both views with 2B - 2 negatives each.

    Args:
        z1: ``(B, d)`` representations of view 1.
        z2: ``(B, d)`` representations of view 2 (row b is the positive of ``z1[b]``).
        temperature: tau > 0.

    Returns:
        Scalar mean loss over the 2B vectors, in nats (0 when B = 1: no negatives).

    Raises:
        ValueError: shapes differ or are not 2-D, or ``temperature`` <= 0.
    """
    _check_pair(z1, z2, temperature)
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)  # (2B, d)
    logits = (z @ z.t()) / temperature
    self_pairs = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, targets)


def nt_xent_share(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """This process's share of :func:`nt_xent` over the whole global batch under data parallelism,
    with the negatives of every process (as SimCLR's large-batch training over many devices, Chen
    et al. 2020, section 2.2, whose negatives are the whole global batch).

    With K processes each holding ``B_r`` rows of a global batch of ``B = sum_r B_r``, the 2B
    representations of both views are gathered from every process (differentiable,
    :func:`trajzoo.training.distributed.all_gather_rows`); for each of this process's 2B_r
    vectors the logits are its cosine similarities to the other 2B - 1 vectors over tau and the
    target is its other view, and the share is the sum of those 2B_r cross-entropies over 2B.
    The processes' shares sum to :func:`nt_xent` of the global batch (same value, same gradient
    once the processes' gradients are summed, :func:`trajzoo.training.distributed.sum_gradients`;
    ``StepLoss.global_share`` in the engine). With one process it is :func:`nt_xent` itself.

    Args:
        z1: ``(B_r, d)`` this process's view-1 representations.
        z2: ``(B_r, d)`` its view-2 representations (row b the positive of ``z1[b]``).
        temperature: tau > 0.

    Returns:
        Scalar share in nats (0 when B = 1). Every process must call it at the same step (a
        collective).

    Raises:
        ValueError: shapes differ or are not 2-D, or ``temperature`` <= 0.
    """
    from trajzoo.training.distributed import all_gather_rows, world

    _check_pair(z1, z2, temperature)
    if world()[1] == 1:
        return nt_xent(z1, z2, temperature)
    b = z1.shape[0]
    all1, start = all_gather_rows(z1)
    all2, _ = all_gather_rows(z2)
    n = all1.shape[0]
    z = F.normalize(torch.cat([all1, all2], dim=0), dim=-1)  # (2B, d)
    local = torch.arange(start, start + b, device=z.device)
    rows = torch.cat([local, local + n])  # this process's 2B_r vectors among the 2B
    logits = (z[rows] @ z.t()) / temperature  # (2B_r, 2B)
    self_pairs = torch.zeros_like(logits, dtype=torch.bool)
    self_pairs[torch.arange(2 * b, device=z.device), rows] = True
    logits = logits.masked_fill(self_pairs, float("-inf"))
    targets = torch.cat([local + n, local])
    return F.cross_entropy(logits, targets, reduction="sum") / (2 * n)
