"""Zero-shot with contexts the sources lack (issue 11, TransferTraj 3): every parameter element the
model uses on the target received a non-zero gradient during source pretraining, both when the
target has a context no source has (POIs at Porto, sources San Francisco and Chengdu without POIs)
and when the target lacks a context every source has (context dropout trains "absent")."""
import logging

import pytest
import torch

from trajzoo.tasks.od_tte import ODTravelTime
from trajzoo.tasks.tp import TrajectoryPrediction
from trajzoo.tasks.tr import TrajectoryRecovery
from trajzoo.training.loop import RunContext
from trajzoo_transfertraj.masking import config_masks
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.objective import context_dropout
from trajzoo_transfertraj.parameters import TransferTrajConfig
from trajzoo_transfertraj.training import PretrainConfig, pretrain

from transfertraj_toy import batch_to_rows, build_batch


def _pretrain_and_record(cfg, sources, tmp_path):
    """Pretrain on ``sources`` ({city: (has_poi, has_road)}); return the model and, per parameter,
    the elements that got a non-zero gradient in some step."""
    torch.manual_seed(0)
    model = TransferTraj(cfg)
    trained = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    def hook(name):
        def record(g):
            trained[name] |= g != 0
        return record

    handles = [p.register_hook(hook(n)) for n, p in model.named_parameters()]
    rows = {c: batch_to_rows(build_batch([20] * 24 + [10] * 8, seed=k, city=c, has_poi=poi, has_road=road))
            for k, (c, (poi, road)) in enumerate(sources.items())}
    ctx = RunContext(device=torch.device("cpu"), seed=0, checkpoint_dir=tmp_path, logger=logging.getLogger("t"))
    pretrain(model, rows, PretrainConfig(epochs=2, batch_size=8, lr=1e-3), ctx)
    for h in handles:  # the hooks would also fire on the target gradients below
        h.remove()
    return model, trained


def _used_on_target(model, target):
    """Per parameter, the elements with a non-zero gradient of the target predictions (eval mode)
    under every task query and the pretraining masks."""
    model.eval()
    names, params = zip(*model.named_parameters())
    used = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in zip(names, params)}
    cfg = model.config
    s, t, _ = config_masks(cfg, target.padding_mask, torch.Generator().manual_seed(3))
    queries = [task.make_query(target) for task in (TrajectoryPrediction(), TrajectoryRecovery(), ODTravelTime())]
    queries.append(target.with_masks(s, t))
    g = torch.Generator().manual_seed(1)
    for q in queries:
        pred = model.predict(q.visible())
        out = (pred["xy"] * torch.randn(pred["xy"].shape, generator=g)).sum() + \
            (pred["t_minutes"] * torch.randn(pred["t_minutes"].shape, generator=g)).sum()
        grads = torch.autograd.grad(out, params, allow_unused=True)
        for n, gr in zip(names, grads):
            if gr is not None:
                used[n] |= gr != 0
    return used


def _untrained_but_used(trained, used):
    return {n: int((used[n] & ~trained[n]).sum()) for n in used if (used[n] & ~trained[n]).any()}


CFG = TransferTrajConfig(d_model=16, heads=2, ffn_dim=16, max_len=32, experts=4, top_k=2)


def test_target_context_the_sources_lack_is_never_used_untrained(tmp_path):
    # San Francisco: roads, no POIs; Chengdu: neither; Porto (target): both
    model, trained = _pretrain_and_record(CFG, {"sanfrancisco": (False, True), "chengdu": (False, False)}, tmp_path)
    assert model.context_used.tolist() == [False, True]
    used = _used_on_target(model, build_batch([20, 14, 11], seed=9, city="porto"))
    assert not _untrained_but_used(trained, used)
    assert used["modalities.poi_missing"].any() and not used["modalities.poi_category.weight"].any()
    assert used["modalities.road_class.weight"].any()  # a context the sources have is used


def test_context_dropout_trains_the_absent_context(tmp_path):
    # every source has both contexts; the target has no road network
    model, trained = _pretrain_and_record(CFG, {"porto": (True, True)}, tmp_path)
    used = _used_on_target(model, build_batch([20, 14, 11], seed=9, city="chengdu", has_road=False))
    assert used["modalities.road_missing"].any()
    assert not _untrained_but_used(trained, used)


def test_without_context_dropout_the_absent_token_stays_untrained(tmp_path):
    """The check above can fail: without context dropout, "road absent" is never trained."""
    cfg = TransferTrajConfig.from_dict({**CFG.to_dict(), "context_dropout": 0.0})
    model, trained = _pretrain_and_record(cfg, {"porto": (True, True)}, tmp_path)
    used = _used_on_target(model, build_batch([20, 14, 11], seed=9, city="chengdu", has_road=False))
    assert "modalities.road_missing" in _untrained_but_used(trained, used)


def test_context_dropout_hides_both_ways():
    batch = build_batch([10] * 400, seed=0)
    out = context_dropout(batch, 0.25, torch.Generator().manual_seed(0))
    frac = (~out.has_context[:, 0]).float().mean(dim=0)  # per kind, fraction of trips dropped
    assert frac.tolist() == pytest.approx([0.25, 0.25], abs=0.06)
    dropped_poi = ~out.has_context[:, 0, 0]
    assert (out.poi_category[dropped_poi] == 0).all() and (out.context[dropped_poi][..., 0] == 0).all()
    kept_road = out.has_context[:, 0, 1]
    assert torch.equal(out.road_class[kept_road], batch.road_class[kept_road])
    assert context_dropout(batch, 0.0, torch.Generator()) is batch
    none = build_batch([10] * 20, seed=0, has_poi=False, has_road=False)
    assert not context_dropout(none, 0.5, torch.Generator().manual_seed(0)).has_context.any()
