"""Single-city pretraining of the baselines: determinism, per-epoch checkpoints, resume after a
kill, history rows, ignored source cities, the untrained setting, and the entry points."""
from __future__ import annotations

import logging

import pytest
import torch

from baselines_toy import build_batch, toy_city
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo.registry import get_model, list_models
from trajzoo.training.loop import RunContext
from trajzoo.data.prepared import PreparedCity

HPARAMS = {
    "transformer-mlm": {"d_model": 16, "layers": 1, "heads": 2, "ffn_dim": 32, "dropout": 0.1},
    "start": {"d_model": 16, "gat_layers": 1, "gat_heads": 2, "layers": 1, "heads": 2, "ffn_dim": 32,
              "dropout": 0.1, "interval_hidden": 8},
}
SCHEDULE = {"epochs": 3, "batch_size": 5, "lr": 3e-3}
PRETRAINED = ["transformer-mlm", "start"]


def _run(name: str, folder, seed: int = 0, sources=(), schedule=SCHEDULE):
    torch.manual_seed(seed)
    ctx = RunContext(torch.device("cpu"), seed, folder, logging.getLogger("test.baselines"))
    encoder = get_model(name).pretrain_road(toy_city(), list(sources), {"hparams": HPARAMS[name], "pretrain": schedule},
                                       ctx)
    return encoder, ctx


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for n in sa:
        assert torch.equal(sa[n], sb[n]), n


def test_entry_points_resolve():
    assert {"transformer-mlm", "start", "node2vec"} <= set(list_models()) and "random" not in list_models()
    for name in ("transformer-mlm", "start"):
        plugin = get_model(name)
        assert plugin.name == name


@pytest.mark.parametrize("name", PRETRAINED)
def test_build_encoder_follows_the_encoder_protocol(name):
    city = toy_city()
    hparams = HPARAMS.get(name, {"d_model": 16, "heads": 2, "ffn_dim": 32, "num_buckets": 8})
    encoder = get_model(name).build_encoder(city.graph, hparams).eval()
    batch = build_batch([6, 3])
    with torch.no_grad():
        z, e = encoder(batch, city.graph), encoder.embed(batch, city.graph)
    assert z.shape == (2, 6, encoder.d_model) and e.shape == (2, encoder.d_model) and encoder.d_model == 16
    assert torch.all(z[batch.padding_mask] == 0)
    with pytest.raises(ValueError, match="not_a_key"):
        get_model(name).build_encoder(city.graph, {"not_a_key": 1})


@pytest.mark.parametrize("name", PRETRAINED)
def test_same_seed_same_weights_history_and_checkpoints(name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="test.baselines")
    a, ctx = _run(name, tmp_path / "a", sources=[toy_city("src", 5)])
    b, _ = _run(name, tmp_path / "b")
    _assert_same_weights(a, b)
    c, _ = _run(name, tmp_path / "c", seed=1)
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    assert sorted(p.name for p in ctx.checkpoint_dir.iterdir()) == [f"pretrain-epoch-{k:03d}.pt" for k in range(3)]
    assert [(h["phase"], h["epoch"]) for h in ctx.history] == [("pretrain:toy", k) for k in range(3)]
    assert all(set(h) == {"phase", "epoch", "train_loss", "val_loss"} for h in ctx.history)
    assert all(h["train_loss"] > 0 and h["val_loss"] > 0 for h in ctx.history)
    assert "ignoring source cities ['src']" in caplog.text
    assert sum("pretrain epoch" in r.message for r in caplog.records) >= 3


@pytest.mark.parametrize("name", PRETRAINED)
def test_killed_pretraining_resumes_to_the_same_weights(name, tmp_path, monkeypatch):
    """Stop after epoch 0's checkpoint (as a SIGKILL would), start again: same final weights."""
    import trajzoo_baselines.training as training

    straight, ctx_a = _run(name, tmp_path / "a")
    real_save = training.CheckpointStore.save

    def save_then_crash(self, phase, epoch, state):
        path = real_save(self, phase, epoch, state)
        if epoch == 0:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(training.CheckpointStore, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _run(name, tmp_path / "b")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["pretrain-epoch-000.pt"]
    torch.manual_seed(123)  # the resumed run must not depend on the fresh initialisation's RNG draws
    resumed, ctx_b = _run(name, tmp_path / "b")
    _assert_same_weights(straight, resumed)
    assert ctx_b.history == ctx_a.history


def test_checkpoints_of_another_schedule_are_not_resumed(tmp_path):
    first, ctx = _run("transformer-mlm", tmp_path)
    other, ctx2 = _run("transformer-mlm", tmp_path, schedule={**SCHEDULE, "lr": 1e-3})
    assert any(not torch.equal(p, q) for p, q in zip(first.state_dict().values(), other.state_dict().values()))
    assert ctx2.history[0]["train_loss"] != ctx.history[0]["train_loss"]


@pytest.mark.parametrize("name", PRETRAINED)
def test_unknown_schedule_keys_are_rejected(name, tmp_path):
    with pytest.raises(ValueError, match="target_epochs"):
        _run(name, tmp_path, schedule={"target_epochs": 1})


@pytest.mark.parametrize("name", PRETRAINED)
def test_untrained_setting_is_the_seeded_fresh_encoder(name):
    """The untrained setting (what was the ``random`` baseline) builds the encoder for the target's
    road graph from the seeded torch RNG and trains nothing."""
    city = PreparedCity("toy", "UTC", road=toy_city())
    plugin = get_model(name)
    torch.manual_seed(0)
    a = plugin.build(city, HPARAMS[name])
    torch.manual_seed(0)
    b = plugin.build_encoder(city.road.graph, HPARAMS[name])
    _assert_same_weights(a, b)
    torch.manual_seed(1)
    c = plugin.build(city, HPARAMS[name])
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    with pytest.raises(ValueError, match="prepared without its 'road' view"):
        plugin.build(PreparedCity("toy", "UTC"), HPARAMS[name])
    with pytest.raises(ValueError, match="needs the target city's data"):
        plugin.pretrain(None, [city], {"hparams": HPARAMS[name], "pretrain": SCHEDULE}, None)


@pytest.mark.parametrize("name", PRETRAINED)
def test_saved_encoder_reloads_through_the_registry(name, tmp_path):
    from trajzoo.training.loop import load_encoder, save_encoder

    city = toy_city()
    hparams = HPARAMS.get(name, {"d_model": 16, "heads": 2, "ffn_dim": 32, "num_buckets": 8})
    torch.manual_seed(0)
    encoder = get_model(name).build_encoder(city.graph, hparams).eval()
    save_encoder(tmp_path / "encoder.pt", encoder, name, hparams, city.graph)
    torch.manual_seed(1)
    loaded = load_encoder(tmp_path / "encoder.pt", city.graph).eval()
    batch = build_batch([6, 3])
    with torch.no_grad():
        assert torch.equal(encoder.embed(batch, city.graph), loaded.embed(batch, city.graph))
