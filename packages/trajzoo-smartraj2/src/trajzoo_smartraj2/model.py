"""SMARTraj2 configuration and the full model (eqs. 1-15 assembled).

Per batch of one city k: the three view encoders (eqs. 1-3) give h^{p|r}, h^{p|g}, h_r, h_g; the
city's personalised gates (eqs. 7-12) turn h_r into h^traj_r; the concatenation
``[h^{p|r} || h^{p|g} || h^traj_r || h_g]`` feeds the shared extractor V and the city's M_k
(eqs. 4-5), and the trajectory representation is ``H = H^i + H^s_k`` (with only one of them
kept by an ablation, that one; with neither, the mean of the view vectors). A view removed by an
ablation contributes a zero vector and no loss term.

The model keeps, besides its parameters, each city's three-view records
(:class:`trajzoo.data.views.CityViews`, attached with :meth:`SMARTraj2.attach_views`), so that
``embed(route_batch, graph)`` can serve every road task: the GPS and grid views of the batch's
trips are built from the records, hiding what the task's route view hides
(:func:`trajzoo.data.views.collate_views`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.data.views import CITY_FEATURES, SEMANTIC_DIM, CityViews, ViewBatch, collate_views
from trajzoo.nn.span_mask import fixed_span_mask

from .config import SMARTraj2Config  # noqa: F401 (re-exported: the config class lives in a torch-free module)
from .disentanglement import FeatureDisentanglement, difference_loss
from .gating import PersonalisedGate
from .gps_encoder import HierarchicalGPSEncoder
from .grid_encoder import GridEncoder
from .objectives import masked_fix_loss, masked_token_loss, pair_loss, total_loss
from .route_encoder import RouteEncoder

#: F^traj: POI shares and has-POI flag of the first and of the last visible grid cell.
TRAJ_FEATURES = 2 * (SEMANTIC_DIM + 1)


def city_spec(name: str, graph: RoadGraph, views: CityViews, features: np.ndarray) -> dict:
    """What a city contributes to the model's shape: name, N, F_u, number of cells, F^city."""
    return {"name": name, "num_segments": int(graph.num_segments), "attribute_dim": int(graph.attributes.shape[1]),
            "n_cells": int(views.n_cells), "city_features": [float(v) for v in features]}


