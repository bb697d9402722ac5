"""Feature disentanglement of SMARTraj2 (eqs. 4-6).

Eq. 4: ``H^i = V(h_p, h_r, h_g)`` with one shared extractor V (domain-invariant features).
Eq. 5: ``H^s_k = M_k(h_p, h_r, h_g)`` with one extractor M_k per city k (domain-specific).
Eq. 6: ``L_diff = sum_k || H^i_k^T H^s_k ||_F^2`` (soft subspace orthogonality, DSN of Bousmalis
et al. 2016), over the trips of city k in the batch. The extractors are the core two-layer
:class:`trajzoo.nn.mlp.MLP` on the concatenated view vectors.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.nn.mlp import MLP


def difference_loss(invariant: Tensor, specific: Tensor) -> Tensor:
    """Eq. 6 for one city: ``||H^i^T H^s||_F^2``.

    Args:
        invariant: ``(B, d)`` H^i of the city's trips. specific: ``(B, d)`` H^s_k of the same trips.

    Returns:
        Scalar (sum of the squared entries of the ``(d, d)`` matrix ``H^i^T H^s``).

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    if invariant.dim() != 2 or invariant.shape != specific.shape:
        raise ValueError(f"H^i and H^s must both be (B, d), got {tuple(invariant.shape)}, {tuple(specific.shape)}")
    return (invariant.t() @ specific).pow(2).sum()


class FeatureDisentanglement(nn.Module):
    """V (shared) and M_k (per city) of eqs. 4-5: ``(B, in_dim) -> (B, d)`` each.

    Args:
        cities: city keys (one M_k each). in_dim: size of the concatenated view vectors. d_model: d.
        invariant, specific: build V / the M_k (False = the ablation without them).
    """

    def __init__(self, cities: list[str], in_dim: int, d_model: int, invariant: bool = True, specific: bool = True):
        super().__init__()
        self.shared = MLP(in_dim, d_model, d_model) if invariant else None
        self.specific = nn.ModuleDict({c: MLP(in_dim, d_model, d_model) for c in cities}) if specific else None

    def forward(self, x: Tensor, city: str) -> tuple[Tensor | None, Tensor | None]:
        """``(H^i, H^s_k)`` of ``(B, in_dim)`` view vectors of ``city`` (None for a removed extractor).

        Raises:
            KeyError: no M_k for ``city``.
        """
        h_i = self.shared(x) if self.shared is not None else None
        if self.specific is None:
            return h_i, None
        if city not in self.specific:
            raise KeyError(f"no city-specific extractor for {city!r} (cities: {sorted(self.specific)})")
        return h_i, self.specific[city](x)
