"""Pretraining objectives of SMARTraj2 (eqs. 13-15) and the masking of appendix B.1.4.

* Masking: spans of exactly ``span`` (2) positions covering ``ratio`` (20 %) of each view's real
  positions (:func:`trajzoo.nn.span_mask.fixed_span_mask`), drawn per view.
* Eq. 13, ``L_MLM = E[-log P(T_m | T_\\m)]`` per view: the route view predicts masked segments
  (logits = token state · z_v over the city's N segments, so no per-city output table), the grid
  view predicts masked cells (logits = state · the city's cell embeddings); the GPS view has
  continuous tokens, so its term is the Gaussian negative log-likelihood up to a constant, the
  mean squared error of the masked fixes' x, y (km). L_MLM is the mean of the views' terms.
* Eq. 14, ``L_pair``: InfoNCE between the vectors of two views of the same trip (positives) against
  the other trips of the batch (negatives), cosine similarity / temperature, both directions,
  averaged over the view pairs (:func:`trajzoo.nn.contrastive.info_nce`). The paper writes the
  log-ratio without its minus sign; minimised, it is the negative of that.
* Eq. 15: ``L_total = w1 L_diff + w2 L_MLM + w3 L_pair``.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from trajzoo.nn.contrastive import info_nce


def pair_loss(views: list[Tensor], temperature: float) -> Tensor:
    """Eq. 14 over every pair of the given view vectors.

    Args:
        views: two or more ``(B, d)`` tensors, row b of each the same trip. temperature: tau > 0.

    Returns:
        Scalar: mean over pairs (a, b) of ``(InfoNCE(a, b) + InfoNCE(b, a)) / 2`` (0 with < 2 views).
    """
    pairs = list(itertools.combinations(views, 2))
    if not pairs:
        return views[0].new_zeros(()) if views else torch.zeros(())
    return sum((info_nce(a, b, temperature) + info_nce(b, a, temperature)) / 2 for a, b in pairs) / len(pairs)


def masked_token_loss(states: Tensor, targets: Tensor, mask: Tensor, table: Tensor) -> Tensor:
    """Eq. 13 for a view of discrete tokens: cross-entropy of ``states[mask] @ table^T`` vs ``targets[mask]``.

    Args:
        states: ``(B, L, d)``. targets: ``(B, L)`` int64 token ids. mask: ``(B, L)`` bool.
        table: ``(V, d)`` output embeddings (z_v or the cell table).

    Returns:
        Scalar mean over masked positions (0 when nothing is masked).
    """
    if not bool(mask.any()):
        return states.new_zeros(())
    return F.cross_entropy(states[mask] @ table.t(), targets[mask])


def masked_fix_loss(predicted_xy: Tensor, true_xy: Tensor, mask: Tensor) -> Tensor:
    """Eq. 13 for the GPS view: mean squared error (km^2) of the masked fixes' x, y.

    Args:
        predicted_xy, true_xy: ``(B, P, 2)``. mask: ``(B, P)`` bool.
    """
    if not bool(mask.any()):
        return predicted_xy.new_zeros(())
    return F.mse_loss(predicted_xy[mask], true_xy[mask])


def total_loss(l_diff: Tensor, l_mlm: Tensor, l_pair: Tensor, w1: float, w2: float, w3: float) -> Tensor:
    """Eq. 15: ``w1 L_diff + w2 L_MLM + w3 L_pair``."""
    return w1 * l_diff + w2 * l_mlm + w3 * l_pair
