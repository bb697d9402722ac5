"""SMARTraj2's trip filters (:class:`ViewFilters`), torch-free.

Building the Snakemake DAG checks SMARTraj2's config (whose ``filters`` are these), so the class
lives apart from :mod:`trajzoo.data.views` (torch), which re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewFilters:
    """Trip filters of SMARTraj2 (appendix B.1.3), bounds inclusive.

    Attributes:
        min_segments, max_segments: road segments of the route view (paper 10-100).
        min_cells, max_cells: grid cells of the grid view (visits, paper 10-100).
        min_points, max_points: GPS fixes of the GPS view (paper 10-256).

    Raises:
        ValueError: (on construction) a bound < 1 or min > max.
    """

    min_segments: int = 10
    max_segments: int = 100
    min_cells: int = 10
    max_cells: int = 100
    min_points: int = 10
    max_points: int = 256

    def __post_init__(self) -> None:
        for what in ("segments", "cells", "points"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if int(lo) < 1 or int(hi) < int(lo):
                raise ValueError(f"view filters: need 1 <= min_{what} <= max_{what}, got {lo}, {hi}")
