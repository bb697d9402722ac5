"""Fine-tuning config classes of the core training loops, torch-free.

Building the Snakemake DAG checks every model's ``finetune`` section with these classes
(:func:`trajzoo.plugins.check_model_section`), so they live apart from the torch modules;
:mod:`trajzoo.training.loop`, :mod:`trajzoo.training.point_tasks` and
:mod:`trajzoo.training.location_tasks` re-export them.
"""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.config import ConfigClass, ranged, strict_from_dict


@dataclass
class FineTuneConfig:
    """Fine-tuning hyperparameters of a road task.

    Attributes:
        epochs: passes over the train split. lr: AdamW learning rate. batch_size: trips per step.
        patience: early-stopping patience in epochs. freeze_encoder: linear probing.
        weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm (0 = no clipping, today's default).
        warmup_steps: linear learning-rate warm-up steps (0 = none). cosine: cosine decay of the
            learning rate over the run (off by default); see :class:`trajzoo.training.engine.TrainSchedule`.
        max_train_trips: None = every eligible train trip; N = a seeded subset of N of them
            (CPU-sized fine-tuning, :func:`trajzoo.evaluation.evaluate_task`).
        max_val_trips: the same for the validation trips that early-stop it (the test split is
            never subsampled).
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    patience: int = 3
    freeze_encoder: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    warmup_steps: int = 0
    cosine: bool = False
    max_train_trips: int | None = None
    max_val_trips: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "FineTuneConfig":
        """Build from config; unknown keys raise ValueError naming them."""
        return strict_from_dict(cls, d, "finetune parameter")


@dataclass(frozen=True)
class PointFineTuneConfig(ConfigClass):
    """Fine-tuning hyper-parameters of a point task.

    Attributes:
        epochs: passes over the train rows (0 = no fine-tuning, e.g. zero-shot).
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        batch_size: trajectories per step.
        patience: stop after this many epochs without a lower validation loss.
        max_len: points kept per trajectory by the collate (its first ``max_len``).
        grad_clip: max global gradient norm (0 = none).
        use_auxiliary_loss: add ``model.auxiliary_loss()`` (if the model has it) to the train loss.
        warmup_steps: linear learning-rate warm-up steps (0 = none). cosine: cosine decay of the
            learning rate over the run (off by default); see :class:`trajzoo.training.engine.TrainSchedule`.

    Raises:
        ValueError: (on construction) ``<field> must be <allowed>, got <value>``; (``from_dict``)
            unknown keys, naming them.
    """

    epochs: int = ranged(3, ge=0)
    lr: float = ranged(1e-3, gt=0)
    batch_size: int = ranged(64, ge=1)
    patience: int = ranged(2, ge=1)
    weight_decay: float = ranged(0.0, ge=0)
    max_len: int = ranged(128, ge=1)
    grad_clip: float = ranged(1.0, ge=0)
    use_auxiliary_loss: bool = True
    warmup_steps: int = ranged(0, ge=0)
    cosine: bool = False


@dataclass
class LocationFineTuneConfig:
    """Head training of a location task.

    Attributes:
        epochs: passes over the train locations. lr: AdamW learning rate. batch_size:
        locations per step. patience: early-stopping patience (epochs) on the val locations.
        weight_decay: AdamW weight decay.
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    patience: int = 5
    weight_decay: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "LocationFineTuneConfig":
        """Build from config; unknown keys raise ValueError naming them."""
        return strict_from_dict(cls, d, "finetune parameter")
