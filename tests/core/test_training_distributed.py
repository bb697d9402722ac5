"""torch.distributed data parallelism of the training engine: 2 CPU processes (gloo), each with
half of every global batch, end with the same weights and losses as one process on the whole
global batch."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from trajzoo.training import distributed
from trajzoo.training.engine import StepLoss, TrainSchedule, Trainer

GLOBAL_BATCH, STEPS = 6, 4


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(GLOBAL_BATCH * STEPS, 5, generator=gen)
    y = torch.randn(GLOBAL_BATCH * STEPS, 1, generator=gen)
    return x, y


def _run(rank: int, world_size: int, port: int, out: dict) -> None:
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                          RANK=str(rank), LOCAL_RANK=str(rank),
                          GLOO_SOCKET_IFNAME="lo")  # loopback only (the tests block the network)
        assert distributed.init_from_env("cpu") == (rank, world_size)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    x, y = _data()
    # one global batch per step; each process keeps its share (3 rows and 3 rows; with 4 rows
    # per global batch and 3 processes the shares would differ, hence the weights)
    batches = [distributed.shard(list(range(s * GLOBAL_BATCH, (s + 1) * GLOBAL_BATCH))) for s in range(STEPS)]

    def step_loss(m, idx):
        return StepLoss(torch.nn.functional.mse_loss(m(x[idx]), y[idx]), weight=len(idx))

    trainer = Trainer(model, opt, step_loss, TrainSchedule(grad_clip=1.0))
    result = trainer.run_steps(lambda: batches)
    if rank == 0:
        out["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out["loss"] = result.train_loss
    if world_size > 1:
        torch.distributed.destroy_process_group()


def _worker(rank, world_size, port, queue):
    out: dict = {}
    _run(rank, world_size, port, out)
    if rank == 0:  # plain lists: a tensor in a queue outlives its sending process badly
        queue.put({"state": {k: v.tolist() for k, v in out["state"].items()}, "loss": out["loss"]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_the_same_global_batch():
    single: dict = {}
    _run(0, 1, 0, single)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_worker, args=(2, _free_port(), queue), nprocs=2, join=True)
    double = queue.get(timeout=60)
    assert set(double["state"]) == set(single["state"])
    for k, v in single["state"].items():
        torch.testing.assert_close(torch.tensor(double["state"][k]), v, rtol=1e-5, atol=1e-6)
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # guard: the weights moved, so agreement is not trivial
    torch.manual_seed(0)
    init = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).state_dict()
    assert not torch.allclose(init["0.weight"], single["state"]["0.weight"])


def test_shard_covers_every_item_once():
    items = list(range(7))
    parts = [distributed.shard(items, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [2, 2, 3]
    assert sum(parts, []) == items
    assert distributed.shard(items) == items  # one process: everything
