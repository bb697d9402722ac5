"""The TrajGANR model: two Space2Vec location encoders (eqs. 2, 3), the trajectory encoder with
its query token (eqs. 3-5), an optional street-view projection head (eq. 1's g), the key
location encoder and queue of the pretraining (eq. 7), and the location-task interface of the
core (:class:`trajzoo.registry.LocationModel`: frozen features + eqs. 8-10 head).

Baseline rows share the model class (``baseline`` hparam): ``geoclip`` returns GeoCLIP's
pretrained location embeddings; ``foundation`` returns the per-location pooled representations
of another zoo model, computed at pretraining (:mod:`.baselines`) and stored with the model.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from .head import LocationHead
from .parameters import TrajGANRConfig
from .queue import LocationQueue
from .space2vec import LocationEncoder, normalise_xy
from .trajectory_encoder import TrajectoryEncoder
from .windows import collate_windows

#: Seed offset of the deterministic window down-sampling when features are computed.
FEATURE_SEED = 1234


def segment_radius_m(frame: dict) -> float:
    """Radius (m) of a location's stretch of road: ``delta_m + spacing_m / 2``."""
    return float(frame["delta_m"]) + float(frame.get("spacing_m") or 0) / 2


class TrajGANR(nn.Module):
    """TrajGANR (see the module docstring).

    Args:
        cfg: :class:`~trajzoo_trajganr.parameters.TrajGANRConfig`.
        image_dim: width F of the frozen street-view backbone features (None: no images).
    """

    def __init__(self, cfg: TrajGANRConfig, image_dim: int | None = None):
        super().__init__()
        self.config = cfg
        self.d_model = cfg.d_model
        self.location = LocationEncoder(cfg.d_model, cfg.min_scale, cfg.max_scale, cfg.num_scales)  # eq. 2
        self.trajectory = TrajectoryEncoder(cfg)  # eqs. 3-5 (own location encoder PE_T)
        self.key_location = copy.deepcopy(self.location)  # MoCo key encoder of the queue
        for p in self.key_location.parameters():
            p.requires_grad_(False)
        self.queue = LocationQueue(cfg.queue_size, cfg.d_model)
        self.image_dim = image_dim
        self.image_proj = nn.Sequential(nn.Linear(image_dim, cfg.d_model), nn.ReLU(),
                                        nn.Linear(cfg.d_model, cfg.d_model)) if image_dim else None  # eq. 1's g
        #: per-location features of the ``foundation`` baseline (set at pretraining)
        self.fixed_features: dict[str, Tensor] = {}

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Key encoder <- m key + (1 - m) query encoder (MoCo's momentum update)."""
        m = self.config.momentum
        for k, q in zip(self.key_location.parameters(), self.location.parameters()):
            k.mul_(m).add_(q.detach(), alpha=1 - m)

    def image_embedding(self, feats: Tensor) -> Tensor:
        """Eq. 1: ``(n, F)`` frozen backbone features -> ``(n, d)``.

        Raises:
            ValueError: the model has no image head.
        """
        if self.image_proj is None:
            raise ValueError("this TrajGANR model was built without street-view images")
        return self.image_proj(feats.float())

    def localized_or_pooled(self, batch, q_xy: Tensor, q_m: Tensor, radius_m: float) -> Tensor:
        """``(B, d)``: the localized embedding (eq. 4, ``alignment`` fine / none) or the
        segment-pooled one (``alignment: segment``)."""
        if self.config.alignment == "segment":
            return self.trajectory.segment_pooled(batch, q_m, radius_m)
        return self.trajectory.localized(batch, q_xy, q_m)

    # ---- core LocationModel interface -------------------------------------------------------
    def location_features(self, inputs, device, batch_size: int = 256) -> dict[str, Tensor]:
        """Frozen features of every location of ``inputs`` (:class:`trajzoo.locations.LocationInputs`,
        TRAIN trips only): ``"loc": (n, d)``, ``"traj": (n, K, d)`` + ``"traj_mask": (n, K)``,
        ``"img": (n, d)``, per the ``modalities`` hparam; ``baseline`` rows: ``"loc": (n, 512)``
        (GeoCLIP) or ``"traj_pooled": (n, d')``.

        Raises:
            ValueError: images asked for without image features; stored baseline features of
                another number of locations.
        """
        cfg = self.config
        n = len(inputs.table)
        if cfg.baseline == "geoclip":
            from .baselines import geoclip_embeddings
            return {"loc": geoclip_embeddings(inputs.table["lat"].to_numpy(), inputs.table["lon"].to_numpy())}
        if cfg.baseline == "foundation":
            feats = self.fixed_features.get("traj_pooled")
            if feats is None or len(feats) != n:
                raise ValueError(f"foundation baseline: stored features of {0 if feats is None else len(feats)} "
                                 f"locations, the city has {n}")
            return {"traj_pooled": feats.float()}
        self.eval().to(device)
        q_m = torch.from_numpy(inputs.table[["x", "y"]].to_numpy(np.float64).copy())
        q_xy = normalise_xy(q_m, inputs.frame["bbox_xy"])
        out = {}
        with torch.no_grad():
            if "loc" in cfg.uses:
                out["loc"] = self.location(q_xy.to(device)).cpu()
            if "img" in cfg.uses:
                if inputs.images is None:
                    raise ValueError("modalities include img, but the city has no street-view image features")
                out["img"] = self.image_embedding(torch.from_numpy(inputs.images).to(device)).cpu()
            if "traj" in cfg.uses:
                k = cfg.max_trips_per_location
                trips = inputs.trips_of(k, FEATURE_SEED)
                pairs = [(i, j, t) for i, ids in enumerate(trips) for j, t in enumerate(ids)]
                z = torch.zeros(n, k, cfg.d_model)
                mask = torch.ones(n, k, dtype=torch.bool)
                gen = torch.Generator().manual_seed(FEATURE_SEED)
                radius = segment_radius_m(inputs.frame)
                for start in range(0, len(pairs), batch_size):
                    chunk = pairs[start:start + batch_size]
                    batch = collate_windows([inputs.rows[t] for _, _, t in chunk], cfg.window, inputs.frame["bbox_xy"],
                                            gen).to(device)
                    li = torch.tensor([i for i, _, _ in chunk])
                    emb = self.localized_or_pooled(batch, q_xy[li].to(device), q_m[li].to(device), radius).cpu()
                    ji = torch.tensor([j for _, j, _ in chunk])
                    z[li, ji] = emb
                    mask[li, ji] = False
                out["traj"], out["traj_mask"] = z, mask
        return out

    def location_head(self, features: dict[str, Tensor], n_outputs: int) -> nn.Module:
        """A fresh eqs. 8-10 head for the given features (:class:`~trajzoo_trajganr.head.LocationHead`)."""
        dims = {k: int(v.shape[-1]) for k, v in features.items() if k != "traj_mask"}
        return LocationHead(dims, self.config.agg_heads, self.config.head_hidden, n_outputs)

    def embed_rows(self, rows: list[dict], frame: dict, device, batch_size: int = 256) -> Tensor:
        """``(n, d)`` trip representations: mean of the Transformer's waypoint outputs (no query
        token) over the window of each trip (deterministic down-sampling)."""
        from trajzoo.nn.pooling import mean_pool

        self.eval().to(device)
        gen = torch.Generator().manual_seed(FEATURE_SEED)
        out = []
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                b = collate_windows(rows[start:start + batch_size], self.config.window, frame["bbox_xy"], gen).to(device)
                h = self.trajectory.transformer(self.trajectory.tokens(b), src_key_padding_mask=b.padding_mask)
                out.append(mean_pool(h, b.padding_mask).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.d_model)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
