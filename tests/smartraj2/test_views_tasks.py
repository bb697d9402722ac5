"""Three-view construction, the new core tasks and SMARTraj2's leak tests (by perturbation), on a
tiny synthetic city (smartraj2_synthetic.py)."""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from smartraj2_synthetic import prepared
from trajzoo.data.city import collate, trip_rows
from trajzoo.data.views import ViewFilters, build_city_views, collate_views, fix_positions
from trajzoo.metrics import classification_metrics, top_k_accuracy
from trajzoo.tasks.dest_grid import DestinationGridPrediction
from trajzoo.tasks.dp import DestinationPrediction
from trajzoo.tasks.road_label import RoadLabelClassification
from trajzoo.tasks.tte import TravelTimeEstimation
from trajzoo.training.loop import RunContext
from trajzoo_smartraj2.model import SMARTraj2, SMARTraj2Config
from trajzoo_smartraj2.pretraining import PretrainSchedule, prepare_city, pretrain_multi_city

LOOSE = {"min_segments": 1, "min_cells": 1, "min_points": 1}
TINY = {"d_model": 8, "heads": 2, "ffn_dim": 16, "layers": 1, "gat_layers": 1, "gate_hidden": 8, "gate_embed": 4,
        **LOOSE}


def test_fix_positions_exact():
    # B^{p|r} from entry times: [enter_i, enter_{i+1}), last segment up to the end time
    pos = fix_positions(np.array([0, 5, 10, 15, 20, 25]), np.array([5.0, 15.0]), 22.0)
    assert pos.tolist() == [-1, 0, 0, 1, 1, -1]


