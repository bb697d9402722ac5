"""Trained-model bundles: use a pretrained (or fine-tuned) model on new raw GPS trips, without
Snakemake.

A bundle is one self-contained folder, written by the workflow's ``model_bundle`` rule beside the
pretraining (``results/models/<model>/<variant>/<training>/seed<s>/bundle/``)::

    bundle.json          model, variant, training key, setting, training cities (target, sources),
                         seed, hparams, config digest, the city whose views it reads (crs, timezone,
                         bbox, filters, map_matching, network box), point-feature radii
    model.pt             the weights as the pretrain rule wrote them (plugin ``save``)
    roads/*.parquet      road models: segments, adjacency, structural, attributes, transitions of the
                         road network the model was trained on (its segment ids are the model's)
    context/*.parquet    point models: the training target's road segments and POIs, when it has them
    ubodt/               fastmm's UBODT, built on first use (or copied from the run)

:func:`load_model` reads it; :meth:`TrainedModel.embed` takes new trips (a file in any installed
``trajzoo.readers`` format, or a DataFrame of trips in the ingest layout), runs the same ingest
filters as training (:func:`trajzoo.ingest.filters.filter_trips`, with the bundle's bbox, filters
and network buffer), for road models the same FMM map matching on the bundle's road network
(:func:`trajzoo.mapmatching.fmm.match_trips`), for point models the same point features
(:func:`trajzoo.points.point_features`), and returns one embedding per kept trip and one row per
rejected trip with the stage and reason (kept + rejected = input).

Fine-tuned task heads (``<task>_head.pt``, written by the ``evaluate`` rule, see
:func:`save_head`) give :meth:`TrainedModel.predict`: per-trip predictions (TTE minutes, DP segment
id, CLA class) of new trips.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

#: Version of the bundle layout (``bundle.json["format_version"]``).
BUNDLE_VERSION = 1
ROAD_TABLES = ("segments", "adjacency", "structural", "attributes", "transitions")
REJECTION_COLUMNS = ["trip_id", "stage", "reason"]


def write_bundle(out_dir: Path | str, model_file: Path | str, meta: dict, road_tables: dict | None = None,
                 context: dict | None = None, ubodt_dir: Path | str | None = None) -> Path:
    """Write a bundle folder (see the module docstring).

    Args:
        out_dir: the bundle folder (created; an existing one is replaced).
        model_file: the pretraining's ``model.pt``.
        meta: ``bundle.json`` content: at least ``model``, ``inputs`` (the plugin's inputs),
            ``city`` (key) and ``city_config`` (``crs``, ``timezone``, ``bbox``, ``filters`` and,
            for road models, ``map_matching``).
        road_tables: road models: path of each of :data:`ROAD_TABLES`.
        context: point models: ``{"segments": path, "pois": path}`` (either may be missing).
        ubodt_dir: an existing UBODT folder of the same road network to copy (None: built on
            first use).

    Returns:
        ``out_dir``.

    Raises:
        KeyError: a road model without one of the road tables, or ``meta`` lacking a key above.
    """
    out = Path(out_dir)
    for key in ("model", "inputs", "city", "city_config"):
        if key not in meta:
            raise KeyError(f"bundle meta lacks {key!r}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(model_file, out / "model.pt")
    if "roads" in meta["inputs"]:
        missing = [t for t in ROAD_TABLES if t not in (road_tables or {})]
        if missing:
            raise KeyError(f"road model bundle needs road tables {missing}")
        (out / "roads").mkdir()
        for name in ROAD_TABLES:
            shutil.copyfile(road_tables[name], out / "roads" / f"{name}.parquet")
    if context:
        (out / "context").mkdir()
        for name, path in context.items():
            if path:
                shutil.copyfile(path, out / "context" / f"{name}.parquet")
    if ubodt_dir is not None and Path(ubodt_dir).is_dir():
        shutil.copytree(ubodt_dir, out / "ubodt")
    (out / "bundle.json").write_text(json.dumps({"format_version": BUNDLE_VERSION, **meta}, indent=2,
                                                sort_keys=True, default=str))
    return out


@dataclass
class EmbeddingResult:
    """What :meth:`TrainedModel.embed` returns.

    Attributes:
        embeddings: one row per kept trip: ``trip_id`` (str) and ``embedding`` ((d,) float32).
        rejections: one row per rejected trip: ``trip_id``, ``stage`` (``read``, ``ingest``,
            ``map_matching``, ``points``) and ``reason``.
        n_in: trips read. Invariant: ``n_in == len(embeddings) + len(rejections)``.
    """

    embeddings: pd.DataFrame
    rejections: pd.DataFrame
    n_in: int

    def to_parquet(self, path: Path | str) -> tuple[Path, Path]:
        """Write ``path`` (embeddings) and ``<stem>.rejections.parquet`` beside it; returns both."""
        path = Path(path)
        rej = path.with_name(f"{path.stem}.rejections.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.embeddings.to_parquet(path, index=False)
        self.rejections.to_parquet(rej, index=False)
        return path, rej


def _rejections(frames: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [f[REJECTION_COLUMNS] for f in frames if len(f)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECTION_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out["trip_id"] = out["trip_id"].astype(str)
    return out


class TrainedModel:
    """A model read from a bundle (:func:`load_model`), ready to embed new trips.

    Attributes:
        path: the bundle folder. meta: ``bundle.json``. plugin: the model plugin (entry point
        ``meta["model"]``). model: the ``nn.Module`` in eval mode on ``device``. graph: the road
        graph (road models) or None. segments: the road segment table (road models; point models
        with road context) or None.
    """

    def __init__(self, path: Path | str, device: str = "cpu"):
        from trajzoo.data.city import road_graph_from_tables
        from trajzoo.data.prepared import PreparedCity
        from trajzoo.registry import get_model
        from trajzoo.training.loop import resolve_device

        self.path = Path(path)
        meta_file = self.path / "bundle.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{self.path}: not a trajzoo model bundle (no bundle.json)")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format_version") != BUNDLE_VERSION:
            raise ValueError(f"{meta_file}: bundle format {self.meta.get('format_version')}, "
                             f"this trajzoo reads {BUNDLE_VERSION}")
        self.device = resolve_device(device)
        self.plugin = get_model(self.meta["model"])
        self.city = self.meta["city"]
        self.city_config = self.meta["city_config"]
        self.graph = None
        self.segments = None
        target = PreparedCity(self.city, self.city_config["timezone"])
        if self.is_road_model:
            tables = {t: pd.read_parquet(self.path / "roads" / f"{t}.parquet") for t in ROAD_TABLES}
            self.segments = tables["segments"]
            self.graph = road_graph_from_tables(self.city, tables["structural"], tables["attributes"],
                                                tables["transitions"])
            from trajzoo.data.city import CityData
            target.road = CityData(self.city, self.city_config["timezone"], self.graph, pd.DataFrame())
        elif (self.path / "context" / "segments.parquet").is_file():
            self.segments = pd.read_parquet(self.path / "context" / "segments.parquet")
        self.pois = (pd.read_parquet(self.path / "context" / "pois.parquet")
                     if (self.path / "context" / "pois.parquet").is_file() else None)
        self.model = self.plugin.load(self.path / "model.pt", target, self.device)
        self.model.eval()
        from trajzoo.training.loop import tensor_digest
        #: digest of the pretrained weights (a fine-tuned head records the one it started from)
        self.weights_digest = tensor_digest(self.model.state_dict())

    @property
    def is_road_model(self) -> bool:
        """True when the model reads map-matched road-segment sequences (input ``roads``)."""
        return "roads" in self.meta["inputs"]

    # -- reading and filtering -------------------------------------------------------------
    def _coverage(self):
        from trajzoo.ingest import NETWORK_BUFFER_M
        from trajzoo.ingest.coverage import network_coverage

        buffer_m = (self.city_config.get("filters") or {}).get("network_buffer_m", NETWORK_BUFFER_M)
        if self.segments is None or buffer_m is None:
            return None
        return network_coverage(self.segments, self.city_config["crs"], float(buffer_m),
                                self.meta.get("network_bounds"))

    def read_trips(self, trips, format: str | None = None, source: dict | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
        """Read and filter new trips exactly as the training city's ingest did.

        Args:
            trips: a path (file or folder) in the reader format ``format`` (an installed
                ``trajzoo.readers`` entry point, e.g. ``porto_csv``, ``cabspotting``), or a
                DataFrame with columns trip_id, timestamps (Unix s), lon, lat (degrees), and
                optionally taxi_id, call_type.
            format: reader name (paths only).
            source: further keys of the reader's ``trajectories`` section (e.g. Cabspotting's
                ``occupied_runs``).

        Returns:
            ``(kept trips in the ingest layout, rejections (trip_id, stage, reason), trips read)``.

        Raises:
            ValueError: a path without ``format``, an unknown format, or a DataFrame lacking a column.
            trajzoo.ingest.InputFileError: an unreadable file (naming file, row and problem).
        """
        from trajzoo.ingest import _finish_trips, ingest_city
        from trajzoo.ingest.filters import filter_trips

        cfg = self.city_config
        flt = cfg["filters"]
        coverage = self._coverage()
        if isinstance(trips, pd.DataFrame):
            missing = [c for c in ("trip_id", "timestamps", "lon", "lat") if c not in trips.columns]
            if missing:
                raise ValueError(f"trips lack column(s) {missing}")
            df = trips.copy()
            for col in ("taxi_id", "call_type"):
                if col not in df:
                    df[col] = None if col == "call_type" else ""
            kept, rej = filter_trips(df, cfg.get("bbox") or (coverage.bbox_degrees() if coverage else None),
                                     flt["min_points"], flt["max_points"], flt["max_speed_mps"], coverage=coverage)
            kept = _finish_trips(kept) if len(kept) else kept
            return kept, rej.assign(stage="ingest"), len(df)
        if format is None:
            raise ValueError("reading a trips file needs its format (a trajzoo.readers name, e.g. porto_csv)")
        path = Path(trips)
        city = {"trajectories": {**(source or {}), "format": format, "path": path.name}, "bbox": cfg.get("bbox"),
                "filters": flt, "caps": {"max_trips": None}, "crs": cfg["crs"]}
        kept, rej, qc = ingest_city(city, path.parent, coverage=coverage)
        n_in = int(qc.loc[(qc["stage"] == "ingest") & (qc["outcome"] == "in"), "count"].sum())
        return kept, rej.assign(stage="ingest"), n_in

    def _view(self, kept: pd.DataFrame, ubodt_dir: Path | str | None, workers: int):
        """(rows, rejections) of the model's view of ingested trips."""
        cfg = self.city_config
        if self.is_road_model:
            from trajzoo.data.city import add_time_features, trip_rows
            from trajzoo.mapmatching.fmm import MatchParams, match_trips, resolve_ubodt_delta

            if not len(kept):
                return [], pd.DataFrame(columns=REJECTION_COLUMNS)
            # the pipeline stores the delta resolved; resolve_ubodt_delta keeps a number as it is
            params = MatchParams.from_dict({**cfg["map_matching"], "ubodt_delta": resolve_ubodt_delta(cfg)[0]})
            matched, _, rej = match_trips(kept, self.segments, cfg["crs"], params,
                                          Path(ubodt_dir) if ubodt_dir else self.path / "ubodt",
                                          workers=workers, progress=False)
            matched = add_time_features(matched, cfg["timezone"]) if len(matched) else matched
            return (trip_rows(matched) if len(matched) else []), rej.assign(stage="map_matching")
        from trajzoo.data.points import point_rows
        from trajzoo.points import point_features

        if not len(kept):
            return [], pd.DataFrame(columns=REJECTION_COLUMNS)
        points, qc = point_features(kept, cfg["crs"], cfg["timezone"], segments=self.segments, pois=self.pois,
                                    **self.meta.get("points", {}))
        lost = sorted(set(kept["trip_id"].astype(str)) - set(points["trip_id"].astype(str)))
        reasons = qc.loc[qc["outcome"].str.startswith("rejected:"), "outcome"].str[len("rejected:"):].tolist()
        reason = reasons[0] if len(reasons) == 1 else "point_features_rejected"
        rej = pd.DataFrame({"trip_id": lost, "stage": "points", "reason": reason})
        return point_rows(points), rej

    # -- public API --------------------------------------------------------------------------
    def embed(self, trips, format: str | None = None, source: dict | None = None, batch_size: int = 128,
              ubodt_dir: Path | str | None = None, workers: int = 1) -> EmbeddingResult:
        """One embedding per new trip that passes the training city's filters (and map matching).

        Args:
            trips, format, source: see :meth:`read_trips`.
            batch_size: trips per forward pass.
            ubodt_dir: fastmm UBODT cache folder (default ``<bundle>/ubodt``; built there when missing).
            workers: map-matching worker processes.

        Returns:
            :class:`EmbeddingResult` (``(d,)`` float32 embeddings, rejections with reasons).

        Raises:
            see :meth:`read_trips`.
        """
        kept, rej_ingest, n_in = self.read_trips(trips, format, source)
        rows, rej_view = self._view(kept, ubodt_dir, workers)
        emb = (self.plugin.embed_rows(self.model, rows, self.device, graph=self.graph, city=self.city,
                                      batch_size=batch_size) if rows else np.zeros((0, 0), dtype=np.float32))
        out = pd.DataFrame({"trip_id": [str(r["trip_id"]) for r in rows], "embedding": list(emb)})
        return EmbeddingResult(out, _rejections([rej_ingest, rej_view]), n_in)

    def predict(self, trips, head: Path | str, format: str | None = None, source: dict | None = None,
                batch_size: int = 128, ubodt_dir: Path | str | None = None, workers: int = 1
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-trip predictions of a fine-tuned road-task head (``<task>_head.pt``, :func:`save_head`)
        on new trips, each trip's whole matched road sequence as the model's input (through the
        task's input view: TTE sees the departure time only).

        Returns:
            ``(predictions, rejections)``. predictions: trip_id, task, prediction (TTE: minutes;
            DP: segment id; CLA: class label), and ``score`` (classification: the predicted
            class's softmax probability).

        Raises:
            ValueError: the head was fine-tuned from another pretraining than this bundle's, or
                is not a road-task head; see also :meth:`read_trips`.
        """
        from trajzoo.data.city import iterate_batches
        from trajzoo.registry import get_task
        from trajzoo.training.loop import FineTuneModel, load_checkpoint

        ckpt = load_checkpoint(Path(head), "cpu")
        if ckpt.get("state_dict") is None or ckpt.get("input_kind") != "road":
            raise ValueError(f"{head}: not a fine-tuned road-task head (task {ckpt.get('task')!r})")
        if ckpt.get("bundle_digest") not in (None, self.weights_digest):
            raise ValueError(f"{head}: fine-tuned from pretrained weights {ckpt['bundle_digest']}, "
                             f"this bundle holds {self.weights_digest}")
        task = get_task(ckpt["task"], **dict(ckpt.get("task_options") or {}))
        model = FineTuneModel(self.model, int(ckpt["n_outputs"]))
        model.load_state_dict(ckpt["state_dict"])
        model.to(self.device).eval()
        kept, rej_ingest, _ = self.read_trips(trips, format, source)
        rows, rej_view = self._view(kept, ubodt_dir, workers)
        graph = self.graph.to(self.device)
        outs = []
        with torch.no_grad():
            for _, batch in iterate_batches(rows, batch_size):
                outs.append(model(task.input_view(batch).to(self.device), graph).float().cpu())
        out = torch.cat(outs).numpy() if outs else np.zeros((0, int(ckpt["n_outputs"])), dtype=np.float32)
        pred = pd.DataFrame({"trip_id": [str(r["trip_id"]) for r in rows], "task": task.name})
        if task.kind == "regression":
            pred["prediction"] = out.reshape(-1).astype(np.float64) * float(ckpt["label_std"]) + float(ckpt["label_mean"])
        else:
            prob = torch.softmax(torch.from_numpy(out), dim=-1).numpy()
            best = prob.argmax(axis=1) if len(prob) else np.zeros(0, dtype=np.int64)
            names = list(ckpt.get("class_names") or [])
            pred["prediction"] = [names[i] if names else str(int(i)) for i in best]
            pred["score"] = prob[np.arange(len(best)), best] if len(best) else np.zeros(0)
        return pred, _rejections([rej_ingest, rej_view])


def load_model(path: Path | str, device: str = "cpu") -> TrainedModel:
    """Read a model bundle (:class:`TrainedModel`): ``trajzoo.load_model(path).embed(trips)``.

    Raises:
        FileNotFoundError: ``path`` is not a bundle folder. ValueError: another bundle format.
        KeyError: the bundle's model is not installed.
    """
    return TrainedModel(path, device)


def save_head(path: Path | str, task, result: dict, task_options: dict, bundle_digest: str | None) -> None:
    """Write a fine-tuned road-task head (encoder + linear head, label standardisation, class
    names) as ``path`` (atomic ``torch.save``; read with ``weights_only``).

    Args:
        task: the task instance. result: :func:`trajzoo.training.loop.finetune_and_evaluate`'s
        dict (``model``, ``label_mean``, ``label_std``). task_options: the task's keyword
        arguments. bundle_digest: :func:`trajzoo.training.loop.tensor_digest` of the pretrained
        weights it was fine-tuned from.
    """
    from trajzoo.training.loop import atomic_save

    model = result["model"]
    atomic_save({"task": task.name, "kind": task.kind, "input_kind": "road", "task_options": dict(task_options),
                 "n_outputs": int(model.head.out_features), "label_mean": float(result["label_mean"]),
                 "label_std": float(result["label_std"]), "class_names": list(result.get("class_names") or []),
                 "bundle_digest": bundle_digest,
                 "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, Path(path))


def save_no_head(path: Path | str, task, reason: str) -> None:
    """Write the head file of a task without a per-trip road head (point tasks, similarity search):
    it records the task and why (``state_dict`` None)."""
    from trajzoo.training.loop import atomic_save

    atomic_save({"task": task.name, "input_kind": task.input_kind, "state_dict": None, "reason": reason}, Path(path))
