"""Space2Vec (eqs. 2, 3): geometric scales and the grid-cell encoding against a hand computation."""
import math

import torch

from trajzoo_trajganr.space2vec import LocationEncoder, Space2VecPE, normalise_xy, scales


def test_scales_are_geometric_from_min_to_max():
    lam = scales(0.01, 1.0, 3)
    assert torch.allclose(lam, torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64))
    assert torch.allclose(scales(0.5, 2.0, 1), torch.tensor([0.5], dtype=torch.float64))


def test_encoding_matches_hand_computation():
    pe = Space2VecPE(0.1, 0.4, 2)  # lambdas 0.1, 0.4
    x = torch.tensor([[0.3, -0.2]])
    out = pe(x)[0]
    assert out.shape == (12,)
    expected = []
    for lam in (0.1, 0.4):
        for ang in (0.0, 2 * math.pi / 3, 4 * math.pi / 3):
            proj = 0.3 * math.cos(ang) - 0.2 * math.sin(ang)
            expected += [math.cos(proj / lam), math.sin(proj / lam)]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float32), atol=1e-5)


def test_normalisation_to_the_bounding_box():
    xy = torch.tensor([[0.0, 0.0], [1000.0, 2000.0], [500.0, 1000.0]], dtype=torch.float64)
    assert torch.allclose(normalise_xy(xy, [0, 0, 1000, 2000]), torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))


def test_two_separate_encoders_in_the_model():
    from trajzoo_trajganr.model import TrajGANR
    from trajzoo_trajganr.parameters import TrajGANRConfig
    m = TrajGANR(TrajGANRConfig(d_model=16, heads=2, agg_heads=2, ffn_dim=16, layers=1))
    assert isinstance(m.location, LocationEncoder) and isinstance(m.trajectory.location, LocationEncoder)
    assert m.location is not m.trajectory.location
    assert m.location.mlp.fc1.weight.data_ptr() != m.trajectory.location.mlp.fc1.weight.data_ptr()