class SMARTraj2(nn.Module):
    """The SMARTraj2 model over the cities of ``cities`` (city-specific M_k, gates, cell tables).

    Args:
        cities: :func:`city_spec` dicts (all with the same F_u). config: hyper-parameters.

    Raises:
        ValueError: no city, or cities with different road attribute sizes.
    """

    def __init__(self, cities: list[dict], config: SMARTraj2Config | None = None):
        super().__init__()
        if not cities:
            raise ValueError("SMARTraj2 needs at least one city")
        dims = {c["attribute_dim"] for c in cities}
        if len(dims) != 1:
            raise ValueError(f"cities have different road attribute sizes {sorted(dims)}")
        self.config = cfg = config or SMARTraj2Config()
        self.cities = [dict(c) for c in cities]
        names = [c["name"] for c in cities]
        d = self.d_model = cfg.d_model
        self.route = RouteEncoder(dims.pop(), d, cfg.gat_layers, cfg.layers, cfg.heads, cfg.ffn_dim, cfg.dropout)
        self.gps = HierarchicalGPSEncoder(d, cfg.gps_layers, cfg.heads, cfg.ffn_dim, cfg.dropout)
        self.gps_head = nn.Linear(d, 2)
        self.grid = GridEncoder({c["name"]: c["n_cells"] for c in cities}, d, cfg.layers, cfg.heads, cfg.ffn_dim,
                                cfg.dropout)
        self.disentangle = FeatureDisentanglement(names, 4 * d, d, cfg.use_invariant, cfg.use_specific)
        self.gates = nn.ModuleDict({n: PersonalisedGate(d, len(CITY_FEATURES), TRAJ_FEATURES, cfg.gate_hidden,
                                                        cfg.gate_embed, cfg.gamma) for n in names}) \
            if cfg.use_gating else None
        for c in cities:  # F^city in log1p of fixed units, a buffer (saved with the weights)
            self.register_buffer(f"city_features_{c['name']}",
                                 torch.log1p(torch.tensor(c["city_features"], dtype=torch.float32).clamp_min(0)))
        self._views: dict[str, CityViews] = {}

    # --- data the model reads besides its parameters -------------------------------------------
    def attach_views(self, views: CityViews) -> None:
        """Keep a city's three-view records (needed by :meth:`embed` for that city)."""
        self._views[views.city] = views

    def eligible_trip_ids(self, city: str) -> set[str]:
        """Trip ids that pass the view filters (the trips road tasks are scored on).

        Raises:
            KeyError: no views attached for ``city``.
        """
        return set(self._views[city].records)

    def views_of(self, batch: TrajectoryBatch, graph: RoadGraph) -> ViewBatch:
        """The :class:`ViewBatch` of a route batch of ``graph.city`` (on the batch's device).

        Raises:
            KeyError: no views attached for the city.
        """
        if graph.city not in self._views:
            raise KeyError(f"SMARTraj2: no views attached for city {graph.city!r} (attach_views)")
        return collate_views(batch, self._views[graph.city]).to(batch.roads.device)

    # --- encoders ------------------------------------------------------------------------------
    def traj_features(self, vb: ViewBatch) -> Tensor:
        """F^traj ``(B, 28)``: shares and has-POI of the first and last visible cells (0 if none)."""
        n = (~vb.cell_padding).sum(dim=1)
        rows = torch.arange(vb.cells.shape[0], device=vb.cells.device)
        last = (n - 1).clamp_min(0)
        has = (n > 0).float()[:, None]
        first_f = torch.cat([vb.semantics[:, 0], vb.cell_has_poi[:, 0, None].float()], dim=-1) * has
        last_f = torch.cat([vb.semantics[rows, last], vb.cell_has_poi[rows, last, None].float()], dim=-1) * has
        return torch.cat([first_f, last_f], dim=-1)

    def encode(self, vb: ViewBatch, graph: RoadGraph, masks: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Every intermediate of one batch: view vectors, gates, H^i, H^s, H, token states.

        Args:
            vb: views of one city (``vb.city == graph.city``). graph: the city's road graph.
            masks: optional ``{"route": (B, L), "gps": (B, P), "grid": (B, G)}`` bool masks.

        Returns:
            dict with ``h_pr``, ``h_pg``, ``h_r`` (before gating), ``h_r_gated``, ``h_g``, ``H``
            (all ``(B, d)``), ``H_i``/``H_s`` (or absent), and the states the objectives read.

        Raises:
            ValueError: the views and the graph are of different cities.
        """
        if vb.city != graph.city:
            raise ValueError(f"views of {vb.city!r} with the road graph of {graph.city!r}")
        cfg, masks = self.config, masks or {}
        b, d = vb.cells.shape[0], self.d_model
        zeros = vb.gps.new_zeros(b, d)
        out: dict[str, Tensor] = {}
        if cfg.use_gps:
            out["h_pr"], out["fix_states"] = self.gps(vb.gps, vb.gps_padding, vb.gps_position, masks.get("gps"))
            out["h_pg"], _ = self.gps(vb.gps, vb.gps_padding, vb.gps_visit, masks.get("gps"))
        else:
            out["h_pr"] = out["h_pg"] = zeros
        if cfg.use_route:
            out["route_states"], out["z"] = self.route(vb.route, graph, masks.get("route"))
            out["h_r"] = self.route.pool(out["route_states"], vb.route)
        else:
            out["h_r"] = zeros
        if cfg.use_grid:
            out["grid_states"] = self.grid(vb.cells, vb.cell_padding, vb.semantics, vb.cell_has_poi, vb.city,
                                           masks.get("grid"))
            out["h_g"] = self.grid.pool(out["grid_states"], vb.cell_padding)
        else:
            out["h_g"] = zeros
        h_r = out["h_r"]
        if self.gates is not None and cfg.use_route:
            h_r, out["delta_city"], out["delta_traj"] = self.gates[vb.city](
                out["h_r"], getattr(self, f"city_features_{vb.city}"), self.traj_features(vb))
        out["h_r_gated"] = h_r
        x = torch.cat([out["h_pr"], out["h_pg"], h_r, out["h_g"]], dim=-1)
        h_i, h_s = self.disentangle(x, vb.city)
        if h_i is None and h_s is None:
            parts = ([(out["h_pr"] + out["h_pg"]) / 2] if cfg.use_gps else []) + ([h_r] if cfg.use_route else []) \
                + ([out["h_g"]] if cfg.use_grid else [])
            out["H"] = torch.stack(parts).mean(dim=0)
        else:
            out["H"] = (h_i if h_i is not None else 0) + (h_s if h_s is not None else 0)
        if h_i is not None:
            out["H_i"] = h_i
        if h_s is not None:
            out["H_s"] = h_s
        return out

    def embed(self, batch: TrajectoryBatch, graph: RoadGraph) -> Tensor:
        """Trajectory representations H ``(B, d)`` of a route batch (its GPS and grid views from
        the attached records, hiding what the route batch hides)."""
        return self.encode(self.views_of(batch, graph), graph)["H"]

    def segment_embeddings(self, graph: RoadGraph) -> Tensor | None:
        """Road-segment representations z_v ``(N, d)`` of the route encoder's GAT (eq. 2), or None
        for the ablation without the route view."""
        return self.route.road_embeddings(graph) if self.config.use_route else None

    # --- pretraining objective -----------------------------------------------------------------
    def masks(self, vb: ViewBatch, generator: torch.Generator) -> dict[str, Tensor]:
        """Appendix B.1.4 masks per view (spans of ``mask_span`` covering ``mask_ratio``)."""
        cfg = self.config
        return {"route": fixed_span_mask(vb.route.padding_mask, cfg.mask_ratio, cfg.mask_span, generator),
                "gps": fixed_span_mask(vb.gps_padding, cfg.mask_ratio, cfg.mask_span, generator),
                "grid": fixed_span_mask(vb.cell_padding, cfg.mask_ratio, cfg.mask_span, generator)}

    def loss(self, vb: ViewBatch, graph: RoadGraph, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """Eq. 15 on one batch of one city.

        Returns:
            ``(L_total, {"l_diff", "l_mlm", "l_pair"})``.
        """
        cfg = self.config
        masks = self.masks(vb, generator)
        out = self.encode(vb, graph, masks)
        mlm = []
        if cfg.use_route:
            mlm.append(masked_token_loss(out["route_states"], vb.route.roads, masks["route"], out["z"]))
        if cfg.use_grid:
            mlm.append(masked_token_loss(out["grid_states"], vb.cells, masks["grid"],
                                         self.grid.cell_tables[vb.city].weight))
        if cfg.use_gps:
            fix_mask = masks["gps"] & (vb.gps_position >= 0)
            mlm.append(masked_fix_loss(self.gps_head(out["fix_states"]), vb.gps[..., :2], fix_mask))
        l_mlm = torch.stack(mlm).mean()
        views = ([(out["h_pr"] + out["h_pg"]) / 2] if cfg.use_gps else []) + ([out["h_r"]] if cfg.use_route else []) \
            + ([out["h_g"]] if cfg.use_grid else [])
        l_pair = pair_loss(views, cfg.temperature)
        if cfg.use_diff_loss and "H_i" in out and "H_s" in out:
            l_diff = difference_loss(out["H_i"], out["H_s"])
        else:
            l_diff = l_mlm.new_zeros(())
        loss = total_loss(l_diff, l_mlm, l_pair, cfg.w_diff, cfg.w_mlm, cfg.w_pair)
        return loss, {"l_diff": float(l_diff.detach()), "l_mlm": float(l_mlm.detach()),
                      "l_pair": float(l_pair.detach())}
