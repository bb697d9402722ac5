"""trajzoo.nn.span_mask: geometric span lengths and non-contiguous span masks (MetaTRL, START)."""
from __future__ import annotations

import math
import statistics

import pytest
import torch

from trajzoo.nn.span_mask import geometric_lengths, span_mask


def _padding(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None] >= torch.tensor(lengths)[:, None]


def _runs(row: list[bool]) -> list[int]:
    runs, current = [], 0
    for value in row + [False]:
        if value:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_geometric_lengths_are_the_inverse_cdf_of_the_same_draws() -> None:
    lengths = geometric_lengths(6, 3.0, torch.Generator().manual_seed(0))
    u = 1.0 - torch.rand(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = [1 + math.floor(math.log(x) / math.log(1.0 - 1.0 / 3.0)) for x in u.tolist()]
    assert lengths.tolist() == expected
    assert geometric_lengths(4, 1.0, torch.Generator()).tolist() == [1, 1, 1, 1]


def test_geometric_lengths_statistics_with_a_seeded_generator() -> None:
    lengths = geometric_lengths(20000, 3.0, torch.Generator().manual_seed(1)).double()
    assert lengths.min() >= 1
    assert abs(float(lengths.mean()) - 3.0) < 0.06  # mean 1 / q
    assert abs(float((lengths == 1).double().mean()) - 1.0 / 3.0) < 0.01  # P(1) = q


def test_span_mask_exact_when_every_span_has_length_one() -> None:
    # n = 4, k = round(0.5 * 4) = 2 among positions 1..3 with unit spans (no length draw): the only
    # layout with a gap between the two spans is positions 1 and 3, whatever the generator
    pad = _padding([4, 1], 4)
    for seed in range(5):
        mask = span_mask(pad, 0.5, 1.0, _gen(seed))
        assert mask.tolist() == [[False, True, False, True], [False, False, False, False]]


def test_span_mask_respects_padding_position_zero_and_ratio() -> None:
    lengths = [40, 25, 10, 5, 3, 2, 1]
    pad = _padding(lengths, 40)
    for seed in range(20):
        mask = span_mask(pad, 0.2, 3.0, _gen(seed))
        assert mask.shape == pad.shape and mask.dtype == torch.bool
        assert not (mask & pad).any()
        assert not mask[:, 0].any()
        for row, n in enumerate(lengths):
            expected = 0 if n < 2 else min(n - 1, max(1, round(0.2 * n)))
            assert int(mask[row].sum()) == expected, (seed, n)


def test_span_mask_is_non_contiguous_with_span_lengths_near_mean() -> None:
    pad = torch.zeros(300, 40, dtype=torch.bool)
    mask = span_mask(pad, 0.2, 3.0, _gen(0))
    runs = [_runs(row) for row in mask.tolist()]
    # several separate spans in most trajectories, not one contiguous block
    assert statistics.mean(len(r) >= 2 for r in runs) > 0.8
    mean_run = statistics.mean(x for r in runs for x in r)
    assert 1.8 < mean_run < 3.5  # mean 3, slightly shortened by truncation to the target count
    # with unit spans every masked position is isolated: spans never touch each other
    unit = span_mask(pad, 0.3, 1.0, _gen(1))
    assert all(x == 1 for row in unit.tolist() for x in _runs(row))
    longer = span_mask(pad, 0.3, 6.0, _gen(1))
    assert statistics.mean(x for row in longer.tolist() for x in _runs(row)) > mean_run


def test_span_mask_when_room_is_tight() -> None:
    pad = _padding([4, 3], 4)
    for seed in range(30):
        mask = span_mask(pad, 0.6, 1.0, _gen(seed))
        assert mask.sum(1).tolist() == [2, 2]
        assert not mask[:, 0].any() and not (mask & pad).any()


def test_span_mask_reproducible() -> None:
    pad = _padding([30, 17, 8, 2], 30)
    a = span_mask(pad, 0.2, 3.0, _gen(7))
    b = span_mask(pad, 0.2, 3.0, _gen(7))
    c = span_mask(pad, 0.2, 3.0, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_span_mask_rejects_bad_arguments() -> None:
    pad = _padding([5], 5)
    with pytest.raises(ValueError, match="ratio"):
        span_mask(pad, 1.0, 3.0, _gen(0))
    with pytest.raises(ValueError, match="mean_span_length"):
        span_mask(pad, 0.2, 0.5, _gen(0))
    with pytest.raises(ValueError, match="suffix"):
        span_mask(torch.tensor([[False, True, False]]), 0.2, 3.0, _gen(0))
