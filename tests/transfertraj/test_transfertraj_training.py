"""Multi-city pretraining loop, checkpoint resume, save/load, plugin registration."""
import logging

import pytest
import torch

from trajzoo.registry import get_model
from trajzoo.training.loop import RunContext
from trajzoo_transfertraj.model import TransferTraj
from trajzoo_transfertraj.parameters import TransferTrajConfig
from trajzoo_transfertraj.training import PretrainConfig, cap_rows, interleaved_batches, load_model, pretrain, save_model

from transfertraj_toy import batch_to_rows, build_batch

CFG = TransferTrajConfig(d_model=16, heads=2, ffn_dim=16, max_len=32)


def _rows():
    return {"a": batch_to_rows(build_batch([20] * 10 + [8] * 6, seed=1, city="a", has_poi=False)),
            "b": batch_to_rows(build_batch([15] * 12, seed=2, city="b", has_road=False))}


def _ctx(tmp_path, seed=0):
    return RunContext(device=torch.device("cpu"), seed=seed, checkpoint_dir=tmp_path, logger=logging.getLogger("t"))


def test_interleaving_covers_every_trip_once():
    rows = _rows()
    seen = {}
    for batch in interleaved_batches(rows, 5, 32, torch.Generator().manual_seed(0)):
        seen.setdefault(batch.city, []).extend(batch.trip_ids)
    assert {c: sorted(v) for c, v in seen.items()} == {c: sorted(r["trip_id"] for r in rs) for c, rs in rows.items()}


def test_pretrain_history_resume_and_save_load(tmp_path):
    rows = _rows()
    sched = PretrainConfig(epochs=2, batch_size=8, lr=2e-3)
    torch.manual_seed(0)
    full = TransferTraj(CFG)
    init = {k: v.clone() for k, v in full.state_dict().items()}
    hist = pretrain(full, rows, sched, _ctx(tmp_path / "full"), val_rows_by_city={"a": rows["a"][:4]})
    assert [h["epoch"] for h in hist] == [0, 1]
    assert hist[0]["steps"] == 2 + 2 and hist[0]["n_trips"] == 28
    assert all(sum(row) == sum(hist[0]["expert_usage"][0]) for row in hist[0]["expert_usage"])
    assert hist[1]["val_loss"] == hist[1]["val_loss"]  # not NaN: validation rows given

    # a run killed after epoch 0 resumes from its checkpoint and ends with the same weights
    torch.manual_seed(0)
    part = TransferTraj(CFG)
    part.load_state_dict(init)
    one = PretrainConfig(epochs=2, batch_size=8, lr=2e-3, max_steps_per_epoch=None)
    ctx = _ctx(tmp_path / "part")
    calls = {"n": 0}
    import trajzoo_transfertraj.training as tr

    real = tr.pretraining_loss

    def dying(model, batch, gen):
        calls["n"] += 1
        if calls["n"] == 6:  # inside epoch 1 (epoch 0 has 4 steps)
            raise KeyboardInterrupt
        return real(model, batch, gen)

    tr.pretraining_loss = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(part, rows, one, ctx, val_rows_by_city={"a": rows["a"][:4]})
    finally:
        tr.pretraining_loss = real
    torch.manual_seed(123)  # the global RNG is restored from the checkpoint
    resumed = TransferTraj(CFG)
    resumed.load_state_dict(init)
    hist2 = pretrain(resumed, rows, one, _ctx(tmp_path / "part"), val_rows_by_city={"a": rows["a"][:4]})
    assert [h["epoch"] for h in hist2] == [0, 1]
    for k, v in full.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k

    save_model(tmp_path / "m.pt", full)
    again = load_model(tmp_path / "m.pt")
    batch = build_batch([6], seed=4)
    full.eval()
    assert torch.equal(again.predict(batch)["xy"], full.predict(batch)["xy"])


def test_pretrain_rejects_empty_and_caps_rows(tmp_path):
    with pytest.raises(ValueError, match="b"):
        pretrain(TransferTraj(CFG), {"a": _rows()["a"], "b": []}, PretrainConfig(epochs=1), _ctx(tmp_path))
    rows = list(range(10))
    assert cap_rows(rows, 4, 0) == cap_rows(rows, 4, 0) and len(cap_rows(rows, 4, 0)) == 4
    assert cap_rows(rows, None, 0) == rows
    with pytest.raises(ValueError, match="unknown"):
        PretrainConfig.from_dict({"epoch": 1})


def test_plugin_is_registered(tmp_path):
    plugin = get_model("transfertraj")
    assert plugin.name == "transfertraj"
    model = plugin.build(None, {"d_model": 16, "heads": 2, "ffn_dim": 16, "max_len": 32})
    assert isinstance(model, TransferTraj) and model.config.d_model == 16
    with pytest.raises(ValueError, match="unknown"):
        plugin.build(None, {"dmodel": 3})
    hist = plugin.pretrain_points(model, {"a": _rows()["a"]}, {"epochs": 1, "batch_size": 8}, _ctx(tmp_path))
    assert len(hist) == 1 and hist[0]["train_loss"] > 0
    plugin.save(tmp_path / "p.pt", model, None, {"seed": 0})
    assert plugin.load(tmp_path / "p.pt", None, "cpu").config == model.config


def test_pretrain_and_finetune_configs_are_config_classes():
    from trajzoo.config import ConfigClass
    from trajzoo.training.point_tasks import PointFineTuneConfig

    for cls in (PretrainConfig, PointFineTuneConfig):
        assert issubclass(cls, ConfigClass)
        with pytest.raises(ValueError, match="epochz"):
            cls.from_dict({"epochz": 1})
        with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
            cls.from_dict({"batch_size": 0})
        assert cls.from_dict(cls().to_dict()) == cls()
    with pytest.raises(ValueError, match="max_trips_per_city must be >= 1"):
        PretrainConfig(max_trips_per_city=0)
    assert PretrainConfig.from_dict({"max_trips_per_city": None}).max_trips_per_city is None
