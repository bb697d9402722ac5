"""Data-parallel MetaTRL pretraining (trajzoo.training.distributed): 2 CPU processes (gloo,
spawned by trajzoo.training.launch), each with its share of every global batch of 5 trips, end
with the weights and history losses of 1 process with the same global batch, in-city (eq. 4
only) and cross-city (eqs. 1-4: the meta phase's inner steps and query gradient are sharded and
summed too); and the shares of eq. 20's loss of a batch, summed, are the batch's loss."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from trajzoo.training import distributed, launch
from trajzoo.training.loop import RunContext
from trajzoo_metatrl.meta_learning import PretrainSchedule, meta_pretrain
from trajzoo_metatrl.model import MetaTRLConfig, MetaTRLEncoder
from trajzoo_metatrl.objective import MetaTRLPretrainer

from ddp_support import run_one_and_two, write_rank0
from metatrl_toy import build_batch, build_graph, toy_city

# dropout 0: dropout draws from the global torch RNG per share, the one draw data parallelism does
# not reproduce (masks and shuffles it does)
CONFIG = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1, dropout=0.0,
                       mask_ratio=0.3, mean_span_length=2.0, time_mask_ratio=0.4)
# 12 train trips per city in global batches of 5 (5, 5, 2: shares of 2 + 3 and 1 + 1); 6 source
# TEST trips (query batches of 5 and 1: one process's share of the second is empty)
SCHEDULE = PretrainSchedule(meta_epochs=1, episodes=2, source_steps=2, query_batches=2, target_epochs=2,
                            batch_size=5, lr=3e-3, meta_lr=0.5)
SETTINGS = {"in-city": [], "cross-city": [("a", 1), ("b", 3)]}


def _pretrain(out: str) -> None:
    """Every process: MetaTRL in-city and cross-city on the toy cities; rank 0 writes the target
    pretrainer (and the meta model) and the history of each setting."""
    torch.set_num_threads(1)
    rank = distributed.world()[0]
    forward = MetaTRLEncoder.forward
    seen: list[int] = []

    def recording(self, batch, graph, road_mask=None):  # the trips this process encodes in training
        if torch.is_grad_enabled():
            seen.append(int(batch.roads.shape[0]))
        return forward(self, batch, graph, road_mask)

    MetaTRLEncoder.forward = recording
    try:
        for setting, sources in SETTINGS.items():
            folder = Path(out) / setting
            folder.mkdir(exist_ok=True)
            seen.clear()
            torch.manual_seed(0)
            ctx = RunContext(torch.device("cpu"), 0, folder / "checkpoints", logging.getLogger("metatrl-ddp-test"))
            result = meta_pretrain(toy_city("t", 5), [toy_city(n, s) for n, s in sources], CONFIG, SCHEDULE, ctx)
            models = torch.nn.ModuleDict({"target": result.target})
            if result.meta is not None:
                models["meta"] = result.meta
            write_rank0(models, ctx.history, folder)
            (folder / f"seen-rank{rank}.json").write_text(json.dumps(seen))
    finally:
        MetaTRLEncoder.forward = forward


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The folders of the 1-process and the 2-process runs (one spawn for both settings)."""
    return run_one_and_two(_pretrain, tmp_path_factory.mktemp("metatrl-ddp"))


