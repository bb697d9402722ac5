"""Dual-modal masking of MetaTRL pre-training (span masking and time masking)."""
from __future__ import annotations

import statistics

import pytest
import torch

from trajzoo_metatrl.masking import span_mask, time_mask


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


def test_time_mask_disjoint_from_span_mask() -> None:
    lengths = [40, 25, 10, 5, 2, 1]
    pad = _padding(lengths, 40)
    for seed in range(10):
        gen = _gen(seed)
        spans = span_mask(pad, 0.2, 3.0, gen)
        times = time_mask(pad, spans, 0.2, gen)
        assert not (times & spans).any()
        assert not (times & pad).any()
        assert not times[:, 0].any()
        candidates = (~pad & ~spans).sum(1) - 1  # minus position 0
        assert times.sum(1).tolist() == torch.round(candidates.double() * 0.2).long().tolist()


def test_time_mask_reproducible_and_random() -> None:
    pad = _padding([30, 20], 30)
    spans = torch.zeros_like(pad)
    a = time_mask(pad, spans, 0.3, _gen(1))
    assert torch.equal(a, time_mask(pad, spans, 0.3, _gen(1)))
    assert not torch.equal(a, time_mask(pad, spans, 0.3, _gen(2)))
    assert not time_mask(pad, spans, 0.0, _gen(1)).any()
    with pytest.raises(ValueError, match="ratio"):
        time_mask(pad, spans, 1.5, _gen(1))
