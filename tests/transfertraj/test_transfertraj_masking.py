"""Unified pretraining masks (paper and its public code): a span AND per-point feature masks in
the same trajectory; origin and padding never masked; sizes; determinism."""
import pytest
import torch

from trajzoo_transfertraj.masking import config_masks, unified_masks
from trajzoo_transfertraj.parameters import TransferTrajConfig


def _pad(lengths, l):
    return torch.arange(l)[None, :] >= torch.tensor(lengths)[:, None]


def _draw(pad, seed=0, span_prob=0.5, share=0.5, mr=(0.1, 0.5), sr=(0.1, 0.5)):
    return unified_masks(pad, span_prob, share, mr, sr, torch.Generator().manual_seed(seed))


def _runs(row):
    """Maximal runs of True of a 1-D bool tensor, as (start, length)."""
    idx = row.nonzero().flatten().tolist()
    runs = []
    for i in idx:
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    return runs


def test_span_and_feature_masks_in_the_same_trajectory():
    lengths = [int(x) for x in torch.randint(12, 40, (300,), generator=torch.Generator().manual_seed(1))]
    pad = _pad(lengths, 40)
    s, t, has_span = _draw(pad)
    assert not (s[:, 0] | t[:, 0]).any() and not ((s | t) & pad).any()
    assert 0.35 < has_span.float().mean() < 0.65
    both = s & t
    only = s ^ t  # per-point feature masks: exactly one modality hidden
    for i in range(len(lengths)):
        assert only[i].any(), i  # every trajectory has feature masks
        if has_span[i]:
            assert len(_runs(both[i])) == 1  # exactly one contiguous span with both modalities
        else:
            assert not both[i].any()
    # spans and feature masks occur together in the same trajectories, both modalities appear
    assert (has_span & only.any(dim=1)).sum() > 100
    assert (s & ~t).any() and (t & ~s).any()


def test_ratio_bounds_respected():
    pad = _pad([101] * 50, 101)  # 100 candidates
    s, t, has_span = _draw(pad, span_prob=0.0, mr=(0.3, 0.4))
    hidden = (s | t).sum(dim=1)
    assert not has_span.any() and ((hidden >= 30) & (hidden <= 40)).all() and not (s & t).any()
    s, t, has_span = _draw(pad, span_prob=1.0, sr=(0.1, 0.1), mr=(0.5, 0.5))
    both = (s & t).sum(dim=1)
    assert has_span.all() and (both == 10).all()
    assert ((s ^ t).sum(dim=1) == 45).all()  # half of the 90 candidates outside the span
    s, t, _ = _draw(pad, share=1.0)
    assert torch.equal(s | t, s)  # share 1: feature masks are all spatial


def test_short_trajectories_and_determinism():
    pad = _pad([1, 2, 3], 3)
    s, t, _ = _draw(pad)
    assert not (s[0] | t[0]).any()  # a single point: nothing to hide
    assert int((s[1] | t[1]).sum()) == 1 and bool((s[1] | t[1])[1])
    a = _draw(_pad([20] * 10, 20), seed=4)
    b = _draw(_pad([20] * 10, 20), seed=4)
    c = _draw(_pad([20] * 10, 20), seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    cfg = TransferTrajConfig()
    d = config_masks(cfg, _pad([20] * 10, 20), torch.Generator().manual_seed(4))
    e = unified_masks(_pad([20] * 10, 20), cfg.p_span, cfg.spatial_share, (cfg.modality_ratio_min, cfg.modality_ratio_max),
                      (cfg.span_ratio_min, cfg.span_ratio_max), torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(d, e))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="suffix"):
        _draw(torch.tensor([[False, True, False]]))
    with pytest.raises(ValueError, match="span_prob"):
        _draw(_pad([3], 3), span_prob=1.5)
    with pytest.raises(ValueError, match="modality_ratio"):
        _draw(_pad([3], 3), mr=(0.0, 0.5))
