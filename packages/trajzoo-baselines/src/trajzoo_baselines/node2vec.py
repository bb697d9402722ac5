"""``node2vec``: road-segment embeddings from node2vec (Grover & Leskovec, "node2vec: Scalable
Feature Learning for Networks", KDD 2016), then the ``transformer-mlm`` sequence encoder.

Pretraining computes node2vec embeddings of the road-segment graph (no trajectory is read):

1. **Biased second-order random walks** (paper Section 3.2) on the DIRECTED segment graph
   (``edge_index[0] = i`` upstream, ``edge_index[1] = j`` downstream): walks follow the traffic
   direction and a walk that reaches a segment with no downstream segment (dead end) stops early.
   Having come from ``t`` to ``v``, the next segment ``x`` among the out-neighbours of ``v`` is
   drawn with unnormalised probability ``1/p`` if ``x == t`` (return), ``1`` if ``t -> x`` is an
   edge (``d_tx = 1``: ``x`` stays one hop from ``t``) and ``1/q`` otherwise (``d_tx = 2``: the walk
   moves outward). The first step is uniform. The graph is unweighted (duplicate edges count
   once; the trip-count transition probabilities p_ij are not used). ``p = q = 1`` gives uniform
   first-order walks. For a directed graph, ``d_tx = 1`` is read as "``x`` is an out-neighbour of
   ``t``" (as in torch-cluster's sampler behind PyG); the reference implementation of the paper
   tests the reverse edge ``x -> t`` instead.
2. **Skip-gram with negative sampling** over the walks (paper eq. 2, optimised as in word2vec)
   with gensim's ``Word2Vec(sg=1)``; see :func:`skipgram_embeddings` for every setting.

Fine-tuning then uses the same sequence encoder as ``transformer-mlm``
(:class:`trajzoo_baselines.transformer_mlm.TransformerMLMEncoder`: road embedding + sinusoidal
position encoding, post-LN Transformer, no time features, ``embed`` = mean pooling) whose road
embedding table is initialised from the node2vec vectors. The table stays TRAINABLE during
fine-tuning (unless the run sets ``finetune.freeze_encoder``). Segments that no walk with at least
one step visits keep the encoder's random initialisation (their number is logged); the extra
[MASK] row of that table is never used by this model.

Why not ``torch_geometric.nn.Node2Vec``: in torch-geometric 2.8.1 it refuses to run without
``pyg-lib>=0.6.0`` (its walk sampler), which is not installable from PyPI here; the PyPI
``node2vec`` package pins ``numpy<2``. The walk sampler below is a vectorised numpy
implementation of the paper's transition probabilities (exact, not alias/rejection sampling),
and gensim provides the skip-gram trainer used by the paper's reference implementation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from trajzoo.config import ConfigClass, ranged

from .config import TransformerEncoderConfig, TransformerMLMConfig

GENSIM_ALPHA = 0.025
"""Initial SGD learning rate of gensim's skip-gram (its default), decayed linearly..."""
GENSIM_MIN_ALPHA = 0.0001
"""...to this value over all epochs (gensim's default)."""
NS_EXPONENT = 0.75
"""Negative samples are drawn from the unigram distribution of the walks raised to this power
(word2vec's and gensim's default)."""


@dataclass
class Node2VecConfig(TransformerEncoderConfig):
    """Encoder hyper-parameters of ``node2vec`` (the config's ``hparams`` section): the fields of
    :class:`trajzoo_baselines.transformer_mlm.TransformerEncoderConfig` (``d_model`` is also the
    node2vec embedding size); no ``mask_ratio`` (node2vec has no masked-road objective).

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range, or ``d_model``
            not divisible by ``heads``; (``from_dict``) unknown keys, naming them.
    """

    def transformer_config(self) -> TransformerMLMConfig:
        """The equivalent :class:`trajzoo_baselines.transformer_mlm.TransformerMLMConfig` (its
        ``mask_ratio`` keeps its default and is unused: node2vec has no masked-road objective).
        """
        return TransformerMLMConfig(d_model=self.d_model, layers=self.layers, heads=self.heads,
                                    ffn_dim=self.ffn_dim, dropout=self.dropout)


