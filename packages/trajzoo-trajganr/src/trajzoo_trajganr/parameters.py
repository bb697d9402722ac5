"""Hyper-parameters and schedules of TrajGANR, validated (:class:`trajzoo.config.ConfigClass`).

Source: TrajGANR appendix A.1.2 (shared projection dimension, location embedding dimension,
Space2Vec min/max scale and number of scales, Transformer layers/heads/FFN, window size, queue
size, two-layer MLP head); the paper's values are not in the text we have, so the defaults are
CPU-sized. Coordinates are normalised to [-1, 1] within the study area, so the Space2Vec scales
are in those normalised units (1 unit = half the bounding box's width).
"""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.config import ConfigClass, check_divisible, check_ordered, ranged

#: Modality combinations of the head (paper Table 4): location, trajectory, street-view image.
MODALITIES = ("loc", "traj", "loc+traj", "img", "img+loc", "img+loc+traj")


@dataclass
class TrajGANRConfig(ConfigClass):
    """Hyper-parameters of the TrajGANR model.

    Attributes:
        d_model: shared projection dimension d of every embedding (location, trajectory, image)
            and of the Transformer tokens.
        layers, heads, ffn_dim, dropout: the trajectory Transformer (eq. 4).
        min_scale, max_scale: Space2Vec's smallest / largest scale lambda_min, lambda_max in
            normalised coordinates ([-1, 1] over the bounding box).
        num_scales: Space2Vec's number of scales S.
        time2vec_dim: Time2Vec size k+1 per time input (eq. 3).
        window: fixed trajectory window W (appendix A.1.2): longer trajectories are randomly
            down-sampled to W fixes, shorter ones zero-padded.
        query_time: ``synthetic`` (interpolated timestamp, A.2.1) or ``masked`` (learned, A.2.2).
        alignment: ``fine`` (localized trajectory embedding at the query, the paper's model),
            ``segment`` (waypoint states mean-pooled on the location's stretch of road), or
            ``none`` (no alignment objective: the encoders keep their random initialisation).
        modalities: which embeddings the task head concatenates (Table 4).
        baseline: ``none`` (TrajGANR), ``geoclip`` (GeoCLIP's pretrained location encoder) or
            ``foundation`` (another zoo model's point representations mean-pooled on the
            location's stretch of road).
        foundation_model: the zoo model of the ``foundation`` baseline (read through the registry).
        temperature: tau of eq. 6.
        queue_size: entries of the location-embedding queue (negatives).
        random_locations: uniformly random locations added to the queue per step.
        momentum: EMA momentum of the key location encoder that fills the queue (MoCo).
        max_trips_per_location: K, trajectories aggregated per task location (eq. 8).
        agg_heads: heads of the aggregator's self-attention (eq. 9).
        head_hidden: hidden width of the two-layer MLP head (eq. 10).
        image_backbone: timm model name of the street-view encoder (``tiny`` = the small
            convolutional encoder used in tests and without timm).
        image_size: side in pixels the images are resized to.

    Raises:
        ValueError: a value of the wrong type or out of range, naming it; unknown keys.
    """

    d_model: int = ranged(64, ge=2)
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    dropout: float = ranged(0.0, ge=0, lt=1)
    min_scale: float = ranged(0.002, gt=0)
    max_scale: float = ranged(2.0, gt=0)
    num_scales: int = ranged(16, ge=1)
    time2vec_dim: int = ranged(16, ge=2)
    window: int = ranged(64, ge=2)
    query_time: str = ranged("synthetic", choices=("synthetic", "masked"))
    alignment: str = ranged("fine", choices=("fine", "segment", "none"))
    modalities: str = ranged("loc+traj", choices=MODALITIES)
    baseline: str = ranged("none", choices=("none", "geoclip", "foundation"))
    foundation_model: str = "transfertraj"
    temperature: float = ranged(0.07, gt=0)
    queue_size: int = ranged(4096, ge=1)
    random_locations: int = ranged(32, ge=0)
    momentum: float = ranged(0.99, ge=0, lt=1)
    max_trips_per_location: int = ranged(16, ge=1)
    agg_heads: int = ranged(4, ge=1)
    head_hidden: int = ranged(64, ge=1)
    image_backbone: str = "vit_small_patch16_224"
    image_size: int = ranged(224, ge=8)

    def check(self) -> None:
        """heads divide d_model, agg_heads divide d_model, min_scale <= max_scale."""
        check_divisible(self, "d_model", "heads")
        check_divisible(self, "d_model", "agg_heads")
        check_ordered(self, "min_scale", "max_scale")

    @property
    def uses(self) -> set[str]:
        """The modalities of the head as a set (``{"loc", "traj"}``)."""
        return set(self.modalities.split("+"))


@dataclass(frozen=True)
class PretrainConfig(ConfigClass):
    """Pretraining schedule (eqs. 6-7).

    Attributes:
        epochs: passes over the train trajectories (one query location each per pass).
        batch_size: (trajectory, location) samples per step.
        lr, weight_decay: AdamW. grad_clip: max gradient norm (0 = none).
        positives_per_location: samples per drawn location in a batch (> 1: several
            trajectories passing the same location are positives of each other's location).
        max_trips: at most this many train trajectories (seeded subset; None = all).
        max_steps_per_epoch: cap of steps per epoch (None = full pass).
    """

    epochs: int = ranged(3, ge=0)
    batch_size: int = ranged(64, ge=2)
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(1e-4, ge=0)
    grad_clip: float = ranged(1.0, ge=0)
    positives_per_location: int = ranged(2, ge=1)
    max_trips: int | None = ranged(None, ge=1)
    max_steps_per_epoch: int | None = ranged(None, ge=1)
