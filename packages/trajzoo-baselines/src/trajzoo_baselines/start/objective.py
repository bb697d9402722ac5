"""START's self-supervised pretraining objective (Jiang et al., ICDE 2023, Section
"Self-supervised Pre-training"):

1. Span-masked trajectory recovery: non-contiguous spans of each trajectory (ratio
   ``mask_ratio``, geometric span lengths of mean ``mean_span_length``;
   :func:`trajzoo.nn.span_mask.span_mask`, which never masks position 0 or padding) get the
   [MASK] road vector and hidden times; a linear head predicts the masked road ids among the N
   segments (cross-entropy, L_mask).
2. Trajectory contrastive learning: two views of every trajectory, view 1 by trajectory
   trimming and view 2 by temporal shifting (:mod:`.augmentation`), are encoded into their pooled
   [CLS] representations (:meth:`.model.STARTEncoder.encode_trajectory`);
   NT-Xent (:func:`trajzoo.nn.contrastive.nt_xent`) with temperature tau pulls each trajectory's two views together and pushes the other
   2B - 2 views of the batch away (L_con).

Total: L = lambda * L_mask + (1 - lambda) * L_con (lambda = ``mask_weight``).

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): masks and views are drawn
for the whole global batch and each process computes its share of the global batch's loss, the
contrastive term against the negatives of every process, so K processes train as one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch, hide_times
from trajzoo.nn.batch_checks import validate_road_batch
from trajzoo.nn.contrastive import nt_xent, nt_xent_share
from trajzoo.nn.span_mask import span_mask
from trajzoo.training.distributed import global_batch_of

from .augmentation import road_mean_travel_seconds, shift_times, trim_trajectories
from .config import STARTConfig
from .model import STARTEncoder


class STARTPretrainer(nn.Module):
    """:class:`STARTEncoder` plus the masked-road recovery head.

    Attributes:
        encoder: the START encoder.
        road_head: ``Linear(d, N)``, road-id logits at masked positions.
        config: hyper-parameters.
        road_mean_seconds: ``(N,)`` float64 buffer, mean travel time of each road over the TRAIN
            trips (0 = unknown), the mean temporal shifting moves toward (:meth:`fit_to_trips`).

    Args:
        num_segments: N. attribute_dim: F_u. config: hyper-parameters (defaults if None).
    """

    def __init__(self, num_segments: int, attribute_dim: int, config: STARTConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else STARTConfig()
        self.encoder = STARTEncoder(num_segments, attribute_dim, self.config)
        self.road_head = nn.Linear(self.config.d_model, num_segments)
        self.num_segments = num_segments
        self.register_buffer("road_mean_seconds", torch.zeros(num_segments, dtype=torch.float64))

    def fit_to_trips(self, rows: list[dict]) -> None:
        """Statistics of the TRAIN trips (rows with ``roads`` and ``seconds``): the per-road mean
        travel times of temporal shifting and the out-counts of TPE-GAT's in-normalised transfer
        probabilities (:meth:`.road_encoder.TPEGATRoadEncoder.fit_transfer_counts`)."""
        roads = [r["roads"] for r in rows]
        device = self.road_head.weight.device
        self.road_mean_seconds = road_mean_travel_seconds(roads, [r["seconds"] for r in rows],
                                                          self.num_segments).to(device)
        self.encoder.road_encoder.fit_transfer_counts(roads, self.num_segments)

    def views(self, batch: TrajectoryBatch, generator: torch.Generator) -> tuple[TrajectoryBatch, TrajectoryBatch]:
        """The two contrastive views: (trimmed, time-shifted)."""
        cfg = self.config
        return (trim_trajectories(batch, (cfg.trim_ratio_min, cfg.trim_ratio_max), generator),
                shift_times(batch, cfg.shift_fraction, (cfg.shift_ratio_min, cfg.shift_ratio_max), generator,
                            self.road_mean_seconds))

    def loss(self, batch: TrajectoryBatch, graph: RoadGraph, generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        """START's total pretraining loss of one batch.

        Args:
            batch: ``(B, L)`` trajectories with their true roads and times.
            graph: the city's road graph.
            generator: CPU generator for the span mask and both augmentations.

        Returns:
            ``(loss, stats)``: ``mask_weight * mask_ce + (1 - mask_weight) * contrastive``; the
            mask term is 0 (graph-connected) when no position is masked (all trajectories
            shorter than 2). ``stats``: ``loss``, ``mask_ce``, ``contrastive`` (nats),
            ``road_acc``, ``n_masked``.

        Raises:
            ValueError: as :meth:`STARTEncoder.forward`.
        """
        cfg = self.config
        full = global_batch_of(batch)
        if full is not None:  # data parallelism: draw for the whole global batch, keep this share
            return self._share_loss(batch, full, graph, generator)
        validate_road_batch(batch, self.num_segments)  # before the views index per-road statistics
        road_mask = span_mask(batch.padding_mask, cfg.mask_ratio, cfg.mean_span_length, generator)
        view1, view2 = self.views(batch, generator)
        return self._terms(batch, road_mask, view1, view2, graph)

    def _terms(self, batch: TrajectoryBatch, road_mask: Tensor, view1, view2, graph: RoadGraph,
               total_masked: int | None = None) -> tuple[Tensor, dict[str, float]]:
        """The loss of ``batch`` with its drawn span mask ``(B, L)`` and two views: the body of
        :meth:`loss` (``total_masked`` None: mean cross-entropy over the masked positions,
        :func:`nt_xent`) and of :meth:`_share_loss` (``total_masked`` = the global batch's M:
        summed cross-entropy / M, :func:`nt_xent_share`)."""
        cfg = self.config
        # (N, d), exact at every road of the batch and of both views, shared by the three passes
        roads = self.encoder.road_embeddings(graph, self.encoder.batch_segments(batch, view1, view2))
        z = self.encoder.encode(roads, hide_times(batch, road_mask), road_mask)  # (B, L, d)
        n_masked = int(road_mask.sum())
        if n_masked:
            logits = self.road_head(z[road_mask])
            targets = batch.roads[road_mask]
            if total_masked is None:
                mask_ce = F.cross_entropy(logits, targets)
            else:
                mask_ce = F.cross_entropy(logits, targets, reduction="sum") / total_masked
            acc = float((logits.argmax(dim=-1) == targets).float().mean())
        else:
            mask_ce, acc = z.sum() * 0.0, 0.0
        z1 = self.encoder.encode_trajectory(roads, view1)
        z2 = self.encoder.encode_trajectory(roads, view2)
        contrastive = (nt_xent if total_masked is None else nt_xent_share)(z1, z2, cfg.temperature)
        total = cfg.mask_weight * mask_ce + (1.0 - cfg.mask_weight) * contrastive
        stats = {"loss": float(total.detach()), "mask_ce": float(mask_ce.detach()),
                 "contrastive": float(contrastive.detach()), "road_acc": acc, "n_masked": float(n_masked)}
        if total_masked is not None:
            stats["global_share"] = 1.0
        return total, stats

    def _share_loss(self, batch: TrajectoryBatch, full: TrajectoryBatch, graph: RoadGraph,
                    generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """This process's share of the global batch's loss under data parallelism (the
        processes' shares sum to :meth:`loss` of the whole global batch on one process).

        The span mask and both views are drawn for the whole global batch ``full`` (same draws
        and generator state as one process) and this process's rows are kept
        (:func:`trajzoo.training.distributed.local_rows`); the mask term is its masked
        positions' summed cross-entropy over the global batch's M masked positions
        (``mask_ce_r * M_r / M``), the contrastive term :func:`trajzoo.nn.contrastive.nt_xent_share`
        (negatives from every process). ``stats`` as :meth:`loss` (``mask_ce``, ``contrastive``,
        ``loss`` of this share) plus ``global_share = 1``.
        """
        from trajzoo.training.distributed import local_rows

        cfg = self.config
        device = batch.roads.device
        validate_road_batch(full, self.num_segments)
        full_mask = span_mask(full.padding_mask, cfg.mask_ratio, cfg.mean_span_length, generator)
        full1, full2 = self.views(full, generator)
        road_mask = local_rows(full_mask).to(device)
        view1, view2 = local_rows(full1).to(device), local_rows(full2).to(device)
        return self._terms(batch, road_mask, view1, view2, graph, total_masked=int(full_mask.sum()))
