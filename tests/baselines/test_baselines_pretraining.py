"""Single-city pretraining of the baselines: determinism, per-epoch checkpoints, resume after a
kill, history rows, ignored source cities, the ``random`` baseline, and the entry points."""
from __future__ import annotations

import logging

import pytest
import torch

from baselines_toy import build_batch, toy_city
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo.registry import get_model, list_models
from trajzoo.training.loop import RunContext
from trajzoo_metatrl.model import MetaTRLEncoder

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
    encoder = get_model(name).pretrain(toy_city(), list(sources), {"hparams": HPARAMS[name], "pretrain": schedule},
                                       ctx)
    return encoder, ctx


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for n in sa:
        assert torch.equal(sa[n], sb[n]), n


def test_entry_points_resolve():
    assert {"random", "transformer-mlm", "start"} <= set(list_models())
    for name in ("random", "transformer-mlm", "start"):
        plugin = get_model(name)
        assert plugin.name == name


@pytest.mark.parametrize("name", ["random", *PRETRAINED])
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


def test_random_baseline_is_an_untrained_seeded_metatrl_encoder(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="test.baselines")
    hparams = {"d_model": 16, "heads": 2, "ffn_dim": 32, "num_buckets": 8}
    plugin = get_model("random")

    def run(seed):
        torch.manual_seed(seed)
        ctx = RunContext(torch.device("cpu"), seed, tmp_path / str(seed), logging.getLogger("test.baselines"))
        return plugin.pretrain(toy_city(), [toy_city("src", 5)], {"hparams": hparams, "pretrain": {}}, ctx), ctx

    a, ctx = run(0)
    b, _ = run(0)
    c, _ = run(1)
    assert isinstance(a, MetaTRLEncoder) and a.d_model == 16
    _assert_same_weights(a, b)
    assert any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    torch.manual_seed(0)
    _assert_same_weights(a, plugin.build_encoder(toy_city().graph, hparams))  # nothing trained
    assert ctx.history == [] and not ctx.checkpoint_dir.exists()
    assert "ignoring source cities" in caplog.text
    with pytest.raises(ValueError, match="epochs"):
        plugin.pretrain(toy_city(), [], {"hparams": hparams, "pretrain": {"epochs": 3}}, ctx)


@pytest.mark.parametrize("name", ["random", *PRETRAINED])
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
