"""Fixed trajectory window (TrajGANR appendix A.1.2): a trajectory longer than W fixes is randomly
down-sampled to W fixes (order kept; a data augmentation that makes the encoder invariant to the
sampling rate), a shorter one is zero-padded to W."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .space2vec import normalise_xy


@dataclass
class WindowBatch:
    """B trajectories in windows of W fixes.

    Attributes:
        xy: ``(B, W, 2)`` float32 coordinates normalised to [-1, 1] in the study area (0 at padding).
        xy_m: ``(B, W, 2)`` float64 metres (projected CRS; 0 at padding).
        elapsed_min: ``(B, W)`` float32 minutes since the window's first fix.
        hour: ``(B, W)`` float32 local hour of day in [0, 24).
        padding_mask: ``(B, W)`` bool, True at padding.
        trip_ids: B trip ids.
    """

    xy: Tensor
    xy_m: Tensor
    elapsed_min: Tensor
    hour: Tensor
    padding_mask: Tensor
    trip_ids: list

    def rows(self, start: int, stop: int) -> "WindowBatch":
        """Trajectories ``start:stop`` (a process's share of a global batch under data parallelism)."""
        return replace(self, **{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def to(self, device) -> "WindowBatch":
        """A copy on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})


def window_indices(n: int, window: int, generator: torch.Generator | None = None) -> np.ndarray:
    """Indices of the fixes kept: all ``n`` when ``n <= window``, else ``window`` of them drawn
    uniformly without replacement (``torch.randperm`` with ``generator``), in increasing order.

    Raises:
        ValueError: ``n < 1`` or ``window < 1``.
    """
    if n < 1 or window < 1:
        raise ValueError(f"window_indices needs n >= 1 and window >= 1, got {n}, {window}")
    if n <= window:
        return np.arange(n)
    return np.sort(torch.randperm(n, generator=generator)[:window].numpy())


def collate_windows(rows: list[dict], window: int, bbox_xy, generator: torch.Generator | None = None) -> WindowBatch:
    """Collate point rows (``x``, ``y`` metres, ``t`` Unix s, ``minute_of_day``) into a
    :class:`WindowBatch` of exactly W = ``window`` positions (down-sampled / zero-padded).

    Raises:
        ValueError: no rows, or a row without fixes.
    """
    if not rows:
        raise ValueError("collate_windows: no rows")
    b = len(rows)
    xy = np.zeros((b, window, 2))
    el = np.zeros((b, window), dtype=np.float32)
    hr = np.zeros((b, window), dtype=np.float32)
    pad = np.ones((b, window), dtype=bool)
    for i, r in enumerate(rows):
        idx = window_indices(len(r["x"]), window, generator)
        n = len(idx)
        xy[i, :n, 0] = np.asarray(r["x"], float)[idx]
        xy[i, :n, 1] = np.asarray(r["y"], float)[idx]
        t = np.asarray(r["t"], float)[idx]
        el[i, :n] = (t - t[0]) / 60.0
        hr[i, :n] = np.asarray(r["minute_of_day"], float)[idx] / 60.0
        pad[i, :n] = False
    xy_m = torch.from_numpy(xy)
    norm = normalise_xy(xy_m, bbox_xy).masked_fill(torch.from_numpy(pad).unsqueeze(-1), 0.0)
    return WindowBatch(norm, xy_m, torch.from_numpy(el), torch.from_numpy(hr), torch.from_numpy(pad),
                       [str(r["trip_id"]) for r in rows])
