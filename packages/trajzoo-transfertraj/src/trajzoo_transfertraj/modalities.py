"""Point modality extraction: four d-dimensional tokens per GPS point.

Source: TransferTraj paper, section "Point Modality Extraction". Each point i of a trajectory has
four modalities:

* spatial: ``(x_i, y_i)`` metres relative to the trajectory's first point (``PointBatch.xy``),
  divided by ``spatial_scale_m`` (km by default) and embedded linearly;
* temporal: elapsed minutes ``t_i`` (divided by ``time_scale_min``), the time of day as
  ``(sin, cos)(2 pi minute_of_day / 1440)`` embedded linearly, plus a day-of-week embedding;
* POI: the paper embeds the names/descriptions of nearby POIs with a commercial text-embedding
  API, which is not available here. Instead: a learned embedding of the most frequent OSM POI
  category within the radius (``poi_category``, 0 = none within the radius) plus a linear
  embedding of ``log1p(POI count)`` (``context[..., 0]``);
* road: likewise, instead of text embeddings of road names: learned embeddings of the nearest
  road segment's OSM class, lanes and max-speed bucket plus a linear embedding of the road length
  within the radius in km (``context[..., 1]``).

A city without POI data (``has_context[..., 0]`` False, e.g. San Francisco) or without a road
network (``has_context[..., 1]`` False, e.g. Chengdu) gets a learned "missing" token for that
modality instead. A hidden spatial (temporal) modality, i.e. ``spatial_mask`` (``temporal_mask``)
True, is replaced by a learned mask token: the hidden values are never read. The POI and road
context of a point are computed at its true location, so where its position is hidden
(:attr:`~trajzoo.data.points.PointBatch.context_mask`) they are hidden too and replaced by the
learned "masked context" tokens ``poi_mask_token`` / ``road_mask_token`` (whether or not the city
has such data, so these tokens are trained in every city).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trajzoo.data.points import MAX_LANES, MAXSPEED_BUCKETS_KMH, POI_CATEGORIES, ROAD_CLASSES, PointBatch

#: Order of the modality tokens along dimension 2 of :meth:`PointModalityExtractor.forward`.
MODALITIES: tuple[str, ...] = ("spatial", "temporal", "poi", "road")


class PointModalityExtractor(nn.Module):
    """Embed the four modalities of every point (TransferTraj "point modality extraction").

    Args:
        d_model: token size d.
        spatial_scale_m: metres per input unit of x, y (1000 = kilometres).
        time_scale_min: minutes per input unit of the elapsed time.

    Attributes:
        spatial_mask_token, temporal_mask_token: ``(d,)`` learned tokens of hidden modalities.
        poi_missing, road_missing: ``(d,)`` learned tokens of a city without POI / road data.
        poi_mask_token, road_mask_token: ``(d,)`` learned "masked context" tokens of points whose
            position (hence context) is hidden.
    """

    def __init__(self, d_model: int, spatial_scale_m: float = 1000.0, time_scale_min: float = 10.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.spatial_scale_m = float(spatial_scale_m)
        self.time_scale_min = float(time_scale_min)
        self.spatial = nn.Linear(2, d_model)
        self.temporal = nn.Linear(3, d_model)
        self.day_of_week = nn.Embedding(7, d_model)
        self.poi_category = nn.Embedding(len(POI_CATEGORIES) + 1, d_model)
        self.poi_density = nn.Linear(1, d_model)
        self.road_class = nn.Embedding(len(ROAD_CLASSES) + 1, d_model)
        self.road_lanes = nn.Embedding(MAX_LANES + 1, d_model)
        self.road_maxspeed = nn.Embedding(len(MAXSPEED_BUCKETS_KMH) + 1, d_model)
        self.road_density = nn.Linear(1, d_model)
        self.spatial_mask_token = nn.Parameter(torch.empty(d_model))
        self.temporal_mask_token = nn.Parameter(torch.empty(d_model))
        self.poi_missing = nn.Parameter(torch.empty(d_model))
        self.road_missing = nn.Parameter(torch.empty(d_model))
        self.poi_mask_token = nn.Parameter(torch.empty(d_model))
        self.road_mask_token = nn.Parameter(torch.empty(d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default PyTorch initialisation of the layers; N(0, 0.02^2)-ish small embeddings and tokens."""
        for m in (self.spatial, self.temporal, self.poi_density, self.road_density):
            m.reset_parameters()
        for emb in (self.day_of_week, self.poi_category, self.road_class, self.road_lanes, self.road_maxspeed):
            nn.init.normal_(emb.weight, std=0.1)
        for p in (self.spatial_mask_token, self.temporal_mask_token, self.poi_missing, self.road_missing,
                  self.poi_mask_token, self.road_mask_token):
            nn.init.normal_(p, std=0.1)

    def forward(self, batch: PointBatch) -> Tensor:
        """Modality tokens of every point.

        Args:
            batch: a :class:`PointBatch` of B trajectories and L points. Values under
                ``spatial_mask`` / ``temporal_mask`` are not read (replaced by mask tokens); nor
                is the context under ``context_mask`` (the masked-context tokens).

        Returns:
            ``(B, L, 4, d)`` tokens in the order of :data:`MODALITIES`; zero at padding.

        Raises:
            ValueError: a category id is outside its vocabulary.
        """
        _check_ids(batch)
        s_hidden = batch.spatial_mask.unsqueeze(-1)
        t_hidden = batch.temporal_mask.unsqueeze(-1)
        # spatial: x, y in units of spatial_scale_m (hidden values zeroed before the layer too)
        xy = batch.xy.masked_fill(s_hidden, 0.0).float() / self.spatial_scale_m
        spatial = torch.where(s_hidden, self.spatial_mask_token, self.spatial(xy))
        # temporal: elapsed time, time of day on the unit circle, day of week
        angle = batch.minute_of_day.float() * (2.0 * math.pi / 1440.0)
        tfeat = torch.stack([batch.t_minutes.float() / self.time_scale_min, torch.sin(angle), torch.cos(angle)], -1)
        tfeat = tfeat.masked_fill(t_hidden, 0.0)
        temporal = self.temporal(tfeat) + self.day_of_week(batch.day_of_week.masked_fill(batch.temporal_mask, 0))
        temporal = torch.where(t_hidden, self.temporal_mask_token, temporal)
        # POI and road context; the learned "missing" tokens where the city has no such data; the
        # learned "masked context" tokens where the position is hidden (values zeroed first)
        c_hidden = batch.context_mask
        c_hidden1 = c_hidden.unsqueeze(-1)
        ctx = batch.context.float().masked_fill(c_hidden1, 0.0)

        def ids(t):
            return t.masked_fill(c_hidden, 0)

        poi = self.poi_category(ids(batch.poi_category)) + self.poi_density(ctx[..., 0:1])
        poi = torch.where(batch.has_context[..., 0:1], poi, self.poi_missing)
        poi = torch.where(c_hidden1, self.poi_mask_token, poi)
        road = (self.road_class(ids(batch.road_class)) + self.road_lanes(ids(batch.road_lanes))
                + self.road_maxspeed(ids(batch.road_maxspeed)) + self.road_density(ctx[..., 1:2]))
        road = torch.where(batch.has_context[..., 1:2], road, self.road_missing)
        road = torch.where(c_hidden1, self.road_mask_token, road)
        tokens = torch.stack([spatial, temporal, poi, road], dim=2)  # (B, L, 4, d)
        return tokens.masked_fill(batch.padding_mask[..., None, None], 0.0)


def _check_ids(batch: PointBatch) -> None:
    limits = {"road_class": len(ROAD_CLASSES), "road_lanes": MAX_LANES,
              "road_maxspeed": len(MAXSPEED_BUCKETS_KMH), "poi_category": len(POI_CATEGORIES),
              "day_of_week": 6}
    for name, hi in limits.items():
        v = getattr(batch, name)
        if v.numel() and (int(v.min()) < 0 or int(v.max()) > hi):
            raise ValueError(f"batch.{name} has ids outside [0, {hi}] (city {batch.city})")
