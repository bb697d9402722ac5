"""Trajectory encoder with a query token (eqs. 4-5): the localized embedding changes with the
query location and not with padding; synthetic time is the linear interpolation of appendix A.2.1;
the fixed window down-samples and pads (appendix A.1.2)."""
import numpy as np
import pytest
import torch

from trajzoo_trajganr.parameters import TrajGANRConfig
from trajzoo_trajganr.query_token import synthetic_query_time
from trajzoo_trajganr.space2vec import normalise_xy
from trajzoo_trajganr.trajectory_encoder import TrajectoryEncoder
from trajzoo_trajganr.windows import collate_windows, window_indices

from toy import FRAME, row


def encoder(query_time="synthetic"):
    torch.manual_seed(0)
    return TrajectoryEncoder(TrajGANRConfig(d_model=16, heads=2, agg_heads=2, ffn_dim=32, layers=2,
                                            query_time=query_time)).eval()


def test_synthetic_time_interpolates_between_the_neighbouring_fixes():
    b = collate_windows([row("a", [0, 100, 300], [0, 0, 0], dt=60)], 8, FRAME["bbox_xy"])
    el, hr = synthetic_query_time(b.xy_m, b.elapsed_min, b.hour, b.padding_mask, torch.tensor([[250.0, 20.0]]))
    # projection at x = 250: between fixes 1 (t = 1 min) and 2 (t = 2 min), r = 0.75
    assert abs(float(el[0]) - 1.75) < 1e-6
    assert abs(float(hr[0]) - (b.hour[0, 1].item() + 0.75 / 60)) < 1e-5


@pytest.mark.parametrize("query_time", ["synthetic", "masked"])
def test_query_output_changes_with_query_location_not_with_padding(query_time):
    enc = encoder(query_time)
    r = row("a", np.linspace(100, 900, 10), np.full(10, 500.0))
    q1, q2 = torch.tensor([[300.0, 500.0]]), torch.tensor([[700.0, 510.0]])
    out = {}
    for w in (10, 32):  # the same trajectory padded to 10 or 32 positions
        b = collate_windows([r], w, FRAME["bbox_xy"])
        with torch.no_grad():
            out[w] = [enc.localized(b, normalise_xy(q, FRAME["bbox_xy"]), q) for q in (q1, q2)]
    assert torch.allclose(out[10][0], out[32][0], atol=1e-5) and torch.allclose(out[10][1], out[32][1], atol=1e-5)
    assert (out[10][0] - out[10][1]).abs().max() > 1e-3


def test_masked_time_ignores_the_interpolated_time():
    enc = encoder("masked")
    r1 = row("a", np.linspace(100, 900, 10), np.full(10, 500.0), dt=15)
    b = collate_windows([r1], 10, FRAME["bbox_xy"])
    q = torch.tensor([[300.0, 500.0]])
    tok = enc.query_tokens(b, normalise_xy(q, FRAME["bbox_xy"]), q)
    expected = enc.location(normalise_xy(q, FRAME["bbox_xy"])) + enc.query.masked_time + enc.query.type_embedding
    assert torch.allclose(tok, expected)


def test_window_downsamples_in_order_and_pads():
    gen = torch.Generator().manual_seed(0)
    idx = window_indices(100, 16, gen)
    assert len(idx) == 16 and (np.diff(idx) > 0).all()
    assert window_indices(5, 16).tolist() == [0, 1, 2, 3, 4]
    b = collate_windows([row("a", np.arange(100.0), np.zeros(100)), row("b", [1.0, 2.0], [0.0, 0.0])], 16, FRAME["bbox_xy"], gen)
    assert b.xy.shape == (2, 16, 2) and int((~b.padding_mask[0]).sum()) == 16 and int((~b.padding_mask[1]).sum()) == 2
    assert float(b.xy[1, 2:].abs().sum()) == 0.0
