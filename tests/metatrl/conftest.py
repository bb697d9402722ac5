"""Small synthetic road graph and trajectory batches for the MetaTRL tests."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo_metatrl.model import MetaTRLConfig

from metatrl_toy import append_padding, build_batch, build_graph


@pytest.fixture
def graph() -> RoadGraph:
    return build_graph()


@pytest.fixture
def batch() -> TrajectoryBatch:
    return build_batch([12, 9, 5, 2, 1])


@pytest.fixture
def small_config() -> MetaTRLConfig:
    return MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8)


@pytest.fixture
def make_batch() -> Callable[..., TrajectoryBatch]:
    return build_batch


@pytest.fixture
def make_graph() -> Callable[..., RoadGraph]:
    return build_graph


@pytest.fixture
def pad_batch() -> Callable[..., TrajectoryBatch]:
    return append_padding