def test_filters_count_every_rejection():
    city = prepared(n_trips=6)
    views = build_city_views(city)  # the paper's filters: 6-segment trips are too short
    qc = dict(zip(views.qc["outcome"], views.qc["count"]))
    assert qc == {"in": 6, "kept": 0, "rejected:too_few_segments": 6}
    views = build_city_views(city, ViewFilters(min_segments=6, max_segments=6, min_cells=1, max_cells=4,
                                               min_points=1))
    qc = dict(zip(views.qc["outcome"], views.qc["count"]))
    assert qc == {"in": 6, "kept": 0, "rejected:too_many_cells": 6}  # 5 cells each
    views = build_city_views(city, ViewFilters(**LOOSE))
    assert len(views.records) == 6 and views.n_cells == 5
    rec = views.records["t0"]
    assert rec["fix_position"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert rec["fix_cell"].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 2
    with pytest.raises(ValueError, match="min_cells <= max_cells"):
        ViewFilters(min_cells=5, max_cells=4)


def _route(city, prefix=None, times_hidden=False):
    trips = city.road.trips
    batch = collate(trip_rows(trips.iloc[:2], None if prefix is None else np.array([prefix, prefix])))
    return TravelTimeEstimation().input_view(batch) if times_hidden else batch


def test_collate_views_hides_what_the_route_hides():
    city = prepared()
    views = build_city_views(city, ViewFilters(**LOOSE))
    full = collate_views(_route(city), views)
    assert (~full.gps_padding).sum(dim=1).tolist() == [18, 18] and (~full.cell_padding).sum(dim=1).tolist() == [5, 5]
    assert full.gps_position[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert full.cells[0].tolist() == [0, 1, 2, 3, 4]
    # semantics: cell 0 -> category 0, cell 2 -> half 1 / half 2, others none
    assert full.cell_has_poi[0].tolist() == [True, False, True, False, True]
    assert full.semantics[0, 2, 1] == 0.5
    prefix = collate_views(_route(city, prefix=4), views)  # a task hid the last 2 segments
    assert (~prefix.gps_padding).sum(dim=1).tolist() == [12, 12]
    assert int(prefix.gps_position.max()) == 3 and prefix.cells[0].tolist() == [0, 1, 2]
    hidden = collate_views(_route(city, times_hidden=True), views)  # TTE: no fix (timestamps, count)
    assert hidden.gps_padding.all() and (~hidden.cell_padding).sum(dim=1).tolist() == [5, 5]


def test_city_without_pois_gets_no_poi_semantics():
    city = prepared(pois=False)
    views = build_city_views(city, ViewFilters(**LOOSE))
    assert not views.has_poi.any()
    torch.manual_seed(0)
    model = _model(city)
    vb = model.views_of(_route(city), city.road.graph)
    s = model.grid.semantics(vb.semantics, vb.cell_has_poi)
    torch.testing.assert_close(s[0, 0], model.grid.no_poi)
    assert torch.isfinite(model.embed(_route(city), city.road.graph)).all()


def test_acc_at_k_is_recall_at_k():
    y = np.array([0, 1, 2, 2])
    s = np.array([[0.9, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0], [0.1, 0.5, 0.3, 0.1], [0.0, 0.0, 0.1, 0.9]])
    assert top_k_accuracy(y, s, 1) == 0.25  # only row 0
    assert top_k_accuracy(y, s, 2) == 0.75  # rows 0, 1 (0.2 second), 2 (0.3 second)
    m = classification_metrics(y, s, ks=(2,), acc_ks=(1, 2))
    assert m["Acc@2"] == m["Recall@2"] == 0.75 and m["Acc@1"] == 0.25


def test_road_label_labels_split_and_hidden_class():
    city = prepared()
    task = RoadLabelClassification(seed=0)
    data = task.prepare(city.road.graph, city.road.trips)
    qc = dict(zip(data.qc["outcome"], data.qc["count"]))
    assert qc == {"in": 8, "kept": 7, "rejected:excluded_class:motorway": 1}
    segs = np.concatenate([data.segments[s] for s in ("train", "val", "test")])
    assert sorted(segs.tolist()) == [0, 1, 2, 3, 4, 6, 7]
    labels = dict(zip(segs.tolist(), np.concatenate([data.labels[s] for s in ("train", "val", "test")]).tolist()))
    assert labels == {0: 0, 1: 0, 2: 1, 3: 2, 4: 3, 6: 3, 7: 1}  # primary_link folded into primary
    hidden = task.input_graph(city.road.graph)
    assert hidden.attributes[:, :6].abs().sum() == 0 and torch.equal(hidden.attributes[:, 6],
                                                                    city.road.graph.attributes[:, 6])


def _model(city, **over):
    config = SMARTraj2Config.from_dict({**TINY, **over})
    views, spec = prepare_city(city, config)
    model = SMARTraj2([spec], config).eval()
    model.attach_views(views)
    return model


def test_road_label_input_carries_no_road_class():
    # perturbing the class one-hot of the graph does not change what the model sees for this task
    city = prepared()
    torch.manual_seed(0)
    model = _model(city)
    task = RoadLabelClassification()
    g = city.road.graph
    other = copy.copy(g)
    other.attributes = g.attributes.clone()
    other.attributes[:, :6] = torch.roll(other.attributes[:, :6], 1, dims=1)
    with torch.no_grad():
        a = model.segment_embeddings(task.input_graph(g))
        b = model.segment_embeddings(task.input_graph(other))
        c = model.segment_embeddings(other)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)  # the class columns do reach the encoder when not hidden


def _perturbed(city, trip_id, fixes=(), segments=(), cells=()):
    """A copy of ``city`` with trip ``trip_id``'s fixes ``fixes`` moved, its segments ``segments``
    replaced and the cells of fixes ``cells`` changed."""
    city = copy.deepcopy(city)
    for rows in city.points.values():
        for r in rows:
            if r["trip_id"] == trip_id:
                r["x"] = r["x"].copy()
                r["x"][list(fixes)] += 5000.0
    trips = city.road.trips
    i = int(np.flatnonzero(trips["trip_id"] == trip_id)[0])
    roads = trips.at[i, "roads"].copy()
    roads[list(segments)] = 7
    trips.at[i, "roads"] = roads
    g = city.grid["trips"]
    j = int(np.flatnonzero(g["trip_id"] == trip_id)[0])
    pc = np.asarray(g.at[j, "point_cells"]).copy()
    pc[list(cells)] = 0
    g.at[j, "point_cells"] = pc
    return city


def _task_embedding(city, task, trip_id="t3"):  # a TEST trip (F^city reads the train split)
    torch.manual_seed(0)
    model = _model(city)
    data = task.prepare_prepared(city) if hasattr(task, "prepare_prepared") else task.prepare(city.road)
    rows = [r for s in data.rows.values() for r in s if r["trip_id"] == trip_id]
    with torch.no_grad():
        return model.embed(task.input_view(collate(rows)), city.road.graph), data


def test_dest_grid_hides_the_last_cell_in_every_view():
    city = prepared()
    task = DestinationGridPrediction()
    base, data = _task_embedding(city, task)
    row = [r for s in data.rows.values() for r in s if r["trip_id"] == "t3"][0]
    label = [lab for s in data.rows for r, lab in zip(data.rows[s], data.labels[s]) if r["trip_id"] == "t3"][0]
    assert label == 4 and len(row["roads"]) == 5  # segments left before the final cell (fix 16) is entered
    # the final visit (fixes 16, 17, cell 4), the fix before it and the hidden segment 5: no effect
    hidden = _perturbed(city, "t3", fixes=(15, 16, 17), segments=(5,), cells=(16, 17))
    emb, _ = _task_embedding(hidden, task)
    torch.testing.assert_close(base, emb)
    visible = _perturbed(city, "t3", fixes=(3,))  # a visible fix does change it
    emb, _ = _task_embedding(visible, task)
    assert not torch.allclose(base, emb)


def test_dp_destination_road_hidden_in_every_view():
    city = prepared()
    task = DestinationPrediction(hidden_segments=2, min_prefix=2)
    base, _ = _task_embedding(city, task)
    hidden = _perturbed(city, "t3", fixes=range(12, 18), segments=(4, 5), cells=range(12, 18))
    emb, _ = _task_embedding(hidden, task)
    torch.testing.assert_close(base, emb)


def test_tte_times_hidden_in_every_view():
    city = prepared()
    task = TravelTimeEstimation()
    base, _ = _task_embedding(city, task)
    slow = copy.deepcopy(city)
    for rows in slow.points.values():  # the test trip t3 three times slower: every later time differs
        for r in rows:
            if r["trip_id"] == "t3":
                r["t"] = r["t"][0] + (r["t"] - r["t"][0]) * 3
    trips = slow.road.trips
    i = int(np.flatnonzero(trips["trip_id"] == "t3")[0])
    e = trips.at[i, "enter_times"]
    trips.at[i, "end_time"] = e[0] + (trips.at[i, "end_time"] - e[0]) * 3
    trips.at[i, "enter_times"] = e[0] + (e - e[0]) * 3
    from trajzoo.data.city import add_time_features
    slow.road.trips = add_time_features(trips.drop(columns=["seconds", "day_of_week", "minute_of_day"]), "UTC")
    emb, _ = _task_embedding(slow, task)
    torch.testing.assert_close(base, emb)


VARIANTS = [{}, {"use_diff_loss": False}, {"use_gating": False}, {"use_grid": False}, {"use_gps": False},
            {"use_route": False}, {"use_invariant": False, "use_specific": False},
            {"use_gating": False, "use_specific": False}]


@pytest.mark.parametrize("over", VARIANTS)
def test_every_ablation_trains_and_embeds(over):
    city = prepared()
    torch.manual_seed(0)
    model = _model(city, **over).train()
    vb = model.views_of(_route(city), city.road.graph)
    loss, stats = model.loss(vb, city.road.graph, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and set(stats) == {"l_diff", "l_mlm", "l_pair"}
    if over.get("use_diff_loss") is False or over.get("use_specific") is False:
        assert stats["l_diff"] == 0.0
    assert model.embed(_route(city), city.road.graph).shape == (2, 8)
    assert (model.segment_embeddings(city.road.graph) is None) == (over.get("use_route") is False)


def test_multi_city_joint_pretraining(tmp_path):
    a, b = prepared("porto"), prepared("sanfrancisco", n_trips=8)
    ctx = RunContext(torch.device("cpu"), 0, tmp_path, logging.getLogger("t"))
    torch.manual_seed(0)
    model = pretrain_multi_city([a, b], SMARTraj2Config.from_dict(TINY),
                                PretrainSchedule(epochs=2, batch_size=2, warmup_epochs=1), ctx)
    assert set(model.gates) == {"porto", "sanfrancisco"} and set(model.disentangle.specific) == {"porto", "sanfrancisco"}
    rows = [h for h in ctx.history if h["phase"] == "pretrain:porto+sanfrancisco"]
    assert len(rows) == 2 and all(np.isfinite(r["train_loss"]) for r in rows) and "l_diff" in rows[0]
    assert rows[0]["lr"] == pytest.approx(1e-3)  # end of the warm-up epoch: full lr, then the cosine
    assert rows[1]["lr"] < 1e-3
    for city in (a, b):
        assert model.embed(_route(city), city.road.graph).shape == (2, 8)
