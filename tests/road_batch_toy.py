"""Random toy road-segment batches and their padding, shared by the MetaTRL and baseline unit tests."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from trajzoo.data.batch import TrajectoryBatch


def append_garbage_padding(batch: TrajectoryBatch, extra: int, num_segments: int, seed: int = 1) -> TrajectoryBatch:
    """Append ``extra`` padded columns filled with arbitrary (but in-range) garbage values: road ids
    in ``[0, num_segments)``, seconds, days, minutes and time-known flags. A model that ignores
    padding gives the same outputs for ``batch`` and the result."""
    gen = torch.Generator().manual_seed(seed)
    b = batch.roads.shape[0]

    def cat(x: torch.Tensor, filler: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, filler.to(x.dtype)], dim=1)

    return replace(
        batch,
        roads=cat(batch.roads, torch.randint(0, num_segments, (b, extra), generator=gen)),
        padding_mask=cat(batch.padding_mask, torch.ones(b, extra, dtype=torch.bool)),
        seconds=cat(batch.seconds, torch.rand(b, extra, generator=gen) * 1e4),
        day_of_week=cat(batch.day_of_week, torch.randint(0, 7, (b, extra), generator=gen)),
        minute_of_day=cat(batch.minute_of_day, torch.randint(0, 1440, (b, extra), generator=gen)),
        time_known=cat(batch.time_known, torch.rand(b, extra, generator=gen) > 0.5),
    )


def random_road_batch(lengths: Sequence[int], num_segments: int, max_len: int | None = None, seed: int = 0,
                      time_known_at_padding: bool = True) -> TrajectoryBatch:
    """Random trajectories with the given numbers of real positions, padded to ``max_len``
    (default: the longest): road ids in ``[0, num_segments)``, 5-95 s between positions, a random
    start minute and day. ``time_known`` is True at real positions, and at padding only when
    ``time_known_at_padding``."""
    gen = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(list(lengths))
    b = len(lengths)
    length = max_len if max_len is not None else int(lengths_t.max())
    pad = torch.arange(length)[None, :] >= lengths_t[:, None]
    roads = torch.randint(0, num_segments, (b, length), generator=gen).masked_fill(pad, 0)
    seconds = torch.cumsum(torch.rand(b, length, generator=gen) * 90.0 + 5.0, dim=1)
    seconds = (seconds - seconds[:, :1]).masked_fill(pad, 0.0)
    start_minute = torch.randint(0, 1380, (b, 1), generator=gen)
    minute = (start_minute + (seconds // 60).long()).clamp_max(1439).masked_fill(pad, 0)
    day = torch.randint(0, 7, (b, 1), generator=gen).expand(b, length).masked_fill(pad, 0)
    time_known = torch.ones(b, length, dtype=torch.bool) if time_known_at_padding else ~pad
    return TrajectoryBatch(roads=roads, padding_mask=pad, seconds=seconds, day_of_week=day.clone(),
                           minute_of_day=minute, time_known=time_known, trip_ids=[f"t{i}" for i in range(b)])


def ring_road_graph(num_segments: int = 120, attribute_dim: int = 5, chords: int = 12, seed: int = 0):
    """A sparse directed road graph for subgraph tests: a ring i -> i+1 plus ``chords`` random
    shortcuts, random features and row-normalised p_ij. Its diameter is far above the encoders'
    hop counts, so the L-hop subgraph of a few segments is a strict part of the graph and
    dropping one hop changes the outputs."""
    from trajzoo.data.batch import RoadGraph

    gen = torch.Generator().manual_seed(seed)
    src = torch.arange(num_segments)
    edges = [torch.stack([src, (src + 1) % num_segments])]
    a = torch.randint(0, num_segments, (chords,), generator=gen)
    b = (a + torch.randint(2, num_segments - 1, (chords,), generator=gen)) % num_segments
    edges.append(torch.stack([a, b]))
    edge_index = torch.unique(torch.cat(edges, dim=1), dim=1)
    counts = torch.rand(edge_index.shape[1], generator=gen) + 0.1
    totals = torch.zeros(num_segments).index_add_(0, edge_index[0], counts)
    return RoadGraph(city="ring", num_segments=num_segments,
                     structural=torch.randn(num_segments, 6, generator=gen),
                     attributes=torch.randn(num_segments, attribute_dim, generator=gen),
                     edge_index=edge_index, transition_prob=counts / totals[edge_index[0]])


SUBGRAPH_TOL = dict(rtol=1e-5, atol=1e-6)


def assert_subgraph_equals_whole_graph(encoder: torch.nn.Module, graph, segments: torch.Tensor, dim: int,
                                       seed: int = 0) -> None:
    """Assert that ``encoder(graph, segments)`` (the batch's L-hop subgraph) equals the whole-graph
    ``encoder(graph)[segments]`` in its ``(S, dim)`` outputs and in the gradients of every
    parameter under the same random ``(S, dim)`` weighting of the outputs (tolerance
    :data:`SUBGRAPH_TOL`). Shared by the MetaTRL and START subgraph tests (issue 14)."""
    weights = torch.randn(segments.numel(), dim, generator=torch.Generator().manual_seed(seed))
    full = encoder(graph)[segments]
    (full * weights).sum().backward()
    grads_full = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    sub = encoder(graph, segments)
    (sub * weights).sum().backward()
    torch.testing.assert_close(sub, full, **SUBGRAPH_TOL)
    for g_sub, g_full in zip((p.grad for p in encoder.parameters()), grads_full):
        torch.testing.assert_close(g_sub, g_full, **SUBGRAPH_TOL)


def assert_one_hop_short_subgraph_differs(encoder: torch.nn.Module, module, graph, segments: torch.Tensor,
                                          monkeypatch) -> None:
    """Guard of :func:`assert_subgraph_equals_whole_graph`: with ``module.receptive_subgraph``
    one hop short, ``encoder(graph, segments)`` must differ from the whole-graph outputs (so the
    equality test can fail)."""
    full = encoder(graph)[segments]
    real = module.receptive_subgraph
    monkeypatch.setattr(module, "receptive_subgraph", lambda s, e, hops, n, flow: real(s, e, hops - 1, n, flow))
    assert not torch.allclose(encoder(graph, segments), full, **SUBGRAPH_TOL)


def toy_trips(name: str, num_segments: int, seed: int, n_trips: int = 24) -> pd.DataFrame:
    """``n_trips`` random trips over ``num_segments`` roads, 4-8 segments each, 5-60 s apart, on a
    weekday morning (trip i on day i % 7), split train/train/val/test by i % 4: the trips table of
    the toy cities (:class:`trajzoo.data.city.CityData`) of the model test packages."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_trips):
        n = int(rng.integers(4, 9))
        roads = rng.integers(0, num_segments, n)
        seconds = np.concatenate([[0.0], np.cumsum(rng.uniform(5, 60, n - 1))]).astype(np.float32)
        rows.append({"trip_id": f"{name}{i:03d}", "roads": roads, "seconds": seconds,
                     "day_of_week": np.full(n, i % 7), "minute_of_day": (600 + seconds // 60).astype(np.int64),
                     "split": ("train", "train", "val", "test")[i % 4]})
    return pd.DataFrame(rows)
