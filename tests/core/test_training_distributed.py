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


def _nt_xent_worker(rank, world_size, port, queue):
    """Process ``rank`` of 2: its share (rows 0:2 or 2:5 of 5) of NT-Xent with the negatives of
    both (all_gather_rows with unequal shares), backward, gradients summed over the processes."""
    from trajzoo.nn.contrastive import nt_xent_share

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    distributed.init_from_env("cpu")
    torch.set_num_threads(1)
    proj, z1, z2 = _nt_xent_inputs()
    start, stop = distributed.share_bounds(z1.shape[0])
    gathered, offset = distributed.all_gather_rows(z1[start:stop])
    share = nt_xent_share(proj(z1[start:stop]), proj(z2[start:stop]), 0.5)
    share.backward()
    distributed.sum_gradients(list(proj.parameters()))
    total = distributed.sum_over_processes(float(share))
    if rank == 0:
        queue.put({"gathered": gathered.tolist(), "offset": offset, "loss": total,
                   "grad": proj.weight.grad.tolist()})
    else:
        queue.put({"offset": offset})
    torch.distributed.destroy_process_group()


def _nt_xent_inputs():
    gen = torch.Generator().manual_seed(3)
    proj = torch.nn.Linear(4, 3)
    with torch.no_grad():
        proj.weight.copy_(torch.randn(3, 4, generator=gen))
        proj.bias.copy_(torch.randn(3, generator=gen))
    return proj, torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)


def test_nt_xent_shares_with_gathered_negatives_sum_to_the_global_batch_loss_and_gradient():
    from trajzoo.nn.contrastive import nt_xent, nt_xent_share

    proj, z1, z2 = _nt_xent_inputs()
    loss = nt_xent(proj(z1), proj(z2), 0.5)
    loss.backward()
    assert float(nt_xent_share(proj(z1), proj(z2), 0.5).detach()) == float(loss.detach())  # one process: nt_xent
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_nt_xent_worker, args=(2, _free_port(), queue), nprocs=2, join=True)
    outs = [queue.get(timeout=60) for _ in range(2)]
    assert sorted(o["offset"] for o in outs) == [0, 2]  # shares of 5 rows: 2 and 3
    out = next(o for o in outs if "loss" in o)
    torch.testing.assert_close(torch.tensor(out["gathered"]), z1)  # rank order, padding cut
    assert out["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
    torch.testing.assert_close(torch.tensor(out["grad"]), proj.weight.grad, rtol=1e-5, atol=1e-7)


def _finetune_road(out: str) -> None:
    """Every process: fine-tune a road encoder + head on TTE (global batches of 7, shares 3 + 4);
    rank 0 writes the test outputs and the history."""
    import json
    import logging
    from pathlib import Path

    import numpy as np

    from test_tasks import toy_city
    from trajzoo.registry import get_model, get_task
    from trajzoo.training import launch
    from trajzoo.training.loop import FineTuneConfig, RunContext, finetune_and_evaluate

    torch.set_num_threads(1)
    city = toy_city(n_trips=60)
    torch.manual_seed(0)
    encoder = get_model("metatrl").build_encoder(city.graph, {"d_model": 16, "heads": 2, "ffn_dim": 32, "layers": 1,
                                                              "gat_layers": 1, "dropout": 0.0})
    task = get_task("tte")
    ctx = RunContext(torch.device("cpu"), 0, Path(out) / "checkpoints", logging.getLogger("test"))
    result = finetune_and_evaluate(encoder, city.graph, task, task.prepare(city),
                                   FineTuneConfig(epochs=2, patience=10, batch_size=7), ctx)
    if launch.is_writer():
        np.save(Path(out) / "outputs.npy", result["test_outputs"])
        (Path(out) / "history.json").write_text(json.dumps(ctx.history))


def test_road_task_finetuning_two_processes_match_one_process(tmp_path):
    """Road-task fine-tuning with 2 processes x a share of every global batch of 7 (3 + 4 trips)
    = 1 process: the same test predictions and the same trip-weighted train losses."""
    import json

    import numpy as np

    from trajzoo.training import launch

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    launch.run(_finetune_road, str(one), processes=1)
    launch.run(_finetune_road, str(two), processes=2, threads=1)
    np.testing.assert_allclose(np.load(two / "outputs.npy"), np.load(one / "outputs.npy"), rtol=1e-5, atol=1e-4)
    ha, hb = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert len(ha) == len(hb) == 2
    for x, y in zip(ha, hb):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-5)
        assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-5)


def test_share_of_and_global_batch_of(monkeypatch):
    """share_of: one process = the batch itself, no view; as rank 1 of 2 (world patched) = rows
    3:6 of a 6-row batch with the view and the global batch set inside the block (so
    global_batch_of finds the whole batch from the share) and the previous view restored after."""
    from road_batch_toy import random_road_batch

    batch = random_road_batch([4, 2, 5, 3, 6, 1], 10, seed=1)
    assert distributed.global_batch_of(batch) is None  # outside a sharded step
    with distributed.share_of(batch) as share:
        assert share is batch and distributed.batch_view() is None
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    with distributed.share_of(batch) as share:
        assert distributed.batch_view() == (6, 3, 6)
        assert torch.equal(share.roads, batch.roads[3:6]) and share.roads.shape[1] == batch.roads.shape[1]
        assert torch.equal(distributed.global_batch_of(share).roads, batch.roads)
        assert distributed.global_batch_of(batch) is None  # not the share of this view
        assert torch.equal(distributed.local_rows(batch.seconds), batch.seconds[3:6])
    assert distributed.batch_view() is None and distributed.global_batch() is None
