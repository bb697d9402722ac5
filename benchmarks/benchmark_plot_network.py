"""Time of the road-network figure (rule plot_network) on the real road networks.

Builds each city's road segments from the mirrored OSM extract (trajzoo.roads.network), then draws
``trajzoo.plots.plot_network`` (one matplotlib LineCollection for the network, one per matched
trajectory) with 40 routes of 30 segments sampled from the network, and prints the seconds.
The previous version drew one ``ax.plot`` call per segment (Porto 22.9 s, San Francisco 6.9 s
on this machine).

Run from the repository root: ``python benchmarks/benchmark_plot_network.py`` (about 30 s).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trajzoo.plots import plot_network
from trajzoo.roads.network import build_road_network

DATA_ROOT = Path(os.environ.get("TRAJZOO_DATA_ROOT", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CITIES = {"porto": ("porto/osm/porto_center.osm.bz2", "EPSG:32629"),
          "sanfrancisco": ("sanfrancisco/osm/sf_north.osm.bz2", "EPSG:32610")}


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for city, (osm, crs) in CITIES.items():
            segments, _ = build_road_network({"file": osm}, DATA_ROOT, crs)
            matched = pd.DataFrame({"roads": [rng.integers(0, len(segments), 30) for _ in range(200)]})
            start = time.perf_counter()
            plot_network(segments, matched, Path(tmp) / f"{city}.png", city)
            print(f"{city}: {len(segments):,} segments, plot_network {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
