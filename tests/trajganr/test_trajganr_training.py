"""Pretraining through the one engine (eqs. 6-7), sampling with co-located positives, the
variants' features, save/load, and the plugin contract."""
import numpy as np
import pytest
import torch

from trajzoo.training.loop import RunContext
from trajzoo_trajganr.model import TrajGANR
from trajzoo_trajganr.parameters import PretrainConfig, TrajGANRConfig
from trajzoo_trajganr.plugin import TrajGANRPlugin
from trajzoo_trajganr.training import batches_of, load_model, pretrain, sample_groups, save_model

from toy import inputs_of, location_view, straight_rows

SPLITS = {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}
SMALL = dict(d_model=8, heads=2, agg_heads=2, ffn_dim=8, layers=1, window=8, queue_size=16, random_locations=2)


def test_samples_bring_co_located_positives():
    gen = torch.Generator().manual_seed(0)
    groups = sample_groups({0: ["a", "b"], 1: ["a"]}, {"a": [0, 1], "b": [0]}, ["a", "b"], 2, gen)
    assert len(groups) == 2 and all(len({loc for loc, _ in g}) == 1 for g in groups)
    assert any(len(g) == 2 for g in groups)
    assert [len(b) for b in batches_of([[1, 2], [3, 4], [5]], 3)] == [2, 3]  # a group is never split


@pytest.mark.parametrize("variant", [{}, {"alignment": "segment"}, {"query_time": "masked"}, {"modalities": "loc"}])
def test_pretrain_changes_weights_and_reproduces(tmp_path, variant):
    rows = straight_rows()
    inputs = inputs_of(location_view(rows, SPLITS), rows, SPLITS)
    out = []
    for run in range(2):
        torch.manual_seed(0)
        m = TrajGANR(TrajGANRConfig(**SMALL, **variant))
        before = {k: v.clone() for k, v in m.state_dict().items()}
        hist = pretrain(m, inputs, PretrainConfig(epochs=2, batch_size=4), RunContext(torch.device("cpu"), 0,
                                                                                     tmp_path / f"{run}"))
        assert len(hist) == 2 and np.isfinite(hist[-1]["train_loss"])
        assert not torch.equal(before["location.mlp.fc1.weight"], m.state_dict()["location.mlp.fc1.weight"])
        assert int(m.queue.count) > 0
        out.append(m.location_features(inputs, "cpu"))
    for k in out[0]:
        assert torch.equal(out[0][k], out[1][k]), k
    assert set(out[0]) == ({"loc"} if variant.get("modalities") == "loc" else {"loc", "traj", "traj_mask"})


def test_no_align_trains_nothing_and_save_load_round_trips(tmp_path):
    rows = straight_rows()
    inputs = inputs_of(location_view(rows, SPLITS), rows, SPLITS)
    torch.manual_seed(0)
    m = TrajGANR(TrajGANRConfig(**SMALL, alignment="none"))
    assert pretrain(m, inputs, PretrainConfig(epochs=2, batch_size=4), RunContext(torch.device("cpu"), 0, tmp_path)) == []
    m.fixed_features["traj_pooled"] = torch.ones(4, 3)
    save_model(tmp_path / "m.pt", m)
    back = load_model(tmp_path / "m.pt")
    f1, f2 = m.location_features(inputs, "cpu"), back.location_features(inputs, "cpu")
    assert all(torch.equal(f1[k], f2[k]) for k in f1) and torch.equal(back.fixed_features["traj_pooled"], torch.ones(4, 3))


def test_plugin_contract_and_config_checks():
    p = TrajGANRPlugin()
    assert p.task_kinds == {"location"} and p.inputs == {"points", "locations"} and p.default_setting == "in-city"
    p.check_config({"hparams": {"d_model": 16, "heads": 2, "agg_heads": 2}, "pretrain": {}, "finetune": {}})
    with pytest.raises(ValueError, match="^hparams: .*alignment"):
        p.check_config({"hparams": {"alignment": "coarse"}})
    assert p.depends_on({"hparams": {"baseline": "foundation"}}) == ["transfertraj"]
    assert p.depends_on({"hparams": {}}) == []


def test_geoclip_missing_names_the_install(monkeypatch):
    import trajzoo_trajganr.baselines as b
    monkeypatch.setattr(b, "geoclip_available", lambda: False)
    section = {"hparams": {}, "variants": {"g": {"hparams": {"baseline": "geoclip"}}, "n": {"hparams": {}}}}
    TrajGANRPlugin().check_config(section)  # the config is valid; the row is left out, with the install command
    assert list(TrajGANRPlugin().unavailable_variants(section)) == ["g"]
    assert "--no-deps geoclip" in TrajGANRPlugin().unavailable_variants(section)["g"]


def test_plugin_embeds_every_trip():
    from test_trajganr_leak import SPLITS as LEAK_SPLITS, city_of
    city = city_of(straight_rows())
    torch.manual_seed(0)
    m = TrajGANR(TrajGANRConfig(**SMALL))
    ids, emb = TrajGANRPlugin().embed(m, city, "cpu")
    assert sorted(ids) == sorted(LEAK_SPLITS) and emb.shape == (5, 8) and emb.dtype == np.float32
