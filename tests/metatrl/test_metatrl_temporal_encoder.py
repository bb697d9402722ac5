"""Transferable temporal encoder (MetaTRL eqs. 11-14)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from trajzoo.data.batch import TrajectoryBatch, hide_times
from trajzoo_metatrl.parameters import classify_or_raise, private_parameters, shared_parameters
from trajzoo_metatrl.temporal_encoder import TransferableTemporalEncoder, interval_deltas

D = 16


def _encoder(**kwargs: bool) -> TransferableTemporalEncoder:
    torch.manual_seed(0)
    return TransferableTemporalEncoder(D, num_buckets=8, **kwargs)


def test_shape_and_classification(batch: TrajectoryBatch) -> None:
    enc = _encoder()
    out = enc(batch)
    assert out.shape == (*batch.roads.shape, D)
    classify_or_raise(enc)
    assert set(shared_parameters(enc)) == {
        "shared_time_mask", "shared_bucket_embedding",
        "shared_interval_mlp.fc1.weight", "shared_interval_mlp.fc1.bias",
        "shared_interval_mlp.fc2.weight", "shared_interval_mlp.fc2.bias",
    }
    assert set(private_parameters(enc)) == {"private_day_embedding.weight", "private_minute_embedding.weight"}


def test_interval_deltas() -> None:
    seconds = torch.tensor([[0.0, 10.0, 25.0, 0.0], [0.0, 7.0, 7.0, 30.0]])
    pad = torch.tensor([[False, False, False, True], [False, False, False, False]])
    assert torch.equal(interval_deltas(seconds, pad), torch.tensor([[0.0, 10.0, 15.0, 0.0], [0.0, 7.0, 0.0, 23.0]]))


def test_period_embedding_without_interval(batch: TrajectoryBatch) -> None:
    enc = _encoder(use_interval=False)
    expected = enc.private_day_embedding(batch.day_of_week) + enc.private_minute_embedding(batch.minute_of_day)
    assert torch.allclose(enc(batch), expected)
    # intervals play no role
    assert torch.equal(enc(batch), enc(replace(batch, seconds=batch.seconds * 3.0)))
    assert "shared_interval_mlp.fc1.weight" not in shared_parameters(enc)


def test_interval_embedding_added(batch: TrajectoryBatch) -> None:
    enc = _encoder()
    out = enc(batch)
    period = enc.private_day_embedding(batch.day_of_week) + enc.private_minute_embedding(batch.minute_of_day)
    assert not torch.allclose(out, period)
    stretched = enc(replace(batch, seconds=batch.seconds * 3.0))
    real = ~batch.padding_mask
    real[:, 0] = False  # Delta_1 = 0 whatever the times
    assert not torch.allclose(out[real], stretched[real])
    assert torch.allclose(out[:, 0], stretched[:, 0])


def test_time_mask_vector_where_time_unknown(batch: TrajectoryBatch) -> None:
    enc = _encoder()
    hidden = torch.zeros_like(batch.padding_mask)
    hidden[0, 2:5] = True
    hidden[1, 1] = True
    hidden_batch = hide_times(batch, hidden)
    out = enc(hidden_batch)
    unknown = ~hidden_batch.time_known
    assert unknown.sum() == 4
    assert torch.equal(out[unknown], enc.shared_time_mask.detach().expand(4, D))
    known = ~unknown & ~batch.padding_mask
    assert not torch.isclose(out[known], enc.shared_time_mask.detach()).all(dim=-1).any()


def test_disabled_time_encoder_returns_zeros(batch: TrajectoryBatch) -> None:
    enc = _encoder(use_time_encoder=False)
    out = enc(batch)
    assert out.shape == (*batch.roads.shape, D)
    assert torch.equal(out, torch.zeros_like(out))
    assert not list(enc.parameters())


def test_out_of_range_indices_raise(batch: TrajectoryBatch) -> None:
    enc = _encoder()
    day = batch.day_of_week.clone()
    day[0, 0] = 7
    with pytest.raises(ValueError, match="day_of_week"):
        enc(replace(batch, day_of_week=day))
    minute = batch.minute_of_day.clone()
    minute[0, 1] = 1440
    with pytest.raises(ValueError, match="minute_of_day"):
        enc(replace(batch, minute_of_day=minute))
