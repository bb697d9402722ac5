"""Mapillary API v4 parsing and selection on a small response in the documented format (no network)."""
import json
from pathlib import Path

import pytest

from trajzoo_trajganr.mapillary import LICENCE, parse_images, select_images

DATA = Path(__file__).parent / "data" / "mapillary_v4_images.json"
PORTO = [-8.70, 41.13, -8.54, 41.195]


def test_parse_graph_api_response():
    meta = parse_images(DATA.read_text())
    assert meta["image_id"].tolist() == ["1001", "1002", "1003", "1004", "1001"]
    assert meta.loc[0, ["lon", "lat"]].tolist() == [-8.611, 41.149]
    assert meta.loc[0, "captured_at"] == 1563340800000 and meta.loc[0, "licence"] == LICENCE
    assert meta.loc[3, "thumb_url"].endswith("1004.jpg") and meta["quality_score"].isna().tolist()[3]


def test_parse_sdk_feature_collection():
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-8.6, 41.15]},
         "properties": {"id": 7, "captured_at": 1, "quality_score": 0.9}}]}
    meta = parse_images(json.dumps(fc))
    assert meta["image_id"].tolist() == ["7"] and meta.loc[0, "quality_score"] == 0.9


def test_selection_counts_every_rejection():
    meta = parse_images(json.loads(DATA.read_text()))
    kept, reasons = select_images(meta, 0.5, PORTO)
    assert kept["image_id"].tolist() == ["1001"]
    assert sorted(reasons) == ["duplicate_id", "no_quality_score", "outside_bbox", "quality_below_threshold"]
    assert len(kept) + len(reasons) == len(meta)


def test_bad_payload_is_refused():
    with pytest.raises(ValueError, match="not a Mapillary v4"):
        parse_images({"images": []})
    with pytest.raises(ValueError, match="'9': no Point geometry"):
        parse_images({"data": [{"id": "9", "geometry": {"type": "LineString", "coordinates": []}}]})


def test_token_is_read_from_the_environment_only(monkeypatch):
    from trajzoo_trajganr.mapillary import fetch_images
    monkeypatch.delenv("MAPILLARY_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="MAPILLARY_TOKEN"):
        fetch_images(PORTO, Path("/nonexistent"), 0.5, 10, None)
