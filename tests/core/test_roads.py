"""Road network and road features: drive filter, hand-built structural features, transitions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from shapely import LineString

from trajzoo.roads.features import (STRUCTURAL_COLUMNS, attribute_features, structural_features,
                                    transition_probabilities)
from trajzoo.roads.network import (build_road_network, drive_custom_filter, drive_filter_rules, edge_maxspeed_kph,
                                   is_drivable, parse_number)


def test_drive_filter_follows_osmnx():
    rules = drive_filter_rules()
    assert is_drivable({"highway": "residential"}, rules)
    assert is_drivable({"highway": "primary", "oneway": "yes"}, rules)
    assert not is_drivable({"highway": "footway"}, rules)
    assert not is_drivable({"highway": "residential", "access": "private"}, rules)
    assert not is_drivable({"highway": "service", "service": "parking_aisle"}, rules)
    assert not is_drivable({"building": "yes"}, rules)


def test_drive_filter_is_what_osmnx_means_by_drive():
    """The written-out rules are the installed osmnx's "drive" network type (a drift check: the
    pipeline never calls this private osmnx function)."""
    from osmnx import _overpass

    assert drive_custom_filter() == _overpass._get_network_filter("drive")


def test_drive_filter_substring_semantics_as_overpass():
    rules = drive_filter_rules()
    # Overpass's !~ is an unanchored regular expression: "service=private_road" matches "private"
    assert not is_drivable({"highway": "residential", "service": "private_road"}, rules)
    assert is_drivable({"highway": "residential", "service": "yes"}, rules)
    assert not is_drivable({"highway": ["residential", "footway"]}, rules)


def test_parse_number_lanes():
    assert parse_number("2", unit_mph=False) == 2
    assert parse_number(["2", "3"], unit_mph=False) == 3
    assert parse_number("2;3", unit_mph=False) == 3
    assert np.isnan(parse_number(None))


def test_maxspeed_is_osmnx_add_edge_speeds():
    """maxspeed comes from osmnx's add_edge_speeds (mph converted, implicit values, merged ways
    -> largest); an edge with no valid tag is NaN, not osmnx's imputed highway mean."""
    import networkx as nx

    g = nx.MultiDiGraph(crs="EPSG:4326")
    for n in range(7):
        g.add_node(n, x=float(n) * 1e-3, y=0.0)
    tags = ["50", "30 mph", ["40", "60"], "PT:urban", None, "signals"]
    for i, tag in enumerate(tags):
        attrs = {"highway": "residential", "length": 10.0}
        if tag is not None:
            attrs["maxspeed"] = tag
        g.add_edge(i, i + 1, 0, **attrs)
    speeds = edge_maxspeed_kph(g)
    got = [speeds[(i, i + 1, 0)] for i in range(len(tags))]
    assert got[:4] == pytest.approx([50.0, 30 * 1.60934, 60.0, 50.0])
    assert np.isnan(got[4]) and np.isnan(got[5])


def cross_segments():
    """Four segments around node 0 at (0, 0): 1->0 (from west), 0->2 (east), 3->0 (south), 0->4 (north),
    each 100 m long; midpoints at (-50, 0), (50, 0), (0, -50), (0, 50)."""
    ends = {1: (-100, 0), 2: (100, 0), 3: (0, -100), 4: (0, 100)}
    rows = []
    for sid, (u, v) in enumerate([(1, 0), (0, 2), (3, 0), (0, 4)]):
        pu = ends.get(u, (0, 0))
        pv = ends.get(v, (0, 0))
        rows.append({"segment_id": sid, "u": u, "v": v, "geometry_wkt": LineString([pu, pv]).wkt,
                     "lon_start": pu[0] * 1e-5, "lat_start": pu[1] * 1e-5, "lon_end": pv[0] * 1e-5,
                     "lat_end": pv[1] * 1e-5, "highway": "residential", "lanes": np.nan, "maxspeed": 50.0,
                     "length": 100.0, "oneway": True, "bridge": False, "tunnel": False})
    seg = pd.DataFrame(rows)
    heads = seg[["segment_id", "v"]].rename(columns={"segment_id": "src", "v": "node"})
    tails = seg[["segment_id", "u"]].rename(columns={"segment_id": "dst", "u": "node"})
    adj = heads.merge(tails, on="node")[["src", "dst"]].sort_values(["src", "dst"]).reset_index(drop=True)
    return seg, adj