@dataclass(frozen=True)
class Node2VecSchedule(ConfigClass):
    """node2vec pretraining settings (the config's ``pretrain`` section).

    Attributes:
        walk_length: segments per walk, the start included (>= 2); shorter when a dead end is hit.
        context_size: skip-gram window: maximum distance, in walk steps, between a segment and
            its context on EACH side (gensim's ``window``; gensim draws a reduced window per
            centre, as word2vec does). >= 1.
        walks_per_node: walks started from every segment (>= 1).
        p: return parameter (> 0): a step back to the previous segment has weight ``1/p``.
        q: in-out parameter (> 0): a step to a segment not adjacent to the previous one has
            weight ``1/q`` (``q < 1``: outward, DFS-like; ``q > 1``: local, BFS-like).
        num_negative_samples: negative samples per (centre, context) pair (>= 1).
        epochs: skip-gram passes over the walk corpus (>= 1).

    Raises:
        ValueError: (on construction) a value of the wrong type (an integer field given 1.5, a
            number field given NaN or infinity) or out of range; (``from_dict``) unknown keys.
    """

    walk_length: int = ranged(20, ge=2)
    context_size: int = ranged(5, ge=1)
    walks_per_node: int = ranged(10, ge=1)
    p: float = ranged(1.0, gt=0)
    q: float = ranged(1.0, gt=0)
    num_negative_samples: int = ranged(5, ge=1)
    epochs: int = ranged(1, ge=1)


def _edge_array(edge_index: Any, num_nodes: int) -> np.ndarray:
    """``edge_index`` (tensor or array) as a ``(2, E)`` int64 numpy array, checked."""
    if num_nodes <= 0:
        raise ValueError(f"num_nodes must be positive, got {num_nodes}")
    if hasattr(edge_index, "detach"):
        edge_index = edge_index.detach().cpu().numpy()
    ei = np.asarray(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {ei.shape}")
    if ei.size and not np.issubdtype(ei.dtype, np.integer):
        raise ValueError(f"edge_index must hold integers, got {ei.dtype}")
    ei = ei.astype(np.int64, copy=False)
    if ei.size and (ei.min() < 0 or ei.max() >= num_nodes):
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes})")
    return ei


