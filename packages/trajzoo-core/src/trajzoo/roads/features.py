"""Road segment features: MetaTRL's structural vector s (eq. 5), attribute vector u (eq. 7 input)
and transition probabilities p_ij (eq. 10)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

#: Road classes of the one-hot in u; anything else is "other".
ROAD_CLASSES = (
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street",
    "road", "other",
)
STRUCTURAL_COLUMNS = ["nbr_dist_max", "nbr_dist_min", "nbr_dist_mean", "nbr_dist_var", "dlat", "dlon"]


def segment_midpoints(segments: pd.DataFrame) -> np.ndarray:
    """``(N, 2)`` projected (x, y) in metres of each segment's midpoint along its geometry."""
    geoms = shapely.from_wkt(segments["geometry_wkt"].to_numpy())
    mids = shapely.line_interpolate_point(geoms, 0.5, normalized=True)
    return np.column_stack([shapely.get_x(mids), shapely.get_y(mids)])


def structural_features(segments: pd.DataFrame, adjacency: pd.DataFrame) -> pd.DataFrame:
    """MetaTRL structural feature vector s in R^6 per road segment (paper eq. 5).

    s = concat(s_d, s_p): s_d = max, min, mean and (population) variance of the pairwise
    Euclidean distances (metres, projected midpoints) among the segment's direct neighbours
    (segments whose tail is its head, or whose head is its tail); s_p = (lat_end - lat_start,
    lon_end - lon_start) in degrees. A segment with fewer than two neighbours has s_d = 0.

    Args:
        segments: road segment table (segment_id 0..N-1 in order, geometry_wkt, lon/lat ends).
        adjacency: src, dst segment id pairs.

    Returns:
        DataFrame with segment_id and :data:`STRUCTURAL_COLUMNS`, one row per segment.

    Raises:
        ValueError: if segment ids are not 0..N-1 in order.
    """
    n = len(segments)
    if not np.array_equal(segments["segment_id"].to_numpy(), np.arange(n)):
        raise ValueError("segments must be sorted with segment_id 0..N-1")
    mids = segment_midpoints(segments)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(adjacency["src"].to_numpy(), adjacency["dst"].to_numpy()):
        if a != b:
            nbrs[a].add(int(b))
            nbrs[b].add(int(a))
    stats = np.zeros((n, 4), dtype=np.float64)
    for i, nb in enumerate(nbrs):
        if len(nb) < 2:
            continue
        p = mids[sorted(nb)]
        d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        iu = np.triu_indices(len(p), k=1)
        dist = d[iu]
        stats[i] = (dist.max(), dist.min(), dist.mean(), dist.var())
    out = pd.DataFrame(stats, columns=STRUCTURAL_COLUMNS[:4])
    out["dlat"] = (segments["lat_end"] - segments["lat_start"]).to_numpy()
    out["dlon"] = (segments["lon_end"] - segments["lon_start"]).to_numpy()
    out.insert(0, "segment_id", segments["segment_id"].to_numpy())
    return out


def attribute_features(segments: pd.DataFrame, adjacency: pd.DataFrame) -> pd.DataFrame:
    """Attribute vector u per road segment (input of MetaTRL's private MLP, eq. 7).

    Columns: one-hot ``class_<highway>`` over :data:`ROAD_CLASSES`; ``lanes`` (missing -> 1) and
    ``lanes_missing``; ``maxspeed`` km/h (missing -> the median of its road class in this city,
    else 50) and ``maxspeed_missing``; ``length`` (m); ``in_degree``, ``out_degree`` in the
    segment graph; ``oneway``, ``bridge``, ``tunnel`` as 0/1. Raw units; the model standardises.
    """
    cls = segments["highway"].where(segments["highway"].isin(ROAD_CLASSES), "other")
    out = pd.DataFrame({"segment_id": segments["segment_id"].to_numpy()})
    for c in ROAD_CLASSES:
        out[f"class_{c}"] = (cls == c).astype(np.float32).to_numpy()
    lanes = segments["lanes"].astype(float)
    out["lanes"] = lanes.fillna(1.0).to_numpy()
    out["lanes_missing"] = lanes.isna().astype(np.float32).to_numpy()
    speed = segments["maxspeed"].astype(float)
    class_median = speed.groupby(cls).transform("median")
    out["maxspeed"] = speed.fillna(class_median).fillna(50.0).to_numpy()
    out["maxspeed_missing"] = speed.isna().astype(np.float32).to_numpy()
    out["length"] = segments["length"].astype(float).to_numpy()
    n = len(segments)
    out["in_degree"] = np.bincount(adjacency["dst"].to_numpy(), minlength=n).astype(np.float32)
    out["out_degree"] = np.bincount(adjacency["src"].to_numpy(), minlength=n).astype(np.float32)
    for c in ("oneway", "bridge", "tunnel"):
        out[c] = segments[c].astype(np.float32).to_numpy()
    return out


def transition_probabilities(road_sequences, adjacency: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """p_ij = count(i -> j) / count(i) over the given (TRAIN) trips (MetaTRL eq. 10).

    count(i) is the number of transitions out of segment i in the trips; pairs of the adjacency
    never observed get count 0 and p 0.

    Args:
        road_sequences: iterable of int arrays of segment ids (map-matched TRAIN trips only).
        adjacency: src, dst pairs.

    Returns:
        ``(table, n_off_graph)``: adjacency with ``count`` and ``prob`` columns, and the number of
        observed consecutive pairs that are not in the adjacency (should be 0 for FMM output).
    """
    seqs = [np.asarray(s, dtype=np.int64) for s in road_sequences]
    if seqs:
        src = np.concatenate([s[:-1] for s in seqs])
        dst = np.concatenate([s[1:] for s in seqs])
    else:
        src = dst = np.zeros(0, dtype=np.int64)
    pairs = pd.DataFrame({"src": src, "dst": dst})
    pairs = pairs[pairs["src"] != pairs["dst"]]
    counts = pairs.value_counts().rename("count").reset_index()
    out_counts = pairs["src"].value_counts()
    table = adjacency[["src", "dst"]].merge(counts, on=["src", "dst"], how="left")
    n_off = int(len(counts.merge(adjacency[["src", "dst"]], on=["src", "dst"], how="left", indicator=True)
                    .query("_merge == 'left_only'")))
    table["count"] = table["count"].fillna(0).astype(np.int64)
    denom = table["src"].map(out_counts).fillna(0).to_numpy()
    table["prob"] = np.where(denom > 0, table["count"] / np.maximum(denom, 1), 0.0).astype(np.float32)
    return table, n_off
