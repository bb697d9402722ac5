"""Config classes of the baselines' road-id Transformer and of the single-city pretraining
schedule, torch-free.

Building the Snakemake DAG checks every model's config section with these classes
(:meth:`trajzoo.plugins.RoadModelPlugin.check_config`), so they live apart from the torch
modules; :mod:`trajzoo_baselines.training` and :mod:`trajzoo_baselines.transformer_mlm`
re-export them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from trajzoo.config import ConfigClass, check_divisible, ranged


@dataclass(frozen=True)
class PretrainSchedule(ConfigClass):
    """Pretraining schedule of a single-city baseline.

    Attributes:
        epochs: passes over the target TRAIN split (0 = return the initialisation).
        batch_size: trajectories per optimisation step.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: maximum global L2 norm of the gradient (0 = no clipping).
        warmup_steps: linear learning-rate warm-up steps (0 = none). cosine: cosine decay of the
            learning rate over the run (off by default); see :class:`trajzoo.training.engine.TrainSchedule`.

    Raises:
        ValueError: (on construction) ``<field> must be <allowed>, got <value>``; (``from_dict``)
            unknown keys, naming them.
    """

    model_name: ClassVar[str] = "baseline"

    epochs: int = ranged(3, ge=0)
    batch_size: int = ranged(32, ge=1)
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.0, ge=0)
    grad_clip: float = ranged(1.0, ge=0)
    warmup_steps: int = ranged(0, ge=0)
    cosine: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, key: str | None = None) -> "PretrainSchedule":
        """Build from the config's ``pretrain`` section; missing keys take defaults.

        Raises:
            ValueError: naming every unknown key (``unknown <model> pretrain key(s) ...``), or a
                value out of range.
        """
        d = dict(d or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.model_name} pretrain key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        return super().from_dict(d, key)


@dataclass
class TransformerEncoderConfig(ConfigClass):
    """Size of the road-id Transformer encoder shared by ``transformer-mlm`` and ``node2vec``.

    Attributes:
        d_model: hidden size d.
        layers: Transformer encoder layers.
        heads: attention heads (must divide ``d_model``).
        ffn_dim: feed-forward hidden size.
        dropout: dropout on inputs, attention weights and residual branches, in [0, 1).

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range, or ``d_model``
            not divisible by ``heads``; (``from_dict``) unknown keys, naming them.
    """

    d_model: int = ranged(64, ge=1)
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    ffn_dim: int = ranged(128, ge=1)
    dropout: float = ranged(0.0, ge=0, lt=1)

    def check(self) -> None:
        """``d_model`` divisible by ``heads``."""
        check_divisible(self, "d_model", "heads")


@dataclass
class TransformerMLMConfig(TransformerEncoderConfig):
    """Hyper-parameters of ``transformer-mlm``: the fields of :class:`TransformerEncoderConfig`
    (``dropout`` defaults to 0.1 here) plus

    Attributes:
        mask_ratio: fraction of each trajectory's real positions replaced by [MASK] in
            pretraining, in (0, 1).

    Build from the config's ``hparams`` section with :meth:`trajzoo.config.ConfigClass.from_dict`.

    Raises:
        ValueError: (on construction) a value of the wrong type or out of range; (``from_dict``)
            unknown keys, naming them.
    """

    dropout: float = ranged(0.1, ge=0, lt=1)
    mask_ratio: float = ranged(0.15, gt=0, lt=1)


@dataclass(frozen=True)
class TransformerMLMSchedule(PretrainSchedule):
    """Pretraining schedule of ``transformer-mlm`` (fields of
    :class:`trajzoo_baselines.training.PretrainSchedule`)."""

    model_name = "transformer-mlm"
