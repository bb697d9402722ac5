"""Baseline rows of TrajGANR's tables (paper Table 2).

* GeoCLIP location embeddings (Cepeda et al., NeurIPS 2023): the ``geoclip`` package ships its
  pretrained location encoder's weights in the wheel, so ``LocationEncoder()((lat, lon))`` gives
  ``(n, 512)`` embeddings offline; its image encoder (CLIP from a model hub) is not used.
* A trajectory foundation model pooled on the segment (the paper's UniTraj comparison): another
  zoo model's per-point representations (``model(PointBatch) -> (B, L, d)``, e.g. TransferTraj),
  found through the model registry and loaded from its own in-city pretraining, mean-pooled over
  the fixes of the location's TRAIN trajectories on its stretch of road (fixes within
  ``delta_m + spacing_m / 2`` of it, else the two fixes of the nearest path segment), then
  averaged over those trajectories.
"""
from __future__ import annotations

import importlib.util

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the DAG build calls geoclip_available
    import torch
    from torch import Tensor

GEOCLIP_INSTALL = ("pip install 'trajzoo-trajganr[geoclip]' && pip install --no-deps geoclip==1.3.0 "
                   "(geoclip declares torchvision, which does not work with the CPU torch here)")


def geoclip_available() -> bool:
    """Whether ``geoclip`` is importable (checked without importing it)."""
    return importlib.util.find_spec("geoclip") is not None


def geoclip_embeddings(lat: np.ndarray, lon: np.ndarray, batch_size: int = 1024) -> Tensor:
    """GeoCLIP's pretrained location embeddings of ``(n,)`` WGS84 degrees: ``(n, 512)`` float32.

    Raises:
        ImportError: geoclip is not installed (naming the install command).
    """
    if not geoclip_available():
        raise ImportError(f"the geoclip baseline needs the geoclip package: {GEOCLIP_INSTALL}")
    import torch
    from geoclip import LocationEncoder

    enc = LocationEncoder().eval()
    gps = torch.tensor(np.column_stack([lat, lon]), dtype=torch.float32)
    with torch.no_grad():
        return torch.cat([enc(gps[i:i + batch_size]) for i in range(0, len(gps), batch_size)]).float() \
            if len(gps) else torch.zeros(0, 512)


def pooled_foundation_features(fm: torch.nn.Module, inputs, max_per_location: int, radius_m: float, max_len: int,
                               seed: int, device, batch_size: int = 128) -> Tensor:
    """Per location, the mean over its TRAIN trajectories of the foundation model's point states
    on the location's stretch of road: ``(n, d')`` float32 (zeros for a location without trips).

    Args:
        fm: a zoo point model: ``fm(PointBatch) -> (B, L, d')``.
        inputs: :class:`trajzoo.locations.LocationInputs` (TRAIN trips only).
        max_per_location: trips per location (seeded subset). radius_m: stretch radius.
        max_len: the model's point cap (its first ``max_len`` fixes are encoded). seed: subset seed.
    """
    import torch

    from trajzoo.data.points import collate_points

    trips = inputs.trips_of(max_per_location, seed)
    used = sorted({t for ids in trips for t in ids})
    fm.eval().to(device)
    states: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(used), batch_size):
            rows = [inputs.rows[t] for t in used[start:start + batch_size]]
            b = collate_points(rows, inputs.city, max_len).to(device)
            h = fm(b).float().cpu().numpy()
            for i, r in enumerate(rows):
                states[r["trip_id"]] = h[i, :int(b.lengths[i])]
    d = next(iter(states.values())).shape[1] if states else 1
    out = np.zeros((len(trips), d), dtype=np.float32)
    xy = inputs.table[["x", "y"]].to_numpy(float)
    for i, ids in enumerate(trips):
        per_trip = []
        for t in ids:
            h = states[t]
            r = inputs.rows[t]
            px, py = np.asarray(r["x"], float)[:len(h)], np.asarray(r["y"], float)[:len(h)]
            dist = np.hypot(px - xy[i, 0], py - xy[i, 1])
            sel = dist <= radius_m
            if not sel.any():
                k = int(np.argmin(dist))
                sel[k] = True
                sel[min(k + 1, len(sel) - 1)] = True
            per_trip.append(h[sel].mean(axis=0))
        if per_trip:
            out[i] = np.mean(per_trip, axis=0)
    return torch.from_numpy(out)
