"""Padding of toy road-segment batches, shared by the MetaTRL and baseline unit tests."""
from __future__ import annotations

from dataclasses import replace

import torch

from trajzoo.data.batch import TrajectoryBatch


def append_garbage_padding(batch: TrajectoryBatch, extra: int, num_segments: int, seed: int = 1) -> TrajectoryBatch:
    """Append ``extra`` padded columns filled with arbitrary (but in-range) garbage values: road ids
    in ``[0, num_segments)``, seconds, days, minutes and time-known flags. A model that ignores
    padding gives the same outputs for ``batch`` and the result."""
    gen = torch.Generator().manual_seed(seed)
    b = batch.roads.shape[0]

    def cat(x: torch.Tensor, filler: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, filler.to(x.dtype)], dim=1)

    return replace(
        batch,
        roads=cat(batch.roads, torch.randint(0, num_segments, (b, extra), generator=gen)),
        padding_mask=cat(batch.padding_mask, torch.ones(b, extra, dtype=torch.bool)),
        seconds=cat(batch.seconds, torch.rand(b, extra, generator=gen) * 1e4),
        day_of_week=cat(batch.day_of_week, torch.randint(0, 7, (b, extra), generator=gen)),
        minute_of_day=cat(batch.minute_of_day, torch.randint(0, 1440, (b, extra), generator=gen)),
        time_known=cat(batch.time_known, torch.rand(b, extra, generator=gen) > 0.5),
    )