def _comparable(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` without the key biases b_k of eq. 18's attention: their gradient is zero in exact
    arithmetic (softmax is invariant to a bias common to every key of a query), so their float
    gradients are rounding noise that Adam rescales to steps of ~lr."""
    return torch.zeros(0) if name.endswith("w_k.bias") else x


def _assert_same_training(one: Path, two: Path, phases: list[tuple[str, int]]) -> dict:
    a = torch.load(one / "state.pt", weights_only=True)
    b = torch.load(two / "state.pt", weights_only=True)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(_comparable(name, b[name]), _comparable(name, a[name]), rtol=1e-5, atol=1e-5,
                                   msg=name)
    ha, hb = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert [(h["phase"], h["epoch"]) for h in hb] == [(h["phase"], h["epoch"]) for h in ha] == phases
    for x, y in zip(ha, hb):
        for key in ("train_loss", "val_loss", "meta_movement"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-7), (x["phase"], key)
    # each process encoded only its share of every training batch (the shares sum to the batches)
    full = json.loads((one / "seen-rank0.json").read_text())
    halves = [json.loads((two / f"seen-rank{r}.json").read_text()) for r in (0, 1)]
    assert sum(halves[0]) + sum(halves[1]) == sum(full) and max(halves[0]) < max(full) and max(halves[1]) < max(full)
    # guard: the target's weights moved from their initialisation, so agreement is not trivial
    torch.manual_seed(0)
    init = MetaTRLPretrainer(10, 5, CONFIG).state_dict()
    moved = [n for n in init if not torch.allclose(init[n], a[f"target.{n}"], atol=1e-4)]
    assert len(moved) > len(init) // 2, moved
    return a


def test_in_city_two_processes_match_one_process(runs):
    one, two = runs
    _assert_same_training(one / "in-city", two / "in-city", [("target:t", 0), ("target:t", 1)])


def test_cross_city_two_processes_match_one_process_with_the_meta_phase(runs):
    one, two = runs
    a = _assert_same_training(one / "cross-city", two / "cross-city",
                              [("meta:a", 0), ("meta:b", 0), ("target:t", 0), ("target:t", 1)])
    history = json.loads((one / "cross-city" / "history.json").read_text())
    assert history[0]["meta_movement"] > 1e-3  # the meta step moved the shared parameters
    assert any(n.startswith("meta.") for n in a)
    # rank 0 alone wrote the checkpoints: the same files as one process
    files = lambda root: sorted(p.name for p in (root / "checkpoints").rglob("*"))  # noqa: E731
    assert files(two / "cross-city") == files(one / "cross-city") == [
        "meta-epoch-000.pt", "target-epoch-000.pt", "target-epoch-001.pt"]


@pytest.mark.parametrize("use_time_mask", [True, False])
def test_shares_of_a_global_batch_sum_to_its_loss_and_gradient(use_time_mask):
    """One process, by hand: the shares of eq. 20's loss of a 6-trip batch split at 0, 2 and 6
    rows (each share drawing its masks for the whole batch from the same generator state, as every
    process does) sum to the whole batch's loss and gradient, and leave the generator where the
    whole batch's draws leave it."""
    config = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=1,
                           mask_ratio=0.3, mean_span_length=2.0, time_mask_ratio=0.4, use_time_mask=use_time_mask)
    graph = build_graph()
    full = build_batch([8, 5, 3, 6, 2, 7], seed=3)
    torch.manual_seed(0)
    model = MetaTRLPretrainer(10, 5, config)

    def loss_and_grad(batch, view=None):
        gen = torch.Generator().manual_seed(11)
        distributed.set_batch_view(view, full)
        try:
            loss, stats = model.loss(batch, graph, gen)
        finally:
            distributed.set_batch_view(None)
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
        return loss.detach(), stats, grads, gen.get_state()

    whole, whole_stats, whole_grads, whole_state = loss_and_grad(full)
    assert "global_share" not in whole_stats and whole_stats["n_road_masked"] > 0
    assert (whole_stats["n_time_masked"] > 0) == use_time_mask
    for cut in (0, 2, 6):
        shares = [loss_and_grad(full.rows(start, stop), (6, start, stop)) for start, stop in ((0, cut), (cut, 6))]
        for _, stats, _, state in shares:
            assert stats["global_share"] == 1.0
            assert torch.equal(state, whole_state)  # the masks of the whole batch were drawn
        torch.testing.assert_close(shares[0][0] + shares[1][0], whole, rtol=1e-6, atol=1e-6)
        assert shares[0][1]["n_road_masked"] + shares[1][1]["n_road_masked"] == whole_stats["n_road_masked"]
        for name, g in whole_grads.items():
            torch.testing.assert_close(shares[0][2][name] + shares[1][2][name], g, rtol=1e-5, atol=1e-6, msg=name)
    # a share alone is not the whole loss (the cut at 2 splits the masked positions)
    part = loss_and_grad(full.rows(0, 2), (6, 0, 2))[0]
    assert abs(float(part) - float(whole)) > 1e-3
