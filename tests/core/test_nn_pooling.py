"""trajzoo.nn.pooling: mean pooling over real positions, against a hand computation."""
from __future__ import annotations

import torch

from trajzoo.nn.pooling import mean_pool


def test_mean_pool_matches_hand_computation_and_ignores_padding() -> None:
    z = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]],
                      [[5.0, 6.0], [-9.0, 9.0], [-9.0, 9.0]],
                      [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]]])
    pad = torch.tensor([[False, False, True], [False, True, True], [True, True, True]])
    pooled = mean_pool(z, pad)
    # row 0: ((1, 2) + (3, 4)) / 2; row 1: (5, 6) alone; row 2: all padding -> zeros
    assert torch.equal(pooled, torch.tensor([[2.0, 3.0], [5.0, 6.0], [0.0, 0.0]]))


def test_mean_pool_equals_masked_mean_of_random_values() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 6, 3, generator=gen)
    lengths = torch.tensor([6, 3, 1, 2])
    pad = torch.arange(6)[None] >= lengths[:, None]
    pooled = mean_pool(z, pad)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(pooled[b], z[b, :n].mean(dim=0), atol=1e-6)
