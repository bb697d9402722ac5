"""Fixtures of the TransferTraj tests; the batch builders are in transfertraj_toy.py."""
from __future__ import annotations

import pytest
import torch

from trajzoo_transfertraj.parameters import TransferTrajConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and 1 thread avoids OpenMP oversubscription
    slowdowns when other jobs share the cores; restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_config() -> TransferTrajConfig:
    """A small, fast configuration (d = 32, 2 blocks, C = 8, k = 4)."""
    return TransferTrajConfig(d_model=32, heads=4, ffn_dim=32, layers=2, experts=8, top_k=4, max_len=64)