@dataclass(frozen=True)
class _CSR:
    """Out-neighbour lists of a directed graph: ``indices[indptr[v]:indptr[v+1]]`` (sorted,
    duplicates removed) are the downstream nodes of ``v``; ``keys`` = sorted ``i * N + j``."""

    num_nodes: int
    indptr: np.ndarray
    indices: np.ndarray
    keys: np.ndarray

    @classmethod
    def build(cls, edges: np.ndarray, num_nodes: int) -> "_CSR":
        keys = np.unique(edges[0] * num_nodes + edges[1])
        src = keys // num_nodes
        indptr = np.zeros(num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=num_nodes), out=indptr[1:])
        return cls(num_nodes, indptr, keys % num_nodes, keys)

    def has_edge(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Element-wise bool: is ``i -> j`` an edge (``i >= 0``)."""
        query = i * self.num_nodes + j
        pos = np.searchsorted(self.keys, query)
        pos_c = np.minimum(pos, max(self.keys.size - 1, 0))
        return (pos < self.keys.size) & (self.keys[pos_c] == query) if self.keys.size else np.zeros(i.shape, bool)


def _biased_step(csr: _CSR, prev: np.ndarray, cur: np.ndarray, deg: np.ndarray, u: np.ndarray,
                 p: float, q: float) -> np.ndarray:
    """Draw the next node of every active walk exactly from the node2vec distribution.

    All candidates of all walks are laid out flat (walk ``k`` owns ``deg[k]`` consecutive
    entries); weights ``1/p`` (return to ``prev``), ``1`` (``prev -> x`` is an edge) or ``1/q``;
    one uniform ``u[k]`` in [0, 1) per walk is mapped through the walk's cumulative weights.
    """
    seg_start = np.cumsum(deg) - deg
    owner = np.repeat(np.arange(cur.size), deg)
    pos = np.arange(owner.size) - seg_start[owner]
    cand = csr.indices[csr.indptr[cur][owner] + pos]
    t = prev[owner]
    weight = np.full(cand.size, 1.0 / q)
    weight[csr.has_edge(t, cand)] = 1.0
    weight[cand == t] = 1.0 / p
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    before = cum[seg_start]
    target = before + u * (cum[seg_start + deg] - before)
    pick = np.searchsorted(cum[1:], target, side="right")
    pick = np.clip(pick, seg_start, seg_start + deg - 1)
    return cand[pick]


def node2vec_walks(edge_index: Any, num_nodes: int, walk_length: int, walks_per_node: int, p: float, q: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Biased second-order random walks of node2vec (Grover & Leskovec 2016, Section 3.2 and
    Algorithm 1) on a directed graph.

    ``walks_per_node`` rounds; in each round every node starts one walk, in a random order
    (``rng.permutation``, as the paper's reference code shuffles the nodes). All walks of a round
    advance together, one step at a time (vectorised over walks): the first step is uniform among
    the out-neighbours, later steps use the weights ``1/p`` / ``1`` / ``1/q`` described in the
    module docstring. A walk at a node with no out-neighbour stops (dead end).

    Args:
        edge_index: ``(2, E)`` int tensor or array; ``edge_index[0] = i -> edge_index[1] = j``.
            Duplicate edges count once.
        num_nodes: N.
        walk_length: nodes per walk, the start included (>= 1).
        walks_per_node: walks started from every node (>= 1).
        p: return parameter (> 0).
        q: in-out parameter (> 0).
        rng: numpy Generator providing all randomness (one permutation per round and one
            uniform draw per active walk and step).

    Returns:
        ``(walks_per_node * N, walk_length)`` int64; row ``r * N + k`` is the ``k``-th walk of round
        ``r``; entries after a dead end are ``-1`` (column 0 is always the start node).

    Raises:
        ValueError: a malformed ``edge_index`` (shape, dtype, ids outside ``[0, N)``), N <= 0,
            ``walk_length`` or ``walks_per_node`` < 1, or ``p``/``q`` not > 0.
    """
    if walk_length < 1 or walks_per_node < 1:
        raise ValueError(f"walk_length and walks_per_node must be >= 1, got {walk_length}, {walks_per_node}")
    if not (p > 0 and q > 0):
        raise ValueError(f"p and q must be > 0, got p={p}, q={q}")
    csr = _CSR.build(_edge_array(edge_index, num_nodes), num_nodes)
    uniform = p == 1.0 and q == 1.0
    n = num_nodes
    walks = np.full((walks_per_node * n, walk_length), -1, dtype=np.int64)
    for r in range(walks_per_node):
        block = walks[r * n:(r + 1) * n]  # a view
        cur = rng.permutation(n).astype(np.int64)
        block[:, 0] = cur
        rows = np.arange(n)
        prev = np.full(n, -1, dtype=np.int64)
        for step in range(1, walk_length):
            deg = csr.indptr[cur + 1] - csr.indptr[cur]
            alive = deg > 0
            if not alive.all():
                rows, prev, cur, deg = rows[alive], prev[alive], cur[alive], deg[alive]
            if rows.size == 0:
                break
            u = rng.random(rows.size)
            if step == 1 or uniform:
                nxt = csr.indices[csr.indptr[cur] + np.minimum((u * deg).astype(np.int64), deg - 1)]
            else:
                nxt = _biased_step(csr, prev, cur, deg, u, p, q)
            block[rows, step] = nxt
            prev, cur = cur, nxt
    return walks


@lru_cache(maxsize=1)
def _word2vec_class():
    """gensim's ``Word2Vec`` with an exact running loss (imported lazily: gensim pulls scipy).

    gensim 4.4 accumulates ``compute_loss`` in one float32 over the whole training, which stops
    growing once it is large (its issue #2735); this subclass resets it before every job (one
    worker thread, so no race) and sums the per-job values in a Python float.
    """
    from gensim.models import Word2Vec

    class LossTrackingWord2Vec(Word2Vec):
        total_loss = 0.0

        def _do_train_job(self, sentences, alpha, inits):
            self.running_training_loss = 0.0
            result = super()._do_train_job(sentences, alpha, inits)
            self.total_loss += float(self.running_training_loss)
            return result

    return LossTrackingWord2Vec


@dataclass
class SkipGramResult:
    """node2vec vectors of the N nodes.

    Attributes:
        vectors: ``(N, d)`` float32; zero rows for unvisited nodes.
        visited: ``(N,)`` bool, True for nodes in at least one walk of >= 2 nodes (the skip-gram
            vocabulary).
        train_loss: gensim's skip-gram negative-sampling loss (nats, natural log of the logistic
            function as tabulated by gensim) summed over all (centre, context) pairs and their
            negative samples, divided by the number of centre tokens trained (all epochs); NaN
            when nothing was trained.
        num_sentences: walks with >= 2 nodes fed to gensim (dead-end-only walks are dropped).
        num_tokens: nodes in those walks (one epoch).
    """

    vectors: np.ndarray
    visited: np.ndarray
    train_loss: float
    num_sentences: int
    num_tokens: int


def skipgram_embeddings(walks: np.ndarray, num_nodes: int, dim: int, window: int, negative: int, epochs: int,
                        seed: int) -> SkipGramResult:
    """Skip-gram with negative sampling over node walks (node2vec's objective, paper eq. 2),
    trained by gensim 4.4 ``Word2Vec``.

    Settings: ``sg=1, hs=0, negative=negative, ns_exponent=0.75, vector_size=dim, window=window,
    min_count=1`` (every walked node gets a vector), ``sample=0`` (no down-sampling of frequent
    nodes: every pair of the walks is used, as in the paper and PyG), ``alpha=0.025 ->
    min_alpha=0.0001`` (linear decay), ``epochs=epochs``, ``workers=1`` and ``seed=seed``
    (gensim's initial vectors come from ``seed`` and its window/negative draws from a
    ``RandomState(seed)``; with one worker the job order is fixed, so the result is identical for
    the same walks and seed, in any process). Walk tokens are the decimal node ids.

    Args:
        walks: ``(W, L)`` int node ids, ``-1`` after a dead end (:func:`node2vec_walks`).
        num_nodes: N.
        dim: embedding size d.
        window: maximum context distance on each side (>= 1).
        negative: negative samples per pair (>= 1).
        epochs: passes over the walks (>= 1).
        seed: gensim seed, in ``[0, 2**32)``.

    Returns:
        :class:`SkipGramResult`.

    Raises:
        ValueError: ``walks`` not 2-D or holding ids outside ``[-1, N)``, a ``-1`` before a real id
            in a row, no walk with >= 2 nodes (an edgeless graph), a setting < 1, or a seed out
            of range.
    """
    walks = np.asarray(walks)
    if walks.ndim != 2:
        raise ValueError(f"walks must be (W, L), got shape {walks.shape}")
    if walks.size and (walks.min() < -1 or walks.max() >= num_nodes):
        raise ValueError(f"walks hold ids outside [-1, {num_nodes})")
    real = walks >= 0
    lengths = real.sum(axis=1)
    if not np.array_equal(real, np.arange(walks.shape[1])[None, :] < lengths[:, None]):
        raise ValueError("walks must be -1 only after their last node")
    if min(dim, window, negative, epochs) < 1:
        raise ValueError(f"dim, window, negative and epochs must be >= 1, got {dim}, {window}, {negative}, {epochs}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    keep = lengths >= 2
    if not keep.any():
        raise ValueError("no walk has two or more nodes (the graph has no edges?): nothing to train")
    tokens = np.array([str(i) for i in range(num_nodes)], dtype=object)
    sentences = [tokens[row[:k]].tolist() for row, k in zip(walks[keep], lengths[keep])]
    model = _word2vec_class()(
        vector_size=dim, window=window, min_count=1, sample=0.0, sg=1, hs=0, negative=negative,
        ns_exponent=NS_EXPONENT, alpha=GENSIM_ALPHA, min_alpha=GENSIM_MIN_ALPHA, seed=int(seed), workers=1,
        epochs=epochs, compute_loss=True)
    model.build_vocab(sentences)
    trained_words, _ = model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs,
                                   compute_loss=True)
    vectors = np.zeros((num_nodes, dim), dtype=np.float32)
    visited = np.zeros(num_nodes, dtype=bool)
    index = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
    vectors[index] = model.wv.vectors
    visited[index] = True
    loss = model.total_loss / trained_words if trained_words else float("nan")
    return SkipGramResult(vectors, visited, float(loss), len(sentences), int(lengths[keep].sum()))


@dataclass
class Node2VecEmbeddings(SkipGramResult):
    """:class:`SkipGramResult` plus walk statistics.

    Attributes:
        num_walks: walks sampled (``walks_per_node * N``).
        dead_end_walks: walks that stopped before ``walk_length`` nodes.
        seconds: wall time of walks + skip-gram.
    """

    num_walks: int = 0
    dead_end_walks: int = 0
    seconds: float = 0.0


def node2vec_embeddings(edge_index: Any, num_nodes: int, dim: int, schedule: Node2VecSchedule,
                        seed: int) -> Node2VecEmbeddings:
    """node2vec end to end: :func:`node2vec_walks` with ``np.random.default_rng(seed)``, then
    :func:`skipgram_embeddings` with gensim seed ``seed``.

    Args:
        edge_index: ``(2, E)`` directed edges (upstream, downstream).
        num_nodes: N.
        dim: embedding size d.
        schedule: walk and skip-gram settings.
        seed: run seed in ``[0, 2**32)``; the same seed gives identical vectors.

    Returns:
        :class:`Node2VecEmbeddings` (``(N, d)`` vectors, ``(N,)`` visited mask, loss, counts).

    Raises:
        ValueError: as :func:`node2vec_walks` and :func:`skipgram_embeddings`.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    start = time.perf_counter()
    walks = node2vec_walks(edge_index, num_nodes, schedule.walk_length, schedule.walks_per_node, schedule.p,
                           schedule.q, np.random.default_rng(seed))
    sg = skipgram_embeddings(walks, num_nodes, dim, schedule.context_size, schedule.num_negative_samples,
                             schedule.epochs, seed)
    return Node2VecEmbeddings(sg.vectors, sg.visited, sg.train_loss, sg.num_sentences, sg.num_tokens,
                              num_walks=walks.shape[0], dead_end_walks=int((walks[:, -1] < 0).sum()),
                              seconds=time.perf_counter() - start)
