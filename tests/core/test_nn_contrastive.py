"""trajzoo.nn.contrastive: InfoNCE and NT-Xent against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from trajzoo.nn.contrastive import info_nce, nt_xent


def test_info_nce_hand_computed() -> None:
    anchors = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    positives = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # cosines: a1.p1 = 1, a1.p2 = 1/sqrt2, a2.p1 = 0, a2.p2 = 1/sqrt2; tau = 0.5 doubles them
    r = math.sqrt(2.0)
    row1 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(r)))
    row2 = -math.log(math.exp(r) / (math.exp(0.0) + math.exp(r)))
    assert math.isclose(float(info_nce(anchors, positives, 0.5)), (row1 + row2) / 2, rel_tol=1e-6)


def test_nt_xent_hand_computed() -> None:
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    # normalised: v1 = v3 = (1, 0), v2 = v4 = (0, 1); each vector's logits over the other three
    # are (positive 1, two negatives 0) / tau, so every term is log(1 + 2 exp(-1 / tau))
    for tau in (0.5, 1.0):
        assert math.isclose(float(nt_xent(z1, z2, tau)), math.log(1.0 + 2.0 * math.exp(-1.0 / tau)), rel_tol=1e-6)


def test_nt_xent_lower_for_identical_views_than_for_random_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=gen)
    same = nt_xent(z, z.clone(), 0.1)
    shuffled = nt_xent(z, torch.randn(8, 16, generator=gen), 0.1)
    assert torch.isfinite(same) and torch.isfinite(shuffled)
    assert same < shuffled
    assert float(nt_xent(z[:1], z[:1], 0.1)) == 0.0
    assert float(info_nce(z[:1], z[:1], 0.1)) == 0.0


@pytest.mark.parametrize("loss", [info_nce, nt_xent])
def test_bad_arguments_raise(loss) -> None:
    z = torch.randn(8, 16)
    with pytest.raises(ValueError, match="both be"):
        loss(z, z[:4], 0.1)
    with pytest.raises(ValueError, match="temperature"):
        loss(z, z, 0.0)
