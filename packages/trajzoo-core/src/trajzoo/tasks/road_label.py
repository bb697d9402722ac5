"""Road label classification (SMARTraj2, Section 4.1.2; START and JGRM's road-level task): classify
road segments into primary / secondary / tertiary / residential from their representations."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trajzoo.qc import stage_counts

#: The four classes (SMARTraj2: "Primary, Secondary, Tertiary, and Residential").
ROAD_LABELS = ("primary", "secondary", "tertiary", "residential")
#: OSM ``highway`` -> label: the ``*_link`` roads are folded into their class.
HIGHWAY_TO_LABEL = {"primary": 0, "primary_link": 0, "secondary": 1, "secondary_link": 1, "tertiary": 2,
                    "tertiary_link": 2, "residential": 3}
CLASS_PREFIX = "class_"


@dataclass
class SegmentTaskData:
    """Labels of a segment-level task.

    Attributes:
        segments: per split, ``(n,)`` int64 segment ids. labels: per split, ``(n,)`` int64 class ids.
        qc: accounting over the city's segments (stage ``task:road_label``).
    """

    segments: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    qc: pd.DataFrame


class RoadLabelClassification:
    """Road label classification over road segments (task kind ``segment``).

    Labels come from the OSM ``highway`` class one-hot of the road attributes (``class_<highway>``
    columns of :attr:`trajzoo.data.batch.RoadGraph.attribute_names`): primary, secondary,
    tertiary, residential, link roads folded into their class. Segments of any other class are
    excluded (counted as ``excluded_class:<highway>``), as are segments no train/val/test trip
    traverses (``not_traversed``; the paper keeps traversed segments only). The kept segments are
    split ``train``/``val``/``test`` by segment (fractions ``split``, seeded permutation of the
    sorted ids).

    What the model sees (:meth:`input_graph`): the road graph with every ``class_*`` column of the
    attributes set to 0, so the label is in no input. The model's frozen segment representations
    (``segment_embeddings(graph) -> (N, d)``) are scored with a logistic-regression probe (sklearn,
    standardised features) fit on the train segments; Micro-F1, Macro-F1 on the test segments.
    """

    name = "road_label"
    kind = "classification"
    input_kind = "segment"
    metric_names = ("Micro-F1", "Macro-F1")
    required_inputs = frozenset({"roads"})

    def __init__(self, split: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0):
        if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-9 or split[0] <= 0 or split[2] <= 0:
            raise ValueError(f"road_label split must be three fractions summing to 1 (train, test > 0), got {split}")
        self.split = tuple(float(s) for s in split)
        self.seed = int(seed)

    @staticmethod
    def _class_columns(graph) -> list[int]:
        names = list(graph.attribute_names)
        if not names or len(names) != graph.attributes.shape[1]:
            raise ValueError(f"{graph.city}: the road graph carries no attribute names; road_label needs the "
                             "class_* columns (trajzoo.data.city.road_graph_from_tables sets them)")
        return [i for i, n in enumerate(names) if n.startswith(CLASS_PREFIX)]

    def prepare(self, graph, trips: pd.DataFrame) -> SegmentTaskData:
        """Labels and the seeded per-segment split.

        Args:
            graph: the city's :class:`~trajzoo.data.batch.RoadGraph` (with attribute names).
            trips: the road view's trips (``roads`` column), for the traversed segments.

        Raises:
            ValueError: no attribute names, or fewer than one kept segment per split.
        """
        cols = self._class_columns(graph)
        names = [graph.attribute_names[i][len(CLASS_PREFIX):] for i in cols]
        onehot = graph.attributes[:, cols].numpy()
        highway = np.array(names, dtype=object)[onehot.argmax(axis=1)]
        traversed = np.zeros(graph.num_segments, dtype=bool)
        if len(trips):
            traversed[np.unique(np.concatenate([np.asarray(r) for r in trips["roads"]]))] = True
        labels = np.array([HIGHWAY_TO_LABEL.get(h, -1) for h in highway], dtype=np.int64)
        reasons = np.where(~traversed, "not_traversed",
                           np.where(labels < 0, np.char.add("excluded_class:", highway.astype(str)), ""))
        keep = reasons == ""
        qc = stage_counts(f"task:{self.name}", graph.num_segments, int(keep.sum()), pd.Series(reasons[~keep]))
        ids = np.flatnonzero(keep)
        order = np.random.default_rng(self.seed).permutation(len(ids))
        n_train = int(round(self.split[0] * len(ids)))
        n_val = int(round(self.split[1] * len(ids)))
        parts = {"train": ids[order[:n_train]], "val": ids[order[n_train:n_train + n_val]],
                 "test": ids[order[n_train + n_val:]]}
        for s in ("train", "test"):
            if len(parts[s]) == 0:
                raise ValueError(f"{graph.city}: road_label has no {s} segment ({len(ids)} kept)")
        parts = {s: np.sort(v) for s, v in parts.items()}
        return SegmentTaskData(parts, {s: labels[v] for s, v in parts.items()}, qc)

    def input_graph(self, graph):
        """The graph the model may see: ``class_*`` attribute columns set to 0 (the label removed)."""
        cols = self._class_columns(graph)
        attributes = graph.attributes.clone()
        attributes[:, cols] = 0.0
        return replace(graph, attributes=attributes)

    def score(self, embeddings: np.ndarray, data: SegmentTaskData, seed: int) -> dict[str, float]:
        """Fit the logistic-regression probe on the train segments, score the test segments.

        Args:
            embeddings: ``(N, d)`` segment representations. data: :meth:`prepare` output.
            seed: random state of the probe.

        Returns:
            ``{"Micro-F1", "Macro-F1"}``.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.asarray(embeddings, dtype=np.float64)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        probe.fit(x[data.segments["train"]], data.labels["train"])
        scores = np.full((len(data.segments["test"]), len(ROAD_LABELS)), -np.inf)
        scores[:, probe.classes_] = probe.predict_proba(x[data.segments["test"]])
        return self.metrics(data.labels["test"], scores)

    def metrics(self, y_true, outputs) -> dict[str, float]:
        """Micro-F1 and Macro-F1 of ``(n, 4)`` class scores."""
        from trajzoo.metrics import classification_metrics
        m = classification_metrics(y_true, outputs, ks=())
        return {k: m[k] for k in self.metric_names}


def segment_embeddings(model, graph, device) -> np.ndarray | None:
    """``(N, d)`` float32 segment representations of ``model`` (``model.segment_embeddings(graph)``)
    in eval mode, or None when the model has none (e.g. an ablation without a road encoder)."""
    import torch
    fn = getattr(model, "segment_embeddings", None)
    if fn is None:
        return None
    model.eval()
    with torch.no_grad():
        out = fn(graph.to(device))
    return None if out is None else out.float().cpu().numpy()
