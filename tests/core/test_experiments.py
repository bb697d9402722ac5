"""Experiments of the config: expansion, the pretraining keys that let one pretraining serve every
target that uses it, and the refusals (exact messages) of what cannot run."""
from __future__ import annotations

import pandas as pd
import pytest

from trajzoo.experiments import (Experiment, ExperimentError, default_experiment, expand_experiments,
                                 long_results, parse_setting)


class Road:
    inputs = frozenset({"roads"})
    settings = frozenset({"untrained", "in-city", "cross-city"})


class Point:
    inputs = frozenset({"points"})
    settings = frozenset({"untrained", "in-city", "zero-shot", "few-shot"})


PLUGINS = {"road": Road(), "point": Point()}


def config(*runs):
    cities = {"porto": {"osm": {"file": "p.osm"}}, "sf": {"osm": {"file": "s.osm"}}, "chengdu": {"osm": None}}
    models = {"road": {"variants": {"no-x": {}}}, "point": {"variants": {}}}
    return {"cities": cities, "models": models, "experiments": {"runs": list(runs)}}


def test_expansion_and_keys():
    exps = expand_experiments(config(
        {"models": ["road"], "targets": ["porto"], "sources": ["sf"], "settings": ["cross-city"]},
        {"models": ["point"], "targets": ["porto", "sf"], "sources": ["chengdu"], "settings": ["zero-shot", "few-shot-0.05"]},
        {"models": "all", "targets": ["porto"], "settings": ["in-city", "untrained"]},
    ), PLUGINS)
    got = [(e.model, e.target, e.exp_id, e.training) for e in exps]
    assert got == [
        ("road", "porto", "cross-city_from-sf", "sf-to-porto"),
        ("point", "porto", "zero-shot_from-chengdu", "from-chengdu"),
        ("point", "porto", "few-shot-5_from-chengdu", "from-chengdu"),
        ("point", "sf", "zero-shot_from-chengdu", "from-chengdu"),
        ("point", "sf", "few-shot-5_from-chengdu", "from-chengdu"),
        ("road", "porto", "in-city", "in-porto"),
        ("road", "porto", "untrained", "untrained-porto"),  # road tables are the city's own
        ("point", "porto", "in-city", "in-porto"),
        ("point", "porto", "untrained", "untrained"),       # no city-bound parameters
    ]
    by_id = {(e.model, e.target, e.exp_id): e for e in exps}
    zero = by_id[("point", "sf", "zero-shot_from-chengdu")]
    assert zero.pretrain_target is None and zero.training_cities == ["chengdu"] and zero.fraction == 0.0
    cross = by_id[("road", "porto", "cross-city_from-sf")]
    assert cross.training_cities == ["porto", "sf"] and cross.fraction == 1.0
    assert by_id[("point", "porto", "few-shot-5_from-chengdu")].fraction == 0.05
    assert by_id[("road", "porto", "in-city")].sources == ()


def test_variants_all_and_default_flag():
    exps = expand_experiments(config(
        {"models": ["road"], "targets": ["porto"], "settings": ["in-city"]},
        {"models": ["road"], "targets": ["porto"], "settings": ["in-city"], "variants": "all", "default": False},
    ), PLUGINS)
    assert [(e.variant, e.default) for e in exps] == [("full", True), ("no-x", False)]
    assert exps[1].training == "in-porto"  # the variant has its own folder level (results/models/<m>/<variant>/)


@pytest.mark.parametrize("run, message", [
    ({"models": ["road"], "targets": ["porto"], "sources": ["sf"], "settings": ["zero-shot"]},
     "experiments.runs[0]: model 'road' does not support setting 'zero-shot' (it supports ['cross-city', "
     "'in-city', 'untrained']); it reads road-segment ids of the city it was trained on, so it needs target data"),
    ({"models": ["point"], "targets": ["porto"], "settings": ["zero-shot"]},
     "experiments.runs[0]: setting 'zero-shot' needs source cities (sources:)"),
    ({"models": ["point"], "targets": ["porto"], "sources": ["porto", "sf"], "settings": ["zero-shot"]},
     "experiments.runs[0]: target 'porto' is also a source city; zero-shot would not be zero-shot"),
    ({"models": ["road"], "targets": ["chengdu"], "settings": ["in-city"]},
     "experiments.runs[0]: model 'road' reads road networks, and city 'chengdu' has none (cities.chengdu.osm is null)"),
    ({"models": ["nope"], "targets": ["porto"], "settings": ["in-city"]},
     "experiments.runs[0].models: 'nope' is not in models: ['point', 'road']"),
    ({"models": ["road"], "targets": ["porto"], "settings": ["in-city"], "variants": ["no-y"]},
     "experiments.runs[0].variants: 'no-y' is not a variant of road (models.road.variants: ['no-x'])"),
    ({"models": ["point"], "targets": ["porto"], "sources": ["sf"], "settings": ["few-shot-1.5"]},
     "experiments.runs[0].settings: 'few-shot-1.5': the few-shot fraction must be in (0, 1)"),
])
def test_refusals_name_the_entry(run, message):
    with pytest.raises(ExperimentError) as err:
        expand_experiments(config(run), PLUGINS)
    assert str(err.value) == message


def test_parse_setting():
    assert parse_setting("few-shot-0.2", "x") == ("few-shot", 0.2)
    assert parse_setting("in-city", "x") == ("in-city", 1.0)
    with pytest.raises(ExperimentError, match="unknown setting 'few-shot'"):
        parse_setting("few-shot", "x")


def test_default_experiment_prefers_the_model_setting():
    a = Experiment("m", "full", "porto", "in-city", 1.0, ())
    b = Experiment("m", "full", "porto", "cross-city", 1.0, ("sf",))
    c = Experiment("m", "no-x", "porto", "cross-city", 1.0, ("sf",))
    assert default_experiment([a, c, b], "m", "porto", "cross-city") is b
    assert default_experiment([a, c], "m", "porto", "cross-city") is a
    assert default_experiment([a], "m", "sf", "in-city") is None


def test_long_results_aligns_parts_and_keys():
    part = pd.DataFrame({"task": ["tte"], "metric": ["MAE"], "value": [2.5], "n_train": [10], "n_test": [3],
                         "seed": [0]})
    key = {"city": "porto", "model": "m", "variant": "full", "setting": "in-city", "train_fraction": 1.0,
           "sources": "none"}
    table = long_results([part, part.assign(value=3.0)], [key, {**key, "setting": "untrained"}], "abc")
    assert list(table["setting"]) == ["in-city", "untrained"] and list(table["value"]) == [2.5, 3.0]
    assert list(table.columns)[-1] == "config_digest" and set(table["config_digest"]) == {"abc"}
    with pytest.raises(ValueError, match="2 result parts but 1 keys"):
        long_results([part, part], [key], "abc")
