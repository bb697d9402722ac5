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
    "locations": ("locations", "location_trips", "location_frame"),
}
#: Optional files of an input (read when given): street-view image features of the locations.
OPTIONAL_FILES = {"locations": ("image_features",)}
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
        locations: task locations and the trips passing them
            (:class:`trajzoo.locations.LocationView`; ``locations`` input), else None.
    """

    name: str
    timezone: str
    road: CityData | None = None
    points: dict[str, list[dict]] | None = None
    grid: dict[str, pd.DataFrame] | None = field(default=None)
    locations: object | None = None

    def require(self, view: str):
        """The view ``view`` ("road", "points", "grid", "locations").

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
    if "locations" in inputs:
        city.locations = load_locations(paths)
    return city


def load_locations(paths: dict[str, str | Path]):
    """Read the locations stage's files into a :class:`trajzoo.locations.LocationView`
    (``locations`` parquet with its ``poi_counts`` list column, ``location_trips`` parquet,
    ``location_frame`` JSON, optional ``image_features`` .npy aligned with the locations).

    Raises:
        ValueError: the image features do not have one row per location.
    """
    import json

    import numpy as np

    from trajzoo.locations import LocationView

    table = pd.read_parquet(paths["locations"])
    pois = np.stack(table["poi_counts"].to_numpy()).astype(np.int64) if "poi_counts" in table and len(table) \
        and table["has_poi_data"].all() else None
    images = None
    if paths.get("image_features"):
        images = np.load(paths["image_features"]).astype(np.float32)
        if len(images) != len(table):
            raise ValueError(f"{paths['image_features']}: {len(images)} image feature rows for {len(table)} locations")
    frame = json.loads(Path(paths["location_frame"]).read_text())
    return LocationView(table.drop(columns=[c for c in ("poi_counts", "has_poi_data") if c in table]),
                        pd.read_parquet(paths["location_trips"]), frame, pois, images)
