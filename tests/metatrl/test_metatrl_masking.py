"""Time masking of MetaTRL pre-training (span masks: tests/core/test_nn_span_mask.py)."""
from __future__ import annotations

import pytest
import torch

from trajzoo.nn.span_mask import span_mask
from trajzoo_metatrl.masking import time_mask


def _padding(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None] >= torch.tensor(lengths)[:, None]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
