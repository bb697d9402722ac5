"""Street-view images from Mapillary (API v4), the paper's image source (section 4.1, appendix
A.1.1: images within the city's bounding box, quality score at least a threshold).

Online and off by default (``cities.<city>.images.source: mapillary``). The access token is read
from the environment variable ``MAPILLARY_TOKEN`` and never logged nor written to any output.
:func:`parse_images` reads a v4 response (the Graph API ``/images`` JSON ``{"data": [...]}`` or
the SDK's GeoJSON ``FeatureCollection``); :func:`select_images` applies the quality threshold with
counted rejections; :func:`fetch_images` downloads metadata and thumbnails with the ``mapillary``
SDK (extra ``trajzoo-trajganr[mapillary]``) and records what it fetched (ids, capture time,
licence) beside the images. Tests use only the parsing code: they never call the network.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

#: Licence of Mapillary imagery (CC BY-SA 4.0, Mapillary terms of use).
LICENCE = "CC-BY-SA-4.0"
TOKEN_ENV = "MAPILLARY_TOKEN"
#: Columns of the parsed metadata.
COLUMNS = ["image_id", "lon", "lat", "captured_at", "quality_score", "thumb_url", "licence"]


def parse_images(payload: dict | str) -> pd.DataFrame:
    """Image metadata of one Mapillary v4 response.

    Args:
        payload: the JSON (a dict or its text) of ``GET https://graph.mapillary.com/images?bbox=...
            &fields=id,geometry,captured_at,quality_score,thumb_1024_url`` (``{"data": [{"id",
            "geometry": {"type": "Point", "coordinates": [lon, lat]}, "captured_at" (ms since
            epoch), "quality_score", "thumb_1024_url" | "thumb_256_url" ...}]}``) or a GeoJSON
            FeatureCollection of the SDK (``properties`` holding the same fields).

    Returns:
        DataFrame :data:`COLUMNS` (``captured_at`` ms since epoch, missing quality NaN).

    Raises:
        ValueError: a payload of neither form, or an image without a Point geometry (naming its id).
    """
    if isinstance(payload, str):
        payload = json.loads(payload)
    if "data" in payload:
        items = [(d, d) for d in payload["data"]]
    elif payload.get("type") == "FeatureCollection":
        items = [(f.get("properties") or {}, f) for f in payload.get("features", [])]
    else:
        raise ValueError("not a Mapillary v4 images response: neither {'data': [...]} nor a FeatureCollection")
    rows = []
    for props, holder in items:
        geom = holder.get("geometry") or props.get("computed_geometry")
        iid = str(props.get("id", holder.get("id", "")))
        if not geom or geom.get("type") != "Point" or len(geom.get("coordinates", [])) < 2:
            raise ValueError(f"Mapillary image {iid!r}: no Point geometry")
        lon, lat = map(float, geom["coordinates"][:2])
        thumb = next((props[k] for k in ("thumb_1024_url", "thumb_2048_url", "thumb_256_url", "thumb_original_url")
                      if props.get(k)), None)
        rows.append({"image_id": iid, "lon": lon, "lat": lat, "captured_at": props.get("captured_at"),
                     "quality_score": props.get("quality_score"), "thumb_url": thumb, "licence": LICENCE})
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["quality_score"] = pd.to_numeric(out["quality_score"], errors="coerce")
    return out


def select_images(meta: pd.DataFrame, min_quality: float, bbox, max_images: int | None = None
                  ) -> tuple[pd.DataFrame, pd.Series]:
    """Keep images inside ``bbox`` (min_lon, min_lat, max_lon, max_lat) with a quality score of at
    least ``min_quality``, at most ``max_images`` (the first by image id), de-duplicated by id.

    Returns:
        ``(kept, reasons)``: one reason per rejected image (``duplicate_id``, ``outside_bbox``,
        ``no_quality_score``, ``quality_below_threshold``, ``image_cap``); kept + rejected = input.
    """
    reasons = []
    dup = meta["image_id"].duplicated()
    reasons += ["duplicate_id"] * int(dup.sum())
    m = meta[~dup]
    inside = m["lon"].between(bbox[0], bbox[2]) & m["lat"].between(bbox[1], bbox[3])
    reasons += ["outside_bbox"] * int((~inside).sum())
    m = m[inside]
    noq = m["quality_score"].isna()
    reasons += ["no_quality_score"] * int(noq.sum())
    m = m[~noq]
    low = m["quality_score"] < min_quality
    reasons += ["quality_below_threshold"] * int(low.sum())
    m = m[~low].sort_values("image_id")
    if max_images is not None and len(m) > max_images:
        reasons += ["image_cap"] * (len(m) - max_images)
        m = m.iloc[:max_images]
    return m.reset_index(drop=True), pd.Series(reasons, dtype=object)


def fetch_images(bbox, out_dir: Path, min_quality: float, max_images: int, logger) -> tuple[pd.DataFrame, pd.Series]:
    """Download metadata and thumbnails of the images in ``bbox`` with the ``mapillary`` SDK.

    Writes ``out_dir/<image_id>.jpg``; returns ``(kept metadata with a ``file`` column, reasons)``.
    The token comes from ``$MAPILLARY_TOKEN`` and appears in no log line or file.

    Raises:
        RuntimeError: no token in the environment, or the SDK is not installed (naming the extra).
    """
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise RuntimeError(f"Mapillary download needs an access token in the environment variable {TOKEN_ENV}")
    try:
        import mapillary.interface as mly
    except ImportError:
        raise RuntimeError("Mapillary download needs the SDK: pip install 'trajzoo-trajganr[mapillary]'") from None
    import urllib.request

    mly.set_access_token(token)
    raw = mly.images_in_bbox({"west": bbox[0], "south": bbox[1], "east": bbox[2], "north": bbox[3]})
    meta = parse_images(raw)
    logger.info("Mapillary: %d images in the bounding box", len(meta))
    fields = "quality_score,thumb_1024_url,captured_at"
    for i, iid in enumerate(meta["image_id"]):  # the bbox listing lacks the quality score: one lookup per image
        req = urllib.request.Request(f"https://graph.mapillary.com/{iid}?fields={fields}",
                                     headers={"Authorization": f"OAuth {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            d = json.loads(resp.read())
        meta.loc[i, ["quality_score", "thumb_url", "captured_at"]] = [d.get("quality_score"), d.get("thumb_1024_url"),
                                                                     d.get("captured_at")]
    meta["quality_score"] = pd.to_numeric(meta["quality_score"], errors="coerce")
    kept, reasons = select_images(meta, min_quality, bbox, max_images)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for iid, url in zip(kept["image_id"], kept["thumb_url"]):
        path = out_dir / f"{iid}.jpg"
        with urllib.request.urlopen(url, timeout=60) as resp:
            path.write_bytes(resp.read())
        files.append(str(path))
    kept = kept.assign(file=files)
    logger.info("Mapillary: kept %d images (quality >= %g), rejected %d", len(kept), min_quality, len(reasons))
    return kept, reasons
