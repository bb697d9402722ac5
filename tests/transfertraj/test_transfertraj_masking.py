"""Unified pretraining masks: origin and padding never masked, kinds, sizes, determinism."""
import pytest
import torch

from trajzoo_transfertraj.masking import SPAN, SPATIAL, TEMPORAL, unified_masks


def _pad(lengths, l):
    return torch.arange(l)[None, :] >= torch.tensor(lengths)[:, None]


def _draw(pad, seed=0, probs=(1 / 3, 1 / 3, 1 / 3), mr=(0.2, 0.9), sr=(0.1, 0.5)):
    return unified_masks(pad, probs, mr, sr, torch.Generator().manual_seed(seed))


def test_origin_and_padding_never_masked_and_every_kind_occurs():
    lengths = [int(x) for x in torch.randint(2, 40, (300,), generator=torch.Generator().manual_seed(1))]
    pad = _pad(lengths, 40)
    s, t, kind = _draw(pad)
    assert not (s[:, 0] | t[:, 0]).any()
    assert not ((s | t) & pad).any()
    counts = torch.bincount(kind, minlength=3)
    assert (counts > 60).all(), counts
    n = torch.tensor(lengths)
    for i in range(len(lengths)):
        cand = n[i] - 1
        if kind[i] == SPATIAL:
            assert not t[i].any() and 1 <= s[i].sum() <= cand
        elif kind[i] == TEMPORAL:
            assert not s[i].any() and 1 <= t[i].sum() <= cand
        else:
            assert torch.equal(s[i], t[i])
            idx = s[i].nonzero().flatten()
            assert len(idx) >= 1 and torch.equal(idx, torch.arange(int(idx[0]), int(idx[0]) + len(idx)))


def test_ratio_bounds_respected():
    pad = _pad([101] * 50, 101)  # 100 candidates
    s, t, kind = _draw(pad, probs=(1, 1, 0), mr=(0.3, 0.4))
    hidden = (s | t).sum(dim=1)
    assert ((hidden >= 30) & (hidden <= 40)).all()
    s, t, kind = _draw(pad, probs=(0, 0, 1), sr=(0.1, 0.1))
    assert (kind == SPAN).all() and (s.sum(dim=1) == 10).all()
    ends = torch.tensor([int(row.nonzero().max()) for row in s])
    assert (ends <= 100).all()


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


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="suffix"):
        _draw(torch.tensor([[False, True, False]]))
    with pytest.raises(ValueError, match="kind_probs"):
        _draw(_pad([3], 3), probs=(0, 0, 0))
    with pytest.raises(ValueError, match="modality_ratio"):
        _draw(_pad([3], 3), mr=(0.0, 0.5))
