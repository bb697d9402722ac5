"""The [CLS] self-attention aggregator (eq. 9) is permutation-invariant and ignores padding;
the head (eq. 10) concatenates image, location and aggregated trajectory embeddings."""
import torch

from trajzoo_trajganr.aggregator import TrajectoryAggregator
from trajzoo_trajganr.head import LocationHead


def test_aggregator_is_permutation_invariant_and_ignores_padding():
    torch.manual_seed(0)
    agg = TrajectoryAggregator(8, 2).eval()
    z = torch.randn(3, 5, 8)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True], [False] + [True] * 4])
    out = agg(z, pad)
    perm = torch.tensor([4, 2, 0, 3, 1])
    z2, pad2 = z.clone(), pad.clone()
    z2[0] = z[0, perm]  # row 0: every position real
    assert torch.allclose(agg(z2, pad2)[0], out[0], atol=1e-6)
    z3 = z.clone()
    z3[1, 3:] = 100.0  # padding content
    assert torch.allclose(agg(z3, pad)[1], out[1], atol=1e-6)
    z4 = z.clone()
    z4[0, 0] += 1.0  # a real embedding changes the output
    assert (agg(z4, pad)[0] - out[0]).abs().max() > 1e-4


def test_head_concatenates_the_modalities():
    torch.manual_seed(0)
    head = LocationHead({"loc": 4, "traj": 8, "img": 3}, 2, 16, 5)
    assert head.keys == ["img", "loc", "traj"] and head.mlp.fc1.in_features == 15
    out = head({"loc": torch.randn(2, 4), "img": torch.randn(2, 3), "traj": torch.randn(2, 3, 8),
                "traj_mask": torch.zeros(2, 3, dtype=torch.bool)})
    assert out.shape == (2, 5)
