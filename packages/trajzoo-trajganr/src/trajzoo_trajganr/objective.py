"""Pretraining objective of TrajGANR (eqs. 6-7).

Eq. 6 (InfoNCE, Oord et al. 2018; CLIP): for an anchor a, a positive p and negatives N,
``L(a, p, N) = -log( exp(s(a, p) / tau) / (exp(s(a, p) / tau) + sum_{n in N} exp(s(a, n) / tau)) )``
with s the cosine similarity and tau the temperature.

Eq. 7: ``L = L(I, L) + L(T, L) + L(T, I)`` over the modality pairs: image-location and
trajectory-location with negatives from the location queue (:mod:`.queue`), trajectory-image
with the OTHER images of the mini-batch as negatives. Without street-view images (the offline
default) only ``L(T, L)`` remains.

Several trajectories passing the same location are additional positives (section 3.3): an
anchor's positives are all batch entries of its location, each scored against the same
negatives, and the loss averages over them; queue entries and in-batch images of the anchor's own
location are never negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce_multi(anchors: Tensor, positives: Tensor, anchor_ids: Tensor, positive_ids: Tensor,
                   negatives: Tensor, negative_ids: Tensor, temperature: float,
                   pair_count: int | None = None) -> Tensor:
    """Eq. 6 averaged over every (anchor, positive) pair with the same location id.

    ``mean_{i, j: id_i = id_j} -log( e^{s_ij} / (e^{s_ij} + sum_{n: nid_n != id_i} e^{s_in}) )``
    with ``s = cos / tau``.

    Args:
        anchors: ``(B, d)``. positives: ``(P, d)``. anchor_ids: ``(B,)``. positive_ids: ``(P,)``.
        negatives: ``(M, d)`` (M may be 0). negative_ids: ``(M,)``. temperature: tau > 0.
        pair_count: None = the mean over the pairs; else the sum over the pairs divided by
            ``pair_count`` (data parallelism: ``anchors`` are one process's share of the global
            batch's and ``pair_count`` the global batch's number of pairs, so the processes'
            values sum to the global batch's mean).

    Returns:
        Scalar loss in nats.

    Raises:
        ValueError: temperature <= 0, or an anchor without a positive.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    a = F.normalize(anchors, dim=-1)
    s_pos = a @ F.normalize(positives, dim=-1).t() / temperature  # (B, P)
    pos_mask = anchor_ids.unsqueeze(1) == positive_ids.unsqueeze(0)
    if not bool(pos_mask.any(dim=1).all()):
        raise ValueError("info_nce_multi: every anchor needs at least one positive with its location id")
    if len(negatives):
        s_neg = a @ F.normalize(negatives.to(a.dtype), dim=-1).t() / temperature  # (B, M)
        s_neg = s_neg.masked_fill(anchor_ids.unsqueeze(1) == negative_ids.unsqueeze(0), float("-inf"))
        neg_lse = torch.logsumexp(s_neg, dim=1, keepdim=True)  # (B, 1)
    else:
        neg_lse = torch.full_like(s_pos[:, :1], float("-inf"))
    per_pair = torch.logaddexp(s_pos, neg_lse.expand_as(s_pos)) - s_pos  # -log(e^s / (e^s + sum e^n))
    if pair_count is not None:
        return per_pair[pos_mask].sum() / max(int(pair_count), 1)
    return per_pair[pos_mask].mean()


def pretraining_loss(traj: Tensor | None, loc: Tensor, img: Tensor | None, location_ids: Tensor, queue_emb: Tensor,
                     queue_ids: Tensor, temperature: float, anchors: slice | None = None
                     ) -> tuple[Tensor, dict[str, float]]:
    """Eq. 7 over the modalities present.

    Args:
        traj: ``(B, d)`` localized trajectory embeddings (None: no trajectory term); with
            ``anchors``, only those rows ``(B_r, d)``.
        loc: ``(B, d)`` location embeddings of the same samples.
        img: ``(B, d)`` image embeddings, or None (no street-view images).
        location_ids: ``(B,)`` the samples' location ids.
        queue_emb, queue_ids: the queue's negatives.
        temperature: tau.
        anchors: data parallelism: this process's rows ``start:stop`` of the global batch of B
            samples. Its anchors (trajectories, images) are scored against the positives and
            in-batch negatives of the whole global batch (locations and images, which every
            process embeds for all B samples) and each term is this share's sum over its pairs
            divided by the global batch's number of pairs, so the processes' losses (and stats)
            sum to the global batch's eq. 7. None = one process, the whole batch.

    Returns:
        ``(loss, {"loss", "L_TL", "L_IL", "L_TI"})`` (absent terms 0).
    """
    terms = {}
    if anchors is not None:
        own = location_ids[anchors]
        pairs = int((location_ids.unsqueeze(1) == location_ids.unsqueeze(0)).sum())
        if traj is not None:
            terms["L_TL"] = info_nce_multi(traj, loc, own, location_ids, queue_emb, queue_ids, temperature, pairs)
        if img is not None:
            terms["L_IL"] = info_nce_multi(img[anchors], loc, own, location_ids, queue_emb, queue_ids, temperature,
                                           pairs)
            if traj is not None:
                terms["L_TI"] = info_nce_multi(traj, img, own, location_ids, img, location_ids, temperature, pairs)
    if anchors is None and traj is not None:
        terms["L_TL"] = info_nce_multi(traj, loc, location_ids, location_ids, queue_emb, queue_ids, temperature)
    if anchors is None and img is not None:
        terms["L_IL"] = info_nce_multi(img, loc, location_ids, location_ids, queue_emb, queue_ids, temperature)
        if traj is not None:  # in-batch images of other locations as negatives
            terms["L_TI"] = info_nce_multi(traj, img, location_ids, location_ids, img, location_ids, temperature)
    if not terms:
        raise ValueError("pretraining_loss: no modality pair to align")
    loss = sum(terms.values())
    stats = {"loss": float(loss.detach())}
    stats.update({k: float(terms[k].detach()) if k in terms else 0.0 for k in ("L_TL", "L_IL", "L_TI")})
    return loss, stats
