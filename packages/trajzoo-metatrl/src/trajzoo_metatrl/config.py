"""MetaTRL's config classes (hyper-parameters and pretraining schedule), torch-free.

Building the Snakemake DAG checks every model's config section with these classes
(:meth:`trajzoo_metatrl.plugin.MetaTRLPlugin.check_config`), so they live apart from the torch
modules; :mod:`trajzoo_metatrl.model` and :mod:`trajzoo_metatrl.meta_learning` re-export them.
"""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.config import ConfigClass, check_divisible, ranged


@dataclass
class MetaTRLConfig(ConfigClass):
    """Hyper-parameters of MetaTRL (ranges declared with :func:`trajzoo.config.ranged`).

    Attributes:
        d_model: hidden size d of every component.
        gat_layers: number of road-encoder graph layers (eq. 8).
        layers: number of trajectory-encoder layers (eqs. 16-18).
        heads: attention heads of the trajectory encoder.
        ffn_dim: feed-forward hidden size of the trajectory encoder.
        dropout: dropout probability in the trajectory encoder.
        num_buckets: N_B, virtual buckets of the interval encoder (eq. 13).
        mask_ratio: fraction of each trajectory's real positions that are span-masked.
        mean_span_length: mean length (segments) of a masked span.
        time_mask_ratio: fraction of the remaining (not span-masked, not first) real positions
            whose time is masked.
        gamma: weight of the road-recovery loss in eq. 20.
        use_meta_knowledge: False -> ablation "w/o MKE road encoder" (plain GAT).
        use_time_encoder: False -> no time embedding at all.
        use_interval: False -> no interval embedding (T = T^P).
        use_knowledge_fusion: False -> plain Transformer trajectory encoder.
        use_time_mask: False -> no time masking in pre-training (loss = road CE only).
        unclassified_shared: side of the components the paper does not classify (attention
            output projection, layer norms, feed-forward blocks, [MASK] road vector, time-mask
            vector): True = shared across cities (default), False = private
            (:mod:`trajzoo_metatrl.parameters`).
        activation_checkpointing: recompute each trajectory-encoder layer's activations in the
            backward pass instead of keeping them (:mod:`trajzoo.nn.checkpointing`; not in the
            paper): the same numbers, bit for bit, with less memory and about a third more time
            per step. Off by default; for large ``d_model`` / sequence lengths.

    Build from the config's ``hparams`` section with ``MetaTRLConfig.from_dict(d, key=...)``
    (:meth:`trajzoo.config.ConfigClass.from_dict`).

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range, naming the field
            and its allowed range, or ``d_model`` not divisible by ``heads``; (``from_dict``)
            unknown keys, naming them.
    """

    d_model: int = ranged(64, ge=1)
    gat_layers: int = ranged(2, ge=1)
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    dropout: float = ranged(0.0, ge=0, lt=1)
    num_buckets: int = ranged(32, ge=1)
    mask_ratio: float = ranged(0.2, gt=0, lt=1)
    mean_span_length: float = ranged(3.0, ge=1)
    time_mask_ratio: float = ranged(0.2, ge=0, lt=1)
    gamma: float = ranged(0.5, ge=0, le=1)
    use_meta_knowledge: bool = True
    use_time_encoder: bool = True
    use_interval: bool = True
    use_knowledge_fusion: bool = True
    use_time_mask: bool = True
    unclassified_shared: bool = True
    activation_checkpointing: bool = False

    def check(self) -> None:
        """``d_model`` divisible by ``heads`` (multi-head attention of eq. 18)."""
        check_divisible(self, "d_model", "heads")


OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class PretrainSchedule(ConfigClass):
    """Pretraining schedule of MetaTRL (ranges declared with :func:`trajzoo.config.ranged`).

    Attributes:
        meta_epochs: meta epochs over the source cities (0 = no meta phase).
        episodes: episodes per meta epoch (one meta step, eq. 2, per episode).
        source_steps: K, source-model steps on source TRAIN batches per episode (eq. 1).
        query_batches: source TEST batches whose mean loss gradient drives one meta step (eq. 2).
        target_epochs: epochs over the target TRAIN split (eq. 4; 0 = return the target right
            after eq. 3).
        batch_size: trajectories per batch (every phase).
        lr: alpha_src = alpha_tar, learning rate of eq. 1 and eq. 4.
        inner_optimizer: optimiser of eq. 1 (``adam``, or ``sgd`` for the plain step as written).
        meta_lr: alpha_meta of eq. 2 (the paper gives no value).
        meta_optimizer: ``sgd`` = eq. 2's plain step theta - alpha_meta * gradient (default);
            ``adam`` = Adam on the same gradient.

    Build from the config's ``pretrain`` section with ``PretrainSchedule.from_dict(d)``.

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range, naming the field
            and its allowed range; (``from_dict``) unknown keys, naming them.
    """

    meta_epochs: int = ranged(2, ge=0)
    episodes: int = ranged(16, ge=1)
    source_steps: int = ranged(4, ge=1)
    query_batches: int = ranged(1, ge=1)
    target_epochs: int = ranged(4, ge=0)
    batch_size: int = ranged(64, ge=1)
    lr: float = ranged(1e-3, gt=0)
    inner_optimizer: str = ranged("adam", choices=OPTIMIZERS)
    meta_lr: float = ranged(0.1, gt=0)
    meta_optimizer: str = ranged("sgd", choices=OPTIMIZERS)
