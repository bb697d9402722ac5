"""Report figures people look at beyond the tables: an interactive map of raw GPS fixes against
the matched route over the road network itself (self-contained HTML + SVG, no tile server), the
distances of GPS fixes to the nearest road, a 2-D projection of trip embeddings coloured by a
label, TTE predicted vs true, ablation results, and road segments as GeoParquet.

Everything is drawn with matplotlib (Agg) or written as plain HTML; shapely, pyproj, scikit-learn
(PCA) and geopandas do the geometry, projection and file work.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402

from trajzoo.results import LOWER_IS_BETTER  # noqa: E402


def project_lonlat(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Degrees (EPSG:4326) -> metres of ``crs`` (pyproj, ``always_xy``)."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.asarray(x), np.asarray(y)


def sample_matched(matched: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` matched trips drawn with a seeded generator (all when fewer), in trip-id order."""
    if len(matched) <= n:
        return matched.sort_values("trip_id").reset_index(drop=True)
    pick = np.random.default_rng(seed).choice(len(matched), size=n, replace=False)
    return matched.iloc[np.sort(pick)].sort_values("trip_id").reset_index(drop=True)


def route_map_html(segments: pd.DataFrame, trips: pd.DataFrame, matched: pd.DataFrame, crs: str, out: Path,
                   city: str, n_sample: int = 8, seed: int = 0) -> int:
    """Write an interactive map (one self-contained HTML file with an inline SVG) of ``n_sample``
    matched trips: the whole road network (grey), each trip's matched route (its road segments,
    coloured) and its raw GPS fixes (dots, numbered in their order on hover). A menu picks the trip
    shown; the mouse wheel zooms and dragging pans. No tile server, no network access, no script
    from elsewhere.

    Args:
        segments: road segments with ``geometry_wkt`` in ``crs`` metres.
        trips: ingest output (trip_id, lon, lat); matched: map-matching output (trip_id, roads).
        crs: the projected CRS. out: the .html file. city: title.

    Returns:
        The number of trips drawn.
    """
    geoms = shapely.from_wkt(segments["geometry_wkt"].to_numpy())
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    w, h = x1 - x0, y1 - y0

    def path(g) -> str:  # SVG y grows downwards
        xy = np.asarray(g.coords)
        return "M" + " L".join(f"{x - x0:.1f},{y1 - y:.1f}" for x, y in xy)

    network = "".join(f'<path d="{path(g)}"/>' for g in geoms)
    pick = sample_matched(matched, n_sample, seed)
    raw = trips.set_index(trips["trip_id"].astype(str))
    colours = [matplotlib.colors.to_hex(c) for c in plt.cm.tab10(np.arange(max(len(pick), 1)) % 10)]
    layers, options = [], []
    for k, (tid, roads) in enumerate(zip(pick["trip_id"].astype(str), pick["roads"])):
        route = "".join(f'<path d="{path(geoms[int(s)])}"/>' for s in roads)
        gx, gy = project_lonlat(raw.loc[tid, "lon"], raw.loc[tid, "lat"], crs)
        fixes = "".join(f'<circle cx="{x - x0:.1f}" cy="{y1 - y:.1f}" r="6"><title>fix {i}</title></circle>'
                        for i, (x, y) in enumerate(zip(gx, gy)))
        layers.append(f'<g class="trip" id="trip{k}" style="display:{"inline" if k == 0 else "none"}">'
                      f'<g class="route" stroke="{colours[k]}">{route}</g><g class="fix">{fixes}</g></g>')
        options.append(f'<option value="{k}">{html.escape(tid)}: {len(gx)} GPS fixes, {len(roads)} segments</option>')
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(city)}: GPS fixes and matched routes</title>
<style>body{{font-family:sans-serif;margin:8px}} svg{{border:1px solid #ccc;background:#fff;cursor:grab}}
.net path{{fill:none;stroke:#bbb;stroke-width:1;vector-effect:non-scaling-stroke}}
.route path{{fill:none;stroke-width:5;stroke-opacity:.75;vector-effect:non-scaling-stroke}}
.fix circle{{fill:#000;fill-opacity:.75}}</style></head><body>
<h3>{html.escape(city)}: raw GPS fixes (black dots) against the FMM-matched route (coloured), over the road network (grey)</h3>
<label>trip <select id="pick">{''.join(options)}</select></label> <span>{len(geoms)} road segments; wheel: zoom, drag: pan; units: metres of {html.escape(crs)}</span><br>
<svg id="map" width="900" height="700" viewBox="0 0 {w:.0f} {h:.0f}" preserveAspectRatio="xMidYMid meet">
<g class="net">{network}</g>{''.join(layers)}</svg>
<script>
(function(){{
var svg=document.getElementById('map'), vb={json.dumps([0, 0, round(w), round(h)])};
function set(){{svg.setAttribute('viewBox',vb.join(' '));var r=vb[2]/300,c=svg.querySelectorAll('circle');
  for(var i=0;i<c.length;i++){{c[i].setAttribute('r',r);}}}}
function show(k){{var t=document.querySelectorAll('.trip');for(var i=0;i<t.length;i++){{t[i].style.display=(i==k)?'inline':'none';}}
  var b=t[k]?t[k].getBBox():null;if(b&&b.width>0){{var m=Math.max(b.width,b.height)*0.15+50;
  vb=[b.x-m,b.y-m,b.width+2*m,b.height+2*m];}}set();}}
document.getElementById('pick').addEventListener('change',function(e){{show(+e.target.value);}});
show(0);
svg.addEventListener('wheel',function(e){{e.preventDefault();var r=svg.getBoundingClientRect();
  var f=e.deltaY<0?0.8:1.25, px=vb[0]+vb[2]*(e.clientX-r.left)/r.width, py=vb[1]+vb[3]*(e.clientY-r.top)/r.height;
  vb=[px-(px-vb[0])*f,py-(py-vb[1])*f,vb[2]*f,vb[3]*f];set();}});
var drag=null;svg.addEventListener('mousedown',function(e){{drag=[e.clientX,e.clientY];}});
window.addEventListener('mouseup',function(){{drag=null;}});
svg.addEventListener('mousemove',function(e){{if(!drag)return;var r=svg.getBoundingClientRect();
  vb[0]-=(e.clientX-drag[0])*vb[2]/r.width;vb[1]-=(e.clientY-drag[1])*vb[3]/r.height;drag=[e.clientX,e.clientY];set();}});
}})();
</script></body></html>
"""
    Path(out).write_text(page)
    return len(pick)


def gps_road_distances(segments: pd.DataFrame, trips: pd.DataFrame, crs: str) -> np.ndarray:
    """Distance (metres) of every GPS fix of ``trips`` to the nearest road segment
    (shapely ``STRtree.query_nearest``). ``(n_fixes,)`` float64."""
    tree = shapely.STRtree(shapely.from_wkt(segments["geometry_wkt"].to_numpy()))
    if not len(trips):
        return np.zeros(0)
    x, y = project_lonlat(np.concatenate(trips["lon"].to_numpy()), np.concatenate(trips["lat"].to_numpy()), crs)
    _, dist = tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
    return np.asarray(dist, dtype=np.float64)


def plot_gps_road_distances(dist: np.ndarray, out: Path, city: str, n_trips: int, radius_m: float | None = None
                            ) -> None:
    """Histogram of GPS-to-road distances (m), with the median and the FMM candidate radius."""
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    top = max(float(np.percentile(dist, 99.5)) if len(dist) else 1.0, (radius_m or 0) * 1.2, 1.0)
    ax.hist(np.clip(dist, 0, top), bins=60, range=(0, top), color="tab:blue")
    if len(dist):
        ax.axvline(np.median(dist), color="k", linestyle="--", label=f"median {np.median(dist):.1f} m")
    if radius_m:
        ax.axvline(radius_m, color="tab:red", label=f"FMM candidate radius {radius_m:g} m")
    ax.set_xlabel("distance of a GPS fix to the nearest road segment (m)")
    ax.set_ylabel("GPS fixes")
    ax.set_title(f"{city}: {len(dist)} fixes of {n_trips} ingested trips")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_embedding_projection(embeddings: dict[str, pd.DataFrame], labels: pd.Series, label_name: str, out: Path,
                              city: str, max_points: int = 3000, seed: int = 0) -> None:
    """PCA (scikit-learn) of each model's trip embeddings to 2-D, coloured by ``labels``
    (trip_id -> label; categorical), one panel per model.

    Args:
        embeddings: model -> table with trip_id and embedding ((d,) arrays).
        labels: label of each trip id. label_name: legend title.
    """
    from sklearn.decomposition import PCA

    n = max(len(embeddings), 1)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.5), dpi=110, squeeze=False)
    cats = sorted(labels.dropna().astype(str).unique())
    cmap = plt.cm.tab10 if len(cats) <= 10 else plt.cm.tab20
    for ax, (model, table) in zip(axes[0], sorted(embeddings.items())):
        t = table[table["trip_id"].astype(str).isin(labels.index)]
        if len(t) > max_points:
            t = t.iloc[np.sort(np.random.default_rng(seed).choice(len(t), max_points, replace=False))]
        if len(t) < 3:
            ax.set_title(f"{model}: too few embeddings")
            continue
        xy = PCA(n_components=2, random_state=seed).fit_transform(np.stack(t["embedding"].to_list()))
        lab = labels.reindex(t["trip_id"].astype(str)).astype(str).to_numpy()
        for i, c in enumerate(cats):
            sel = lab == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i % cmap.N), label=c, alpha=0.7)
        ax.set_title(f"{model} ({len(t)} trips)")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0][-1].legend(title=label_name, fontsize=7, markerscale=2)
    fig.suptitle(f"{city}: trip embeddings, 2-D PCA, coloured by {label_name}")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_tte_predictions(predictions: dict[str, pd.DataFrame], out: Path, city: str) -> None:
    """TTE predicted vs true minutes on the test trips, one panel per model and setting, with the
    diagonal and the MAE."""
    n = max(len(predictions), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.2 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (label, p) in zip(axes.flat, sorted(predictions.items())):
        top = float(max(p["y_true"].max(), p["y_pred"].max(), 1.0)) if len(p) else 1.0
        ax.scatter(p["y_true"], p["y_pred"], s=8, alpha=0.6)
        ax.plot([0, top], [0, top], color="k", linewidth=0.8)
        mae = float(np.mean(np.abs(p["y_true"] - p["y_pred"]))) if len(p) else float("nan")
        ax.set_title(f"{label}\nMAE {mae:.2f} min, {len(p)} trips", fontsize=9)
        ax.set_xlabel("true travel time (min)")
        ax.set_ylabel("predicted (min)")
    fig.suptitle(f"{city}: travel time estimation on the test split")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_ablations(table: pd.DataFrame, out: Path, city: str, model: str) -> None:
    """Bars of every (task, metric) of an ablation table (``results/<city>/<model>-ablations.csv``
    long format), one panel per (task, metric), one bar per variant (mean over seeds, seed std as
    error bar)."""
    groups = list(table.groupby(["task", "metric"], sort=True))
    n = max(len(groups), 1)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, ((task, metric), g) in zip(axes.flat, groups):
        stats = g.groupby("variant")["value"].agg(["mean", "std"]).fillna({"std": 0.0})
        order = ["full"] + sorted(v for v in stats.index if v != "full") if "full" in stats.index else sorted(stats.index)
        stats = stats.loc[order]
        ax.barh(range(len(stats)), stats["mean"], xerr=stats["std"],
                color=["tab:red" if v == "full" else "tab:blue" for v in stats.index])
        ax.set_yticks(range(len(stats)), stats.index, fontsize=7)
        ax.set_title(f"{task} {metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)", fontsize=9)
    fig.suptitle(f"{city}: {model} ablations (variants)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def write_segments_geoparquet(segments: pd.DataFrame, crs: str, out: Path) -> None:
    """Road segments as GeoParquet with their CRS (geopandas ``to_parquet``): the same columns,
    ``geometry_wkt`` turned into a ``geometry`` column; QGIS and ``geopandas.read_parquet`` open it."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(segments.drop(columns=["geometry_wkt"]),
                           geometry=gpd.GeoSeries.from_wkt(segments["geometry_wkt"].to_numpy()), crs=crs)
    gdf.to_parquet(out, index=False)

