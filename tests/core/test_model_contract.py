"""Every installed model follows the one contract (trajzoo.registry.ModelPlugin), its config
classes check the default config's sections and refuse a typo naming the key, and tasks and
readers are found through entry points."""
from __future__ import annotations

import pytest
import yaml

from trajzoo.registry import (INPUTS, SETTINGS, TASK_KINDS, get_model, get_reader, list_models, list_readers,
                              list_tasks, task_class)

MODELS = ["metatrl", "node2vec", "smartraj2", "start", "trajganr", "transfertraj", "transformer-mlm"]


def test_installed_models_tasks_and_readers():
    assert list_models() == MODELS
    assert {"tte", "dp", "cla_taxi", "cla_calltype", "tp", "tr", "od_tte", "road_label", "dest_grid"} <= set(list_tasks())
    assert {"traffic_speed", "road_popularity", "aoi_function", "hard_braking"} <= set(list_tasks())
    assert list_readers() == ["cabspotting", "deeptte_jsonl", "fixes", "porto_csv"]
    assert callable(get_reader("porto_csv"))
    with pytest.raises(KeyError, match="no trajzoo.readers entry point named 'gpx'"):
        get_reader("gpx")


@pytest.mark.parametrize("name", MODELS)
def test_plugin_declares_the_contract(name):
    plugin = get_model(name)
    assert plugin.name == name
    assert plugin.inputs and set(plugin.inputs) <= set(INPUTS)
    assert {"untrained", "in-city"} <= set(plugin.settings) <= set(SETTINGS)
    assert plugin.default_setting in plugin.settings
    assert plugin.task_kinds and set(plugin.task_kinds) <= set(TASK_KINDS)
    if "roads" in plugin.inputs:  # road-segment ids: city-bound, so no zero-/few-shot
        assert not {"zero-shot", "few-shot"} & set(plugin.settings)
    for method in ("check_config", "build", "pretrain", "save", "load", "embed"):
        assert callable(getattr(plugin, method)), method


@pytest.mark.parametrize("name", MODELS)
def test_config_classes_check_the_model_section(name, repo):
    section = yaml.safe_load((repo / "config.yaml").read_text())["models"][name]
    plugin = get_model(name)
    plugin.check_config(section)  # the default config is valid
    with pytest.raises(ValueError, match=r"^hparams: .*d_modle"):
        plugin.check_config({**section, "hparams": {**section["hparams"], "d_modle": 8}})
    with pytest.raises(ValueError, match=r"^pretrain: .*nonsense"):
        plugin.check_config({**section, "pretrain": {**section["pretrain"], "nonsense": 1}})
    with pytest.raises(ValueError, match=r"^finetune: .*epoch"):
        plugin.check_config({**section, "finetune": {**section["finetune"], "epoch": 1}})
    with pytest.raises(ValueError, match=r"^variants\.v\.hparams: .*d_modle"):
        plugin.check_config({**section, "variants": {"v": {"hparams": {"d_modle": 8}}}})
    with pytest.raises(ValueError, match=r"^variants\.v: unknown key\(s\) \['sources'\]"):
        plugin.check_config({**section, "variants": {"v": {"sources": []}}})


def test_task_kinds():
    assert task_class("tte").input_kind == "road" and task_class("tp").input_kind == "point"
    assert task_class("od_tte").whole_trip and not task_class("tp").whole_trip
    for name in ("traffic_speed", "road_popularity", "aoi_function", "hard_braking"):
        assert task_class(name).input_kind == "location"
    assert "location" in TASK_KINDS and "locations" in INPUTS
    assert task_class("road_label").input_kind == "segment" and task_class("dest_grid").input_kind == "road"
    assert task_class("dest_grid").required_inputs == {"roads", "points", "grid"}
