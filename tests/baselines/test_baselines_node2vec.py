"""node2vec baseline: biased walks (edges only, dead ends, determinism, exact p/q transition
probabilities, q's outward effect), skip-gram embeddings (neighbours more similar), the
Transformer encoder initialised from them, pretraining determinism and the entry point."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from baselines_toy import EDGES, NUM_SEGMENTS, append_padding, build_batch, toy_city
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from trajzoo.registry import get_model, list_models
from trajzoo.training.loop import RunContext
from trajzoo_baselines.node2vec import (Node2VecConfig, Node2VecSchedule, node2vec_embeddings, node2vec_walks,
                                        skipgram_embeddings)
from trajzoo_baselines.transformer_mlm import TransformerMLMEncoder

HPARAMS = {"d_model": 16, "layers": 1, "heads": 2, "ffn_dim": 32, "dropout": 0.0}
SCHEDULE = {"walk_length": 8, "context_size": 2, "walks_per_node": 5, "p": 0.5, "q": 2.0, "epochs": 2}
TOY_EDGES = np.array(EDGES).T


def _edge_set(edge_index) -> set[tuple[int, int]]:
    return set(map(tuple, np.asarray(edge_index).T.tolist()))


def _ring(n: int) -> np.ndarray:
    """Two-way ring: i -> i+1 and i+1 -> i."""
    return np.array([[i, (i + 1) % n] for i in range(n)] + [[(i + 1) % n, i] for i in range(n)]).T


def _grid(side: int) -> np.ndarray:
    """Two-way side x side grid, node id = row * side + col."""
    ids = np.arange(side * side).reshape(side, side)
    parts = []
    for a, b in ((ids[:, :-1], ids[:, 1:]), (ids[:-1], ids[1:])):
        parts += [np.stack([a.ravel(), b.ravel()]), np.stack([b.ravel(), a.ravel()])]
    return np.concatenate(parts, axis=1)


def _run(folder, seed: int = 0, city=None, sources=(), schedule=SCHEDULE, logger="test.baselines.node2vec"):
    torch.manual_seed(seed)
    ctx = RunContext(torch.device("cpu"), seed, folder, logging.getLogger(logger))
    city = city if city is not None else toy_city()
    encoder = get_model("node2vec").pretrain_road(city, list(sources), {"hparams": HPARAMS, "pretrain": schedule}, ctx)
    return encoder, ctx


# --------------------------------------------------------------------------------------------
# walks

@pytest.mark.parametrize("p,q", [(1.0, 1.0), (0.5, 3.0), (4.0, 0.25)])
def test_walks_follow_directed_edges_and_stop_at_dead_ends(p, q):
    walks = node2vec_walks(torch.tensor(EDGES).t(), NUM_SEGMENTS, 12, 30, p, q, np.random.default_rng(0))
    assert walks.shape == (30 * NUM_SEGMENTS, 12) and walks.dtype == np.int64
    edges = _edge_set(TOY_EDGES)
    # every round starts one walk from every segment
    for r in range(30):
        assert sorted(walks[r * NUM_SEGMENTS:(r + 1) * NUM_SEGMENTS, 0]) == list(range(NUM_SEGMENTS))
    n_pairs = 0
    for row in walks:
        real = row[row >= 0]
        assert np.all(row[len(real):] == -1)  # -1 only after the last node
        for a, b in zip(real[:-1], real[1:]):
            assert (a, b) in edges  # in traffic direction: (b, a) is not enough
            n_pairs += 1
        if len(real) < 12:
            assert real[-1] == 9  # the only dead end of the toy graph
        else:
            assert 9 not in real[:-1]  # 9 has no downstream segment: nothing follows it
    assert n_pairs > 1000
    stopped = walks[:, -1] < 0
    assert stopped.any() and (~stopped).any()
    assert np.all(walks[walks[:, 0] == 9, 1:] == -1)  # a walk starting at the sink never moves


def test_walks_are_deterministic_for_a_seed():
    args = (TOY_EDGES, NUM_SEGMENTS, 10, 5, 0.5, 2.0)
    a = node2vec_walks(*args, np.random.default_rng(3))
    b = node2vec_walks(*args, np.random.default_rng(3))
    c = node2vec_walks(*args, np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("p,q", [(1.0, 1.0), (0.5, 4.0), (2.0, 0.25)])
def test_second_step_follows_the_node2vec_transition_probabilities(p, q):
    """From t -> v, the next x is drawn proportionally to 1/p (x = t), 1 (t -> x is an edge) or
    1/q (otherwise; paper Section 3.2)."""
    t, v, a, b = 0, 1, 2, 3
    edge_index = np.array([[t, v], [v, t], [v, a], [v, b], [t, a]]).T  # a is adjacent to t, b is not
    walks = node2vec_walks(edge_index, 4, 3, 40000, p, q, np.random.default_rng(0))
    third = walks[(walks[:, 0] == t) & (walks[:, 1] == v), 2]
    assert len(third) > 15000
    weights = np.array([1 / p, 1.0, 1 / q])
    expected = weights / weights.sum()
    observed = np.array([(third == x).mean() for x in (t, a, b)])
    assert np.abs(observed - expected).max() < 0.015, (observed, expected)
    # the first step is uniform among the out-neighbours of the start
    second = walks[walks[:, 0] == t, 1]
    assert abs((second == v).mean() - 0.5) < 0.015


def test_small_q_moves_outward_large_q_stays_local():
    """On a two-way grid (no triangles: from t -> v, every x != t is 2 hops from t), q < 1
    favours outward steps: the walk's last node ends farther (grid distance) from its start and
    visits more distinct nodes than with q > 1."""
    side = 9
    grid = _grid(side)

    def stats(q):
        walks = node2vec_walks(grid, side * side, 8, 20, 1.0, q, np.random.default_rng(0))
        assert np.all(walks >= 0)  # no dead end on the grid
        dist = np.abs(walks[:, -1] // side - walks[:, 0] // side) + np.abs(walks[:, -1] % side - walks[:, 0] % side)
        distinct = np.mean([len(set(row)) for row in walks.tolist()])
        return dist.mean(), distinct

    out_dist, out_distinct = stats(0.1)
    uni_dist, uni_distinct = stats(1.0)
    in_dist, in_distinct = stats(10.0)
    assert out_dist > uni_dist + 0.5 > in_dist + 1.0
    assert out_distinct > uni_distinct + 1.0 > in_distinct + 2.0


def test_walks_reject_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="outside"):
        node2vec_walks(np.array([[0], [NUM_SEGMENTS]]), NUM_SEGMENTS, 5, 1, 1.0, 1.0, rng)
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        node2vec_walks(np.zeros((3, 2), dtype=np.int64), NUM_SEGMENTS, 5, 1, 1.0, 1.0, rng)
    with pytest.raises(ValueError, match="p and q"):
        node2vec_walks(TOY_EDGES, NUM_SEGMENTS, 5, 1, 0.0, 1.0, rng)


# --------------------------------------------------------------------------------------------
# skip-gram

def test_adjacent_segments_are_more_similar_than_far_apart_ones():
    n = 40
    schedule = Node2VecSchedule(walk_length=20, context_size=2, walks_per_node=10, epochs=3)
    emb = node2vec_embeddings(_ring(n), n, 16, schedule, seed=0)
    assert emb.visited.all() and emb.vectors.shape == (n, 16) and emb.vectors.dtype == np.float32
    v = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    adjacent = np.array([v[i] @ v[(i + 1) % n] for i in range(n)])
    far = np.array([v[i] @ v[(i + n // 2) % n] for i in range(n)])
    assert adjacent.mean() > far.mean() + 0.3
    assert (adjacent > far).mean() > 0.9
    assert math.isfinite(emb.train_loss) and emb.train_loss > 0


def test_skipgram_rejects_an_edgeless_graph_and_marks_unvisited_nodes():
    walks = node2vec_walks(np.zeros((2, 0), dtype=np.int64), 5, 4, 2, 1.0, 1.0, np.random.default_rng(0))
    assert np.all(walks[:, 1:] == -1)
    with pytest.raises(ValueError, match="no walk"):
        skipgram_embeddings(walks, 5, 8, 2, 2, 1, seed=0)
    # node 4 is isolated, node 3 only a target: 3 is visited (as a walk's last node), 4 is not
    walks = node2vec_walks(np.array([[0, 1, 2], [1, 2, 3]]), 5, 4, 3, 1.0, 1.0, np.random.default_rng(0))
    res = skipgram_embeddings(walks, 5, 8, 2, 2, 1, seed=0)
    assert res.visited.tolist() == [True, True, True, True, False]
    assert np.all(res.vectors[4] == 0) and np.all(np.abs(res.vectors[:4]).sum(axis=1) > 0)
    assert res.num_sentences == 3 * 3  # walks from 0, 1, 2 (the one from 3 and 4 never move)


# --------------------------------------------------------------------------------------------
# encoder and pretraining

def test_entry_point_resolves():
    assert "node2vec" in list_models()
    plugin = get_model("node2vec")
    assert plugin.name == "node2vec"
    assert type(plugin).__name__ == "Node2VecPlugin"


def test_encoder_shapes_and_padding_invariance():
    city = toy_city()
    torch.manual_seed(0)
    encoder = get_model("node2vec").build_encoder(city.graph, HPARAMS).eval()
    assert isinstance(encoder, TransformerMLMEncoder) and encoder.d_model == 16
    assert encoder.road_embedding.weight.requires_grad  # the road table is fine-tuned
    batch = build_batch([12, 9, 5, 2, 1])
    padded = append_padding(batch, 6)
    with torch.no_grad():
        z, z_pad = encoder(batch, city.graph), encoder(padded, city.graph)
        e, e_pad = encoder.embed(batch, city.graph), encoder.embed(padded, city.graph)
    assert z.shape == (5, 12, 16) and e.shape == (5, 16) and z_pad.shape == (5, 18, 16)
    assert torch.all(z[batch.padding_mask] == 0) and torch.all(z_pad[:, 12:] == 0)
    assert torch.allclose(z, z_pad[:, :12], atol=1e-5)
    assert torch.allclose(e, e_pad, atol=1e-5)
    real = ~batch.padding_mask
    assert torch.allclose(e, (z * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True), atol=1e-6)  # mean pool


def test_pretrain_copies_node2vec_vectors_into_the_road_table(tmp_path, caplog):
    """Visited segments get exactly the node2vec vectors; an isolated segment, the [MASK] row and
    every Transformer weight keep the fresh initialisation."""
    caplog.set_level(logging.INFO, logger="test.baselines.node2vec")
    city = toy_city()
    keep = ~(torch.tensor(EDGES) == 9).any(dim=1)  # drop 4 -> 9: segment 9 becomes isolated
    graph = replace(city.graph, edge_index=city.graph.edge_index[:, keep],
                    transition_prob=city.graph.transition_prob[keep])
    city = replace(city, graph=graph)
    encoder, ctx = _run(tmp_path / "ckpt", seed=3, city=city, sources=[toy_city("src", 5)])
    emb = node2vec_embeddings(graph.edge_index, NUM_SEGMENTS, 16, Node2VecSchedule(**SCHEDULE), seed=3)
    assert emb.visited.tolist() == [True] * 9 + [False]
    table = encoder.road_embedding.weight.detach()
    assert torch.equal(table[:9], torch.from_numpy(emb.vectors[:9]))
    torch.manual_seed(3)
    fresh = get_model("node2vec").build_encoder(graph, HPARAMS)
    fresh_state, state = fresh.state_dict(), encoder.state_dict()
    assert torch.equal(table[9:], fresh_state["road_embedding.weight"][9:])  # segment 9 and [MASK]
    assert not torch.equal(table[:9], fresh_state["road_embedding.weight"][:9])
    for name in state:
        if name != "road_embedding.weight":
            assert torch.equal(state[name], fresh_state[name]), name
    assert not encoder.training
    assert len(ctx.history) == 1
    row = ctx.history[0]
    assert set(row) == {"phase", "epoch", "train_loss", "val_loss"}
    assert (row["phase"], row["epoch"]) == ("pretrain:toy", 0)
    assert row["train_loss"] == pytest.approx(emb.train_loss) and row["train_loss"] > 0
    assert math.isnan(row["val_loss"])
    assert "ignoring source cities ['src']" in caplog.text
    assert "1 never visited" in caplog.text
    assert not ctx.checkpoint_dir.exists()


def test_pretrain_is_deterministic_given_the_seed(tmp_path):
    a, ctx_a = _run(tmp_path / "a", seed=0)
    b, ctx_b = _run(tmp_path / "b", seed=0)
    c, _ = _run(tmp_path / "c", seed=1)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert ctx_a.history == ctx_b.history
    assert not torch.equal(a.road_embedding.weight, c.road_embedding.weight)


def test_embeddings_do_not_depend_on_the_process_hash_seed():
    """Same seed in two fresh processes with different PYTHONHASHSEED: identical vectors
    (gensim must not seed from Python's randomised str hash)."""
    code = ("import hashlib, numpy as np; from trajzoo_baselines.node2vec import Node2VecSchedule, "
            "node2vec_embeddings; e = node2vec_embeddings(np.array(%s), %d, 8, Node2VecSchedule(walk_length=6, "
            "walks_per_node=3, p=0.5, q=2.0), seed=7); print(hashlib.sha256(e.vectors.tobytes()).hexdigest())"
            % (json.dumps(TOY_EDGES.tolist()), NUM_SEGMENTS))
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    in_process = node2vec_embeddings(TOY_EDGES, NUM_SEGMENTS, 8, Node2VecSchedule(walk_length=6, walks_per_node=3,
                                                                                  p=0.5, q=2.0), seed=7)
    assert digests == {hashlib.sha256(in_process.vectors.tobytes()).hexdigest()}


def test_saved_encoder_reloads_through_the_registry(tmp_path):
    from trajzoo.training.loop import load_encoder, save_encoder

    encoder, _ = _run(tmp_path / "run")
    graph = toy_city().graph
    save_encoder(tmp_path / "encoder.pt", encoder, "node2vec", HPARAMS, graph)
    torch.manual_seed(1)
    loaded = load_encoder(tmp_path / "encoder.pt", graph).eval()
    batch = build_batch([6, 3])
    with torch.no_grad():
        assert torch.equal(encoder.embed(batch, graph), loaded.embed(batch, graph))


def test_config_and_schedule_reject_unknown_keys_and_bad_values(tmp_path):
    assert Node2VecConfig.from_dict({}) == Node2VecConfig(64, 2, 4, 128, 0.0)
    assert Node2VecSchedule.from_dict({}) == Node2VecSchedule(20, 5, 10, 1.0, 1.0, 5, 1)
    with pytest.raises(ValueError, match="mask_ratio"):  # no masked-road objective in node2vec
        Node2VecConfig.from_dict({"mask_ratio": 0.15})
    with pytest.raises(ValueError, match="divisible"):
        Node2VecConfig.from_dict({"d_model": 10, "heads": 4})
    with pytest.raises(ValueError, match="batch_size"):
        Node2VecSchedule.from_dict({"batch_size": 32})
    for bad in ({"q": 0.0}, {"p": -1.0}, {"walk_length": 1}, {"epochs": 0}, {"context_size": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Node2VecSchedule.from_dict(bad)
    with pytest.raises(ValueError, match="not_a_key"):
        get_model("node2vec").build_encoder(toy_city().graph, {"not_a_key": 1})
    with pytest.raises(ValueError, match="lr"):
        _run(tmp_path, schedule={"lr": 1e-3})