def test_structural_features_on_a_hand_built_cross():
    seg, adj = cross_segments()
    assert adj.values.tolist() == [[0, 1], [0, 3], [2, 1], [2, 3]]
    s = structural_features(seg, adj)
    # segment 0's neighbours are 1 (east, mid (50,0)) and 3 (north, mid (0,50)): one distance 50*sqrt(2)
    d = 50 * np.sqrt(2)
    assert s.loc[0, STRUCTURAL_COLUMNS[:4]].tolist() == pytest.approx([d, d, d, 0.0])
    # segment 1's neighbours are 0 (mid (-50,0)) and 2 (mid (0,-50)): also 50*sqrt(2)
    assert s.loc[1, "nbr_dist_mean"] == pytest.approx(d)
    # shape: segment 3 goes south->north: dlat = +100e-5 deg, dlon = 0
    assert s.loc[3, "dlat"] == pytest.approx(1e-3) and s.loc[3, "dlon"] == pytest.approx(0.0)
    assert s.loc[0, "dlon"] == pytest.approx(1e-3)


def test_structural_variance_with_three_neighbours():
    seg, adj = cross_segments()
    adj = pd.concat([adj, pd.DataFrame({"src": [1], "dst": [3]})], ignore_index=True)
    s = structural_features(seg, adj)
    # segment 3 now has neighbours 0 (-50,0), 2 (0,-50), 1 (50,0): distances 70.71, 100, 70.71
    d = np.array([50 * np.sqrt(2), 100.0, 50 * np.sqrt(2)])
    assert s.loc[3, STRUCTURAL_COLUMNS[:4]].tolist() == pytest.approx([d.max(), d.min(), d.mean(), d.var()])


def test_attribute_features_degrees_and_missing_lanes():
    seg, adj = cross_segments()
    u = attribute_features(seg, adj)
    assert u["out_degree"].tolist() == [2, 0, 2, 0]
    assert u["in_degree"].tolist() == [0, 2, 0, 2]
    assert u["lanes"].tolist() == [1, 1, 1, 1] and u["lanes_missing"].tolist() == [1, 1, 1, 1]
    assert u["class_residential"].sum() == 4


def test_transition_probabilities_count_train_sequences():
    seg, adj = cross_segments()
    table, n_off = transition_probabilities([np.array([0, 1]), np.array([0, 1]), np.array([0, 3]),
                                             np.array([2, 3])], adj)
    p = {(r.src, r.dst): r.prob for r in table.itertuples()}
    assert p == pytest.approx({(0, 1): 2 / 3, (0, 3): 1 / 3, (2, 1): 0.0, (2, 3): 1.0})
    assert n_off == 0
    _, n_off = transition_probabilities([np.array([1, 0])], adj)
    assert n_off == 1


def test_real_sf_network(data_root):
    seg, adj = build_road_network({"file": "sanfrancisco/osm/sf_north.osm.bz2"}, data_root, "EPSG:32610")
    assert 4000 < len(seg) < 7000
    assert seg["segment_id"].tolist() == list(range(len(seg)))
    assert (seg["length"] > 0).all()
    heads = seg.set_index("segment_id")["v"]
    tails = seg.set_index("segment_id")["u"]
    assert (heads.loc[adj["src"]].to_numpy() == tails.loc[adj["dst"]].to_numpy()).all()
    # strongly connected: every segment has a successor and a predecessor
    assert set(adj["src"]) == set(seg["segment_id"]) == set(adj["dst"])
    assert not seg["highway"].isin(["footway", "pedestrian", "steps", "cycleway"]).any()
