"""Space2Vec location encoder (TrajGANR eqs. 2 and 3; Mai et al., ICLR 2020, "theory" grid-cell
encoder) followed by an MLP.

Eq. 2 encodes a street-view / query location, eq. 3 a trajectory waypoint, each with its OWN
encoder (two instances of :class:`LocationEncoder`). Coordinates are normalised to [-1, 1]
within the study area's bounding box (appendix A.1.2, :func:`normalise_xy`).

Space2Vec "theory": with S scales ``lambda_s = lambda_min * g^(s / (S - 1))``,
``g = lambda_max / lambda_min`` (s = 0..S-1; one scale: lambda_min) and the three unit vectors
``a_1 = (1, 0)``, ``a_2 = (cos 2pi/3, sin 2pi/3)``, ``a_3 = (cos 4pi/3, sin 4pi/3)``::

    PE(x) = [cos(<x, a_j> / lambda_s), sin(<x, a_j> / lambda_s)]  for s, j   ->  6 S values

and the location embedding is ``MLP(PE(x))`` (Linear -> ReLU -> Linear).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trajzoo.nn.mlp import MLP


def normalise_xy(xy: Tensor, bbox_xy) -> Tensor:
    """Map metres to [-1, 1] within the bounding box: ``2 (x - min) / (max - min) - 1``.

    Args:
        xy: ``(..., 2)`` x, y metres (projected CRS). bbox_xy: ``[min_x, min_y, max_x, max_y]``.

    Returns:
        ``(..., 2)`` float32 (points outside the box map outside [-1, 1]).

    Raises:
        ValueError: an empty box.
    """
    lo = torch.tensor(bbox_xy[:2], dtype=torch.float64, device=xy.device)
    hi = torch.tensor(bbox_xy[2:], dtype=torch.float64, device=xy.device)
    if not bool((hi > lo).all()):
        raise ValueError(f"bounding box {bbox_xy} is empty")
    return (2 * (xy.double() - lo) / (hi - lo) - 1).float()


def scales(min_scale: float, max_scale: float, num_scales: int) -> Tensor:
    """``(S,)`` geometric scales ``lambda_min * (lambda_max / lambda_min)^(s / (S - 1))``."""
    if num_scales == 1:
        return torch.tensor([min_scale], dtype=torch.float64)
    s = torch.arange(num_scales, dtype=torch.float64)
    return min_scale * (max_scale / min_scale) ** (s / (num_scales - 1))


class Space2VecPE(nn.Module):
    """The multi-scale sinusoidal grid-cell encoding ``PE(x)``: ``(..., 2) -> (..., 6 S)``.

    Output order: for each scale s (smallest first), for each direction j, ``cos`` then ``sin``.

    Args:
        min_scale, max_scale: lambda_min <= lambda_max (> 0), in the units of x.
        num_scales: S >= 1.

    Raises:
        ValueError: non-positive or unordered scales, S < 1.
    """

    def __init__(self, min_scale: float, max_scale: float, num_scales: int):
        super().__init__()
        if not (0 < min_scale <= max_scale) or num_scales < 1:
            raise ValueError(f"Space2Vec needs 0 < min_scale <= max_scale and num_scales >= 1, got "
                             f"{min_scale}, {max_scale}, {num_scales}")
        angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
        self.register_buffer("directions", torch.stack([angles.cos(), angles.sin()], dim=1).float())  # (3, 2)
        self.register_buffer("lambdas", scales(min_scale, max_scale, num_scales).float())  # (S,)
        self.out_dim = 6 * num_scales

    def forward(self, xy: Tensor) -> Tensor:
        """``(..., 2)`` normalised coordinates -> ``(..., 6 S)``."""
        proj = xy.float() @ self.directions.t()  # (..., 3)  <x, a_j>
        arg = proj.unsqueeze(-2) / self.lambdas.view(-1, 1)  # (..., S, 3)
        return torch.stack([arg.cos(), arg.sin()], dim=-1).flatten(-3)  # (..., S*3*2)


class LocationEncoder(nn.Module):
    """Space2Vec + MLP: ``(..., 2)`` normalised x, y -> ``(..., d)`` (eq. 2 or eq. 3's PE).

    Args:
        d: output size. min_scale, max_scale, num_scales: see :class:`Space2VecPE`.
    """

    def __init__(self, d: int, min_scale: float, max_scale: float, num_scales: int):
        super().__init__()
        self.pe = Space2VecPE(min_scale, max_scale, num_scales)
        self.mlp = MLP(self.pe.out_dim, d, d)

    def reset_parameters(self) -> None:
        """Re-initialise the MLP."""
        self.mlp.reset_parameters()

    def forward(self, xy: Tensor) -> Tensor:
        """``(..., 2)`` -> ``(..., d)``."""
        return self.mlp(self.pe(xy))
