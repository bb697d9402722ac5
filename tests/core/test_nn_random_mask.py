"""trajzoo.nn.random_mask: suffix-padding check, uniform random subsets, BERT-style position masks."""
from __future__ import annotations

import pytest
import torch

from trajzoo.nn.random_mask import check_suffix_padding, random_position_mask, random_subset


def _padding(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None] >= torch.tensor(lengths)[:, None]


def test_check_suffix_padding() -> None:
    pad = _padding([3, 1], 3)
    assert torch.equal(check_suffix_padding(pad), pad)
    with pytest.raises(ValueError, match="suffix"):
        check_suffix_padding(torch.tensor([[False, True, False]]))
    with pytest.raises(ValueError, match="bool"):
        check_suffix_padding(torch.zeros(2, 3))


def test_random_subset_picks_the_lowest_scores_of_one_rand_draw() -> None:
    candidates = torch.tensor([[True, True, False, True, True], [False, True, True, False, False]])
    count = torch.tensor([2, 5])
    chosen = random_subset(candidates, count, torch.Generator().manual_seed(4))
    scores = torch.rand(2, 5, generator=torch.Generator().manual_seed(4))
    row0 = sorted([0, 1, 3, 4], key=lambda j: float(scores[0, j]))[:2]
    expected = torch.zeros(2, 5, dtype=torch.bool)
    expected[0, row0] = True
    expected[1, [1, 2]] = True  # more requested than candidates: all of them
    assert torch.equal(chosen, expected)


def test_random_subset_is_uniform_over_candidates() -> None:
    gen = torch.Generator().manual_seed(0)
    candidates = torch.tensor([[False, True, True, True, True]]).expand(4000, 5)
    chosen = random_subset(candidates, torch.ones(4000, dtype=torch.long), gen)
    assert torch.equal(chosen.sum(dim=1), torch.ones(4000, dtype=torch.long))
    frequency = chosen.double().mean(dim=0)
    assert frequency[0] == 0 and torch.all((frequency[1:] - 0.25).abs() < 0.03)


@pytest.mark.parametrize("ratio", [0.15, 0.5])
def test_mask_never_on_padding_and_at_least_one_per_trajectory(ratio) -> None:
    lengths = torch.tensor([12, 9, 5, 2, 1])
    pad = _padding(lengths.tolist(), 15)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = random_position_mask(pad, ratio, gen)
        assert not (mask & pad).any()
        expected = torch.round(lengths.double() * ratio).long().clamp_min(1).minimum(lengths)
        assert torch.equal(mask.sum(dim=1), expected)


def test_mask_counts_by_hand_and_reproducible() -> None:
    pad = _padding([10, 5, 1], 10)
    a = random_position_mask(pad, 0.25, torch.Generator().manual_seed(3))
    # round(2.5) = 2 (half to even), round(1.25) = 1, round(0.25) = 0 -> at least 1
    assert a.sum(dim=1).tolist() == [2, 1, 1]
    assert torch.equal(a, random_position_mask(pad, 0.25, torch.Generator().manual_seed(3)))
    assert bool(a[2, 0])


def test_mask_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        random_position_mask(torch.zeros(2, 3, dtype=torch.bool), 0.0, torch.Generator())
