"""No label leak (issue 11, TransferTraj 1): by perturbation, changing anything at a hidden point
other than what the task reveals changes no prediction, for TP, TR, OD-TTE and the pretraining
masks; the context features (road class, lanes, maxspeed, POI category, POI count, road km) are
computed at the true location and are therefore hidden with it."""
from dataclasses import replace

import pytest
import torch

from trajzoo.data.points import MAX_LANES, MAXSPEED_BUCKETS_KMH, POI_CATEGORIES, ROAD_CLASSES, PointBatch
from trajzoo.tasks.od_tte import ODTravelTime
from trajzoo.tasks.tp import TrajectoryPrediction
from trajzoo.tasks.tr import TrajectoryRecovery
from trajzoo_transfertraj.masking import config_masks
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.parameters import TransferTrajConfig

from transfertraj_toy import build_batch

CFG = TransferTrajConfig(d_model=32, heads=4, ffn_dim=32, layers=2, max_len=64, gate_noise=1.0)


def perturb(batch: PointBatch, spatial: torch.Tensor, temporal: torch.Tensor, seed: int = 1) -> PointBatch:
    """Change every value at the ``spatial`` positions (x, y and all context features) and every
    time feature at the ``temporal`` positions, to other valid values."""
    g = torch.Generator().manual_seed(seed)
    b, l = batch.padding_mask.shape

    def ids(t, hi, where):
        new = torch.randint(0, hi + 1, (b, l), generator=g)
        new = torch.where(new == t, (t + 1) % (hi + 1), new)  # always a different value
        return torch.where(where, new, t)

    s1 = spatial.unsqueeze(-1)
    return replace(
        batch,
        xy=batch.xy + 3000.0 * torch.randn(b, l, 2, generator=g) * s1,
        road_class=ids(batch.road_class, len(ROAD_CLASSES), spatial),
        road_lanes=ids(batch.road_lanes, MAX_LANES, spatial),
        road_maxspeed=ids(batch.road_maxspeed, len(MAXSPEED_BUCKETS_KMH), spatial),
        poi_category=ids(batch.poi_category, len(POI_CATEGORIES), spatial),
        context=batch.context + (1.0 + 5.0 * torch.rand(b, l, 2, generator=g)) * s1,
        t_minutes=batch.t_minutes + (5.0 + 50.0 * torch.rand(b, l, generator=g)) * temporal,
        minute_of_day=ids(batch.minute_of_day, 1439, temporal),
        day_of_week=ids(batch.day_of_week, 6, temporal),
    )


def _model(train: bool = False) -> TransferTraj:
    torch.manual_seed(0)
    m = TransferTraj(CFG)
    with torch.no_grad():  # non-trivial heads, so that predictions depend on the tokens
        m.xy_head.weight.normal_(std=0.5)
        m.t_head.weight.normal_(std=0.5)
    return m.train(train)


def _predict(model, query, seed=5):
    torch.manual_seed(seed)  # same gate noise in training mode
    return model.predict(query.visible())


def _assert_same(a, b):
    assert torch.equal(a["xy"], b["xy"]) and torch.equal(a["t_minutes"], b["t_minutes"])


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("task", [TrajectoryPrediction(), TrajectoryRecovery()], ids=["tp", "tr"])
def test_tp_tr_hidden_points_do_not_leak(task, train):
    model = _model(train)
    batch = build_batch([30, 17, 12], seed=3)
    query = task.make_query(batch)
    assert int(query.spatial_mask.sum()) > 0
    noisy = task.make_query(perturb(batch, query.spatial_mask, query.temporal_mask))
    _assert_same(_predict(model, query), _predict(model, noisy))
    # the same perturbation at VISIBLE points does change the predictions (the test can fail)
    seen = ~query.spatial_mask & ~query.padding_mask
    seen[:, 0] = False
    moved = task.make_query(perturb(batch, seen, torch.zeros_like(seen)))
    assert (_predict(model, moved)["xy"] - _predict(model, query)["xy"]).abs().max() > 1e-3


@pytest.mark.parametrize("what", ["context", "road_poi_ids"])
def test_context_alone_at_hidden_points_does_not_leak(what):
    """The context features alone (the leak of issue 11) at hidden points change nothing."""
    model = _model()
    batch = build_batch([30, 17], seed=4)
    query = TrajectoryPrediction().make_query(batch)
    full = perturb(query, query.spatial_mask, torch.zeros_like(query.spatial_mask))
    if what == "context":
        noisy = replace(query, context=full.context)
    else:
        noisy = replace(query, road_class=full.road_class, road_lanes=full.road_lanes,
                        road_maxspeed=full.road_maxspeed, poi_category=full.poi_category)
    _assert_same(_predict(model, query), _predict(model, noisy))
    # the model itself applies visible(): a caller passing the raw query cannot leak either
    _assert_same(model.predict(query), model.predict(noisy))


@pytest.mark.parametrize("train", [False, True])
def test_od_tte_reads_only_origin_destination_and_departure(train):
    model = _model(train)
    task = ODTravelTime()
    batch = build_batch([25, 9, 14], seed=5)
    query = task.make_query(batch)
    # hidden: every intermediate point entirely, and the destination's time features
    inner = ~batch.padding_mask
    inner[:, 0] = False
    last = batch.lengths - 1
    inner[torch.arange(3), last] = False
    dest = torch.zeros_like(inner)
    dest[torch.arange(3), last] = True
    noisy = task.make_query(perturb(batch, inner, inner | dest))
    _assert_same(_predict(model, query), _predict(model, noisy))
    # the destination's context is revealed by the task and is read
    seen = perturb(batch, dest, torch.zeros_like(dest))
    seen = replace(seen, xy=batch.xy)
    assert (_predict(model, task.make_query(seen))["t_minutes"] - _predict(model, query)["t_minutes"]).abs().max() > 1e-4


@pytest.mark.parametrize("train", [False, True])
def test_pretraining_masks_do_not_leak(train):
    model = _model(train)
    batch = build_batch([40, 31, 22, 9, 5], seed=6)
    cfg = model.config
    spatial, temporal, _ = config_masks(cfg, batch.padding_mask, torch.Generator().manual_seed(0))
    assert spatial.any() and temporal.any()
    query = batch.with_masks(spatial, temporal)
    noisy = perturb(batch, spatial, temporal).with_masks(spatial, temporal)
    _assert_same(_predict(model, query), _predict(model, noisy))
