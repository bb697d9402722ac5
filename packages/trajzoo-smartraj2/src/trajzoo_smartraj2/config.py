"""SMARTraj2's config classes (hyper-parameters and pretraining schedule), torch-free.

Building the Snakemake DAG checks every model's config section with these classes
(:meth:`trajzoo_smartraj2.plugin.SMARTraj2Plugin.check_config`), so they live apart from the
torch modules; :mod:`trajzoo_smartraj2.model` and :mod:`trajzoo_smartraj2.pretraining`
re-export them.
"""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.config import ConfigClass, ranged
from trajzoo.data.view_filters import ViewFilters


@dataclass
class SMARTraj2Config(ConfigClass):
    """Hyper-parameters of SMARTraj2 (``models.smartraj2.hparams``).

    Attributes:
        d_model: d of every view encoder and of H. gat_layers: route GAT layers. layers: route
            and grid Transformer layers. gps_layers: level-2 GPS Transformer layers. heads,
            ffn_dim, dropout: Transformer sizes.
        gate_hidden, gate_embed: widths of h'/h'' and of E(F) (eqs. 7, 10). gamma: gate scale (eq. 8, 2).
        mask_ratio, mask_span: masking of appendix B.1.4 (20 %, spans of 2).
        temperature: tau of L_pair. w_diff, w_mlm, w_pair: w1, w2, w3 of eq. 15.
        use_diff_loss, use_gating, use_gps, use_route, use_grid, use_invariant, use_specific: False =
            the ablations of Table 2.
        min_segments ... max_points: the trip filters (:class:`trajzoo.data.views.ViewFilters`).

    Raises:
        ValueError: a value out of range, d odd or not divisible by heads, no view left.
    """

    d_model: int = ranged(64, ge=2)
    gat_layers: int = ranged(2, ge=1)
    layers: int = ranged(2, ge=1)
    gps_layers: int = ranged(1, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    dropout: float = ranged(0.0, ge=0, lt=1)
    gate_hidden: int = ranged(64, ge=1)
    gate_embed: int = ranged(16, ge=1)
    gamma: float = ranged(2.0, gt=0)
    mask_ratio: float = ranged(0.2, gt=0, lt=1)
    mask_span: int = ranged(2, ge=1)
    temperature: float = ranged(0.1, gt=0)
    w_diff: float = ranged(0.01, ge=0)
    w_mlm: float = ranged(1.0, ge=0)
    w_pair: float = ranged(1.0, ge=0)
    use_diff_loss: bool = True
    use_gating: bool = True
    use_gps: bool = True
    use_route: bool = True
    use_grid: bool = True
    use_invariant: bool = True
    use_specific: bool = True
    min_segments: int = ranged(10, ge=1)
    max_segments: int = ranged(100, ge=1)
    min_cells: int = ranged(10, ge=1)
    max_cells: int = ranged(100, ge=1)
    min_points: int = ranged(10, ge=1)
    max_points: int = ranged(256, ge=1)

    def check(self) -> None:
        """d even and divisible by heads; at least one view; filter bounds ordered."""
        if self.d_model % 2 or self.d_model % self.heads:
            raise ValueError(f"d_model must be even and divisible by heads, got {self.d_model}, {self.heads}")
        if not (self.use_gps or self.use_route or self.use_grid):
            raise ValueError("use_gps, use_route and use_grid are all false: no view left")
        self.filters  # noqa: B018  (raises on unordered bounds)

    @property
    def filters(self) -> ViewFilters:
        """The trip filters."""
        return ViewFilters(self.min_segments, self.max_segments, self.min_cells, self.max_cells, self.min_points,
                           self.max_points)


@dataclass
class PretrainSchedule(ConfigClass):
    """``models.smartraj2.pretrain``.

    Attributes:
        epochs: passes over the (capped) train trips of every city (0 = the initialisation).
        batch_size: trips per step (the paper: 64). lr: AdamW peak learning rate (paper 1e-4).
        weight_decay: AdamW weight decay. warmup_epochs: linear warm-up epochs (paper 5).
        min_lr_ratio: floor of the cosine as a fraction of lr. grad_clip: max gradient norm (0 = none).
        max_trips_per_city: seeded cap on each city's train trips (None = all).
        max_val_trips: val trips per city for the logged validation loss.

    Raises:
        ValueError: a value out of range; unknown keys (``from_dict``).
    """

    epochs: int = ranged(3, ge=0)
    batch_size: int = ranged(64, ge=2)
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.01, ge=0)
    warmup_epochs: int = ranged(1, ge=0)
    min_lr_ratio: float = ranged(0.0, ge=0, le=1)
    grad_clip: float = ranged(1.0, ge=0)
    max_trips_per_city: int | None = ranged(2000, ge=1)
    max_val_trips: int = ranged(256, ge=1)
