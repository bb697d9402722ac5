"""Personalised gating of SMARTraj2 (eqs. 7-12), one gate pair per city.

City level (eqs. 7-9)::

    h'_r      = max(0, W_city (sg(h_r) || E(F^city)) + b_city)
    delta^city = gamma * sigmoid(W'_city h'_r + b'_city)
    h^city_r   = delta^city ⊙ h_r

Trajectory level (eqs. 10-12)::

    h''_r      = max(0, W_traj (sg(h^city_r) || E(F^traj)) + b_traj)
    delta^traj = gamma * sigmoid(W'_traj h''_r + b'_traj)
    h^traj_r   = delta^traj ⊙ h^city_r

sg is the stop-gradient (``detach``): the gates learn from the loss through the products of eqs.
9 and 12 only, never by moving h_r through their inputs. gamma = 2 (the paper), so every gate
lies in [0, gamma]. F^city: the city-side features (:func:`trajzoo.data.views.city_features`,
log1p of fixed units); F^traj: the POI semantics of the first and last visible grid cells and
their has-POI flags. E is a linear embedding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class PersonalisedGate(nn.Module):
    """Eqs. 7-12 for one city.

    Args:
        d_model: size of h_r. city_dim: F^city size. traj_dim: F^traj size. hidden: width of h'
        and h''. embed_dim: size of E(F). gamma: the scale (2 in the paper), > 0.

    Raises:
        ValueError: ``gamma <= 0``.
    """

    def __init__(self, d_model: int, city_dim: int, traj_dim: int, hidden: int = 64, embed_dim: int = 16,
                 gamma: float = 2.0):
        super().__init__()
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)
        self.city_embedding = nn.Linear(city_dim, embed_dim)
        self.city_hidden = nn.Linear(d_model + embed_dim, hidden)  # W_city, b_city (eq. 7)
        self.city_gate = nn.Linear(hidden, d_model)  # W'_city, b'_city (eq. 8)
        self.traj_embedding = nn.Linear(traj_dim, embed_dim)
        self.traj_hidden = nn.Linear(d_model + embed_dim, hidden)  # W_traj, b_traj (eq. 10)
        self.traj_gate = nn.Linear(hidden, d_model)  # W'_traj, b'_traj (eq. 11)

    def forward(self, h_r: Tensor, city_features: Tensor, traj_features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply both gates.

        Args:
            h_r: ``(B, d)``. city_features: ``(F_city,)`` (the same for every row).
            traj_features: ``(B, F_traj)``.

        Returns:
            ``(h^traj_r (B, d), delta^city (B, d), delta^traj (B, d))``; deltas in [0, gamma].
        """
        e_city = self.city_embedding(city_features).expand(h_r.shape[0], -1)
        h1 = torch.relu(self.city_hidden(torch.cat([h_r.detach(), e_city], dim=-1)))  # eq. 7
        delta_city = self.gamma * torch.sigmoid(self.city_gate(h1))  # eq. 8
        h_city = delta_city * h_r  # eq. 9
        h2 = torch.relu(self.traj_hidden(torch.cat([h_city.detach(), self.traj_embedding(traj_features)], dim=-1)))
        delta_traj = self.gamma * torch.sigmoid(self.traj_gate(h2))  # eq. 11
        return delta_traj * h_city, delta_city, delta_traj  # eq. 12
