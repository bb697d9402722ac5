"""The query-location token of the trajectory neural implicit function (TrajGANR eq. 5,
appendix A.2): ``e_q = PE_T(x_q) + TE_q + e_type``, with the trajectory's location encoder
PE_T (eq. 3) at the query location x_q, a learned token-type vector e_type marking the query,
and TE_q one of the two query-time variants:

* synthetic time (A.2.1): the query's timestamp is interpolated linearly between the two
  neighbouring fixes k, k+1 of the path segment the query projects onto,
  ``t_q = t_k + r (t_{k+1} - t_k)`` with r in [0, 1] the relative position of the projection
  along that segment (:func:`synthetic_query_time`), then ``TE_q = TE(t_q)``;
* masked time (A.2.2): ``TE_q = m``, one learned vector.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def synthetic_query_time(xy_m: Tensor, elapsed_min: Tensor, hour: Tensor, padding_mask: Tensor, q_m: Tensor
                         ) -> tuple[Tensor, Tensor]:
    """Interpolated time of each query on its trajectory (appendix A.2.1).

    For every pair of consecutive real fixes (k, k+1), the query's projection fraction
    ``r = clamp(<q - p_k, p_{k+1} - p_k> / |p_{k+1} - p_k|^2, 0, 1)`` and its distance to the
    projected point; the pair closest to the query gives ``t_q = t_k + r (t_{k+1} - t_k)``. A
    trajectory with one fix gives that fix's time.

    Args:
        xy_m: ``(B, W, 2)`` metres. elapsed_min, hour: ``(B, W)``. padding_mask: ``(B, W)`` bool.
        q_m: ``(B, 2)`` query locations, metres.

    Returns:
        ``(elapsed_q, hour_q)``, each ``(B,)`` float32 (hour wrapped to [0, 24)).
    """
    a, b = xy_m[:, :-1].double(), xy_m[:, 1:].double()
    valid = ~padding_mask[:, :-1] & ~padding_mask[:, 1:]  # (B, W-1)
    v = b - a
    ll = (v * v).sum(-1)
    q = q_m.double().unsqueeze(1)
    r = torch.where(ll > 0, ((q - a) * v).sum(-1) / ll.clamp(min=1e-12), torch.zeros_like(ll)).clamp(0, 1)
    dist = ((a + r.unsqueeze(-1) * v - q) ** 2).sum(-1).masked_fill(~valid, float("inf"))
    k = dist.argmin(dim=1)  # (B,)
    has_pair = valid.any(dim=1)
    rk = r.gather(1, k.unsqueeze(1)).squeeze(1).where(has_pair, torch.zeros_like(k, dtype=r.dtype))
    k = k.where(has_pair, torch.zeros_like(k))
    k1 = (k + 1).where(has_pair, k).clamp(max=xy_m.shape[1] - 1)
    e0, e1 = elapsed_min.gather(1, k.unsqueeze(1)).squeeze(1), elapsed_min.gather(1, k1.unsqueeze(1)).squeeze(1)
    eq = e0.double() + rk * (e1.double() - e0.double())
    h0 = hour.gather(1, k.unsqueeze(1)).squeeze(1).double()
    hq = torch.remainder(h0 + (eq - e0.double()) / 60.0, 24.0)
    return eq.float(), hq.float()


class QueryToken(nn.Module):
    """Builds ``e_q`` (eq. 5) from the query's location embedding and its time.

    Args:
        d: token width. query_time: ``"synthetic"`` or ``"masked"``.

    Raises:
        ValueError: an unknown query_time.
    """

    def __init__(self, d: int, query_time: str):
        super().__init__()
        if query_time not in ("synthetic", "masked"):
            raise ValueError(f"query_time must be synthetic or masked, got {query_time!r}")
        self.query_time = query_time
        self.type_embedding = nn.Parameter(torch.zeros(d))
        self.masked_time = nn.Parameter(torch.zeros(d)) if query_time == "masked" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) for the learned vectors."""
        nn.init.normal_(self.type_embedding, std=0.02)
        if self.masked_time is not None:
            nn.init.normal_(self.masked_time, std=0.02)

    def forward(self, loc_emb: Tensor, time_emb: Tensor | None) -> Tensor:
        """``(B, d)`` PE_T(x_q) and ``(B, d)`` TE(t_q) (synthetic; ignored when masked) -> ``(B, d)``."""
        te = self.masked_time.expand_as(loc_emb) if self.query_time == "masked" else time_emb
        return loc_emb + te + self.type_embedding
