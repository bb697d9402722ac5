"""Fine-tuning head of TrajGANR (eqs. 8-10): for each task location, the aggregated trajectory
embedding (eq. 9, :class:`~trajzoo_trajganr.aggregator.TrajectoryAggregator` over ``traj`` /
``traj_mask``), concatenated with the image and location embeddings present
(``h = [v ; l ; z_agg]``), then a task-specific two-layer MLP (eq. 10,
``Linear -> ReLU -> Linear``). The encoders are frozen: the features come precomputed."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.nn.mlp import MLP

from .aggregator import TrajectoryAggregator

#: Order of the concatenation of eq. 10 (image, location, trajectory), then baseline features.
ORDER = ("img", "loc", "traj", "traj_pooled")


class LocationHead(nn.Module):
    """``forward(features) -> (b, n_outputs)``.

    Args:
        dims: feature name -> width, for the keys of :data:`ORDER` present (``traj``: d of the
            ``(b, K, d)`` tensor). agg_heads: heads of the aggregator. hidden: MLP hidden width.
        n_outputs: task outputs.

    Raises:
        ValueError: no known feature.
    """

    def __init__(self, dims: dict[str, int], agg_heads: int, hidden: int, n_outputs: int):
        super().__init__()
        self.keys = [k for k in ORDER if k in dims]
        if not self.keys:
            raise ValueError(f"LocationHead: none of {ORDER} in the features {sorted(dims)}")
        self.aggregator = TrajectoryAggregator(dims["traj"], agg_heads) if "traj" in dims else None
        self.mlp = MLP(sum(dims[k] for k in self.keys), hidden, n_outputs)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Eq. 10 on a batch ``{"loc": (b, d), "traj": (b, K, d), "traj_mask": (b, K), ...}``."""
        parts = []
        for k in self.keys:
            if k == "traj":
                parts.append(self.aggregator(features["traj"].float(), features["traj_mask"].bool()))
            else:
                parts.append(features[k].float())
        return self.mlp(torch.cat(parts, dim=-1))
