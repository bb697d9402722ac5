"""trajzoo.nn.mlp: the two-layer MLP, its exact output and its RNG draw order."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trajzoo.nn.mlp import MLP


def test_forward_matches_hand_computation() -> None:
    mlp = MLP(2, 2, 1)
    with torch.no_grad():
        mlp.fc1.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        mlp.fc1.bias.copy_(torch.tensor([0.0, -1.0]))
        mlp.fc2.weight.copy_(torch.tensor([[3.0, 4.0]]))
        mlp.fc2.bias.copy_(torch.tensor([0.5]))
    # fc1([1, 2]) = [1 - 2, 2 - 1] = [-1, 1]; ReLU -> [0, 1]; fc2 -> 3 * 0 + 4 * 1 + 0.5
    out = mlp(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    # second row: fc1 = [0, -1] -> ReLU [0, 0] -> 0.5
    assert torch.equal(out, torch.tensor([[4.5], [0.5]]))
    assert mlp(torch.zeros(3, 4, 2)).shape == (3, 4, 1)


def test_construction_draws_the_weights_twice_in_this_order() -> None:
    torch.manual_seed(0)
    mlp = MLP(3, 4, 2)
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
    fc1.reset_parameters()
    fc2.reset_parameters()
    for mine, reference in ((mlp.fc1, fc1), (mlp.fc2, fc2)):
        assert torch.equal(mine.weight, reference.weight) and torch.equal(mine.bias, reference.bias)
    assert list(dict(mlp.named_parameters())) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_non_positive_dimension_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        MLP(2, 0, 1)
