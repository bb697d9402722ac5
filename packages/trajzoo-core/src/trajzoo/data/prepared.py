"""One city's prepared data, as much of it as a model declares it needs.

The data stages run once per city, independent of models (``workflow/rules``): ingest, ONE
seeded split by trip id, road network, map matching, road features, GPS point features and
grid cells. A model declares the views it reads (:data:`trajzoo.registry.INPUTS`); the
``pretrain`` and ``evaluate`` rules hand it a :class:`PreparedCity` holding exactly those views,
all drawn from the same split, so a trip is in the same split for every model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from trajzoo.data.city import CityData, load_city
from trajzoo.data.points import point_rows

#: Files of each prepared input, as keys of the ``paths`` mapping of :func:`load_prepared`
#: (the workflow's ``city_inputs`` gives the same keys).
INPUT_FILES = {
    "roads": ("matched", "splits", "structural", "attributes", "transitions"),
    "points": ("points", "splits"),
    "grid": ("grid_cells", "grid_trips", "splits"),
}
SPLITS = ("train", "val", "test")


@dataclass
class PreparedCity:
    """The views of one city a model reads.

    Attributes:
        name: city key (``"porto"``).
        timezone: IANA time zone of the city's local time.
        road: road graph and map-matched trips with their split (``roads`` input), else None.
        points: per split, point rows (:func:`trajzoo.data.points.point_rows`; ``points``
            input), else None.
        grid: ``{"cells": DataFrame, "trips": DataFrame}`` (``grid`` input), else None.
    """

    name: str
    timezone: str
    road: CityData | None = None
    points: dict[str, list[dict]] | None = None
    grid: dict[str, pd.DataFrame] | None = field(default=None)

    def require(self, view: str):
        """The view ``view`` ("road", "points", "grid").

        Raises:
            ValueError: the city was loaded without it (naming the city and the view).
        """
        value = getattr(self, view)
        if value is None:
            raise ValueError(f"city {self.name!r} was prepared without its {view!r} view")
        return value


def load_prepared(name: str, timezone: str, inputs, paths: dict[str, str | Path]) -> PreparedCity:
    """Read the prepared views ``inputs`` of city ``name``.

    Args:
        name: city key.
        timezone: IANA zone.
        inputs: subset of :data:`trajzoo.registry.INPUTS` (``images`` is not read here).
        paths: file of each key of :data:`INPUT_FILES` the inputs need.

    Returns:
        A :class:`PreparedCity`. Points rows are restricted to the train/val/test trips of the
        city's one split (``unused`` trips, beyond a train cap, are never read).

    Raises:
        KeyError: a needed file is missing from ``paths`` (naming it).
        ValueError: from :func:`trajzoo.data.city.load_city` (trips without a split, road ids out
            of range).
    """
    city = PreparedCity(name, timezone)
    inputs = set(inputs)
    for view in inputs & set(INPUT_FILES):
        missing = [k for k in INPUT_FILES[view] if k not in paths]
        if missing:
            raise KeyError(f"{name}: input {view!r} needs files {missing}")
    if "roads" in inputs:
        city.road = load_city(name, timezone, **{k: paths[k] for k in INPUT_FILES["roads"]})
    if "points" in inputs:
        points = pd.read_parquet(paths["points"]).merge(pd.read_parquet(paths["splits"]), on="trip_id",
                                                        how="inner", validate="one_to_one")
        city.points = {s: point_rows(points[points["split"] == s]) for s in SPLITS}
    if "grid" in inputs:
        city.grid = {"cells": pd.read_parquet(paths["grid_cells"]), "trips": pd.read_parquet(paths["grid_trips"])}
    return city
