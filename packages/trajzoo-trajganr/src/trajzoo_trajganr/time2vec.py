"""Time2Vec temporal encoder (TrajGANR eq. 3's TE; Kazemi et al. 2019, "Time2Vec", eq. 1).

For a scalar time tau: ``t2v(tau)[0] = w_0 tau + phi_0`` (linear) and
``t2v(tau)[i] = sin(w_i tau + phi_i)`` for i = 1..k (periodic), all w, phi learned. TrajGANR
encodes each waypoint's time; here two times per fix (elapsed minutes since the trajectory's
first fix / 10, and the local hour of day / 24) are each encoded and the two vectors projected to
the model width.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Time2Vec(nn.Module):
    """``(...,)`` tau -> ``(..., k + 1)``: one linear and k sine features (Kazemi et al. eq. 1).

    Args:
        dim: k + 1 >= 2.

    Raises:
        ValueError: dim < 2.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < 2:
            raise ValueError(f"Time2Vec needs dim >= 2, got {dim}")
        self.w = nn.Parameter(torch.empty(dim))
        self.phi = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """w, phi ~ U(-1, 1)... w_i scaled by i so the periodic features span several frequencies."""
        with torch.no_grad():
            self.w.uniform_(-1, 1).mul_(torch.arange(1, len(self.w) + 1, dtype=self.w.dtype))
            self.phi.uniform_(-1, 1)

    def forward(self, tau: Tensor) -> Tensor:
        """``(...,)`` -> ``(..., dim)``: ``[w_0 tau + phi_0, sin(w_i tau + phi_i)]``."""
        z = tau.float().unsqueeze(-1) * self.w + self.phi
        return torch.cat([z[..., :1], torch.sin(z[..., 1:])], dim=-1)


class TemporalEncoder(nn.Module):
    """TE of eq. 3: Time2Vec of elapsed time and of time of day, projected to ``d``.

    ``forward(elapsed_min (..,), hour (..,)) -> (.., d)``.
    """

    def __init__(self, dim: int, d: int):
        super().__init__()
        self.elapsed = Time2Vec(dim)
        self.day = Time2Vec(dim)
        self.proj = nn.Linear(2 * dim, d)

    def forward(self, elapsed_min: Tensor, hour: Tensor) -> Tensor:
        """``(...,)`` minutes, ``(...,)`` hours in [0, 24) -> ``(..., d)``."""
        return self.proj(torch.cat([self.elapsed(elapsed_min / 10.0), self.day(hour / 24.0)], dim=-1))
