"""Helpers of the data-parallel tests: run one training function with 1 and with 2 processes,
and let rank 0 write what the comparison reads."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from trajzoo.training import launch


def run_one_and_two(fn, tmp_path: Path) -> tuple[Path, Path]:
    """``fn(out_dir)`` once with 1 process (in ``tmp_path/one``) and once with 2 processes of 1
    thread each (``tmp_path/two``), through :func:`trajzoo.training.launch.run`; the two folders."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    launch.run(fn, str(one), processes=1)
    launch.run(fn, str(two), processes=2, threads=1)
    return one, two


def write_rank0(model: torch.nn.Module, history, out) -> None:
    """Rank 0 (the writer) saves ``model``'s state as ``state.pt`` and ``history`` as
    ``history.json`` in ``out``; the other processes write nothing."""
    if launch.is_writer():
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, Path(out) / "state.pt")
        (Path(out) / "history.json").write_text(json.dumps(history))
