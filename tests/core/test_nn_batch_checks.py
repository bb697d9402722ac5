"""trajzoo.nn.batch_checks: a road-sequence batch against an encoder of N segments."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from trajzoo.data.batch import TrajectoryBatch
from trajzoo.nn.batch_checks import validate_road_batch


def _batch() -> TrajectoryBatch:
    roads = torch.tensor([[1, 2, 3], [4, 0, 0]])
    pad = torch.tensor([[False, False, False], [False, True, True]])
    zeros = torch.zeros(2, 3, dtype=torch.long)
    return TrajectoryBatch(roads=roads, padding_mask=pad, seconds=torch.zeros(2, 3), day_of_week=zeros,
                           minute_of_day=zeros, time_known=~pad, trip_ids=["a", "b"])


def test_a_good_batch_passes_with_and_without_a_mask() -> None:
    batch = _batch()
    validate_road_batch(batch, 5)
    validate_road_batch(batch, 5, torch.tensor([[False, True, False], [True, False, False]]), ids_at_padding=True)


def test_each_fault_is_named() -> None:
    batch = _batch()
    garbage = batch.roads.clone()
    garbage[1, 2] = 99  # at a padded position
    validate_road_batch(replace(batch, roads=garbage), 5)  # ignored by default
    with pytest.raises(ValueError, match=r"outside \[0, 5\)$"):
        validate_road_batch(replace(batch, roads=garbage), 5, ids_at_padding=True)
    real = batch.roads.clone()
    real[0, 1] = 5
    with pytest.raises(ValueError, match=r"outside \[0, 5\) at real positions"):
        validate_road_batch(replace(batch, roads=real), 5)
    with pytest.raises(ValueError, match="batch.seconds has shape"):
        validate_road_batch(replace(batch, seconds=torch.zeros(2, 4)), 5)
    with pytest.raises(ValueError, match="must be \\(B, L\\)"):
        validate_road_batch(replace(batch, roads=batch.roads.flatten()), 5)
    with pytest.raises(ValueError, match="padded position"):
        validate_road_batch(batch, 5, torch.tensor([[False, False, False], [False, True, False]]))
    with pytest.raises(ValueError, match="road_mask must be"):
        validate_road_batch(batch, 5, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one real position"):
        validate_road_batch(replace(batch, padding_mask=torch.tensor([[False] * 3, [True] * 3])), 5)
