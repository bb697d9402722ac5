"""The one training engine of trajzoo: every pretraining and every fine-tuning runs through it.

A model package supplies only the model-specific part:

- ``step_loss(model, batch) -> Tensor | StepLoss``: the loss of one batch (what is
  back-propagated), optionally with the batch's weight in the epoch mean and extra statistics;
- ``batches() -> Iterable``: a factory giving one pass over the training batches (called once
  per epoch, or again whenever a step budget outlasts a pass); it draws its shuffle from the
  run's ``torch.Generator``, which the engine checkpoints;
- optionally ``val_loss(model) -> float``: the validation loss after each epoch (early stopping
  and the history's ``val_loss``).

The engine (:class:`Trainer`, or the one-call :func:`train`) owns the rest: the optimisation step
(``zero_grad``, ``backward``, gradient-norm clipping, learning-rate schedule, ``optimizer.step``),
epochs or step budgets, one checkpoint per epoch through
:class:`~trajzoo.training.checkpoints.CheckpointStore` (atomic write, fingerprint, global RNG
states) with exact resume, early stopping on the validation loss with patience (restoring the
best epoch's weights), a tqdm progress bar and one history row per epoch.

Numbers: with the defaults of :class:`TrainSchedule` (no warm-up, no cosine, no clipping) a step
is exactly ``zero_grad; backward; optimizer.step()``, the learning rate is never touched, and the
engine draws no random number itself, so a loop moved onto it reproduces its former weights and
histories bit for bit. Learning-rate schedule: linear warm-up (Goyal et al., "Accurate, Large
Minibatch SGD", arXiv 1706.02677) followed by cosine decay (Loshchilov & Hutter, "SGDR",
arXiv 1608.03983, without restarts); see :func:`lr_factor`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trajzoo.training import distributed
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.loop import progress


@dataclass(frozen=True)
class TrainSchedule:
    """How long and how a model is optimised (the model-independent half of a training run).

    Attributes:
        epochs: epochs to run (0 = none: the model is returned as given).
        steps_per_epoch: None = an epoch is one pass over ``batches()``; N = an epoch ends after
            N optimisation steps (see ``repeat_batches`` for a pass shorter than N).
        repeat_batches: with ``steps_per_epoch``: True = a step budget, exactly N steps per epoch,
            starting a new pass (a new call of ``batches()``) whenever one ends; False = a cap, the
            epoch ends at the end of the pass if that comes first.
        grad_clip: maximum global L2 norm of the gradient (:func:`torch.nn.utils.clip_grad_norm_`
            over the optimised parameters); 0 = no clipping.
        patience: None = no early stopping, the last epoch's weights are kept; k = stop once k
            epochs in a row have not lowered the best validation loss, and restore the weights of
            the best epoch (needs ``val_loss``).
        warmup_steps: linear learning-rate warm-up over this many optimisation steps (0 = none).
        cosine: cosine decay of the learning rate from the end of the warm-up to the last step
            of the run (needs the run's total number of steps, see :class:`Trainer`).
        min_lr_ratio: the cosine's floor as a fraction of the base learning rate, in [0, 1].

    Raises:
        ValueError: (on construction) a value out of range.
    """

    epochs: int = 1
    steps_per_epoch: int | None = None
    repeat_batches: bool = False
    grad_clip: float = 0.0
    patience: int | None = None
    warmup_steps: int = 0
    cosine: bool = False
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if int(self.epochs) < 0:
            problems.append(f"epochs must be >= 0, got {self.epochs}")
        if self.steps_per_epoch is not None and int(self.steps_per_epoch) < 1:
            problems.append(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if self.repeat_batches and self.steps_per_epoch is None:
            problems.append("repeat_batches needs steps_per_epoch (the step budget)")
        if not float(self.grad_clip) >= 0.0:
            problems.append(f"grad_clip must be >= 0, got {self.grad_clip}")
        if self.patience is not None and int(self.patience) < 0:
            problems.append(f"patience must be >= 0 or None, got {self.patience}")
        if int(self.warmup_steps) < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= float(self.min_lr_ratio) <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if problems:
            raise ValueError("invalid training schedule: " + "; ".join(problems))

    @property
    def schedules_lr(self) -> bool:
        """True when the learning rate changes during the run (warm-up or cosine on)."""
        return self.warmup_steps > 0 or self.cosine


def lr_factor(step: int, warmup_steps: int = 0, cosine: bool = False, total_steps: int | None = None,
              min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimisation step ``step`` (0-based).

    Linear warm-up: ``(step + 1) / W`` for ``step < W`` (the first step uses ``lr / W``, step
    ``W - 1`` the full ``lr``). Then, with ``cosine``, with ``p = (step - W) / max(1, T - W)``
    (clamped to [0, 1]): ``r + (1 - r) * (1 + cos(pi * p)) / 2``, i.e. the full ``lr`` on the
    first step after the warm-up, decaying towards ``r * lr`` at step ``T``; without cosine 1.

    Args:
        step: steps already taken in the run. warmup_steps: W. cosine: decay after the warm-up.
        total_steps: T, steps of the whole run (needed with ``cosine``). min_lr_ratio: r.

    Returns:
        The factor (dimensionless, in (0, 1]).

    Raises:
        ValueError: ``cosine`` without ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine:
        return 1.0
    if total_steps is None:
        raise ValueError("a cosine learning-rate schedule needs the run's total number of steps")
    p = min(max((step - warmup_steps) / max(1, total_steps - warmup_steps), 0.0), 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


@dataclass
class StepLoss:
    """What ``step_loss`` may return instead of a bare loss tensor.

    Attributes:
        loss: scalar tensor that is back-propagated.
        weight: the step's weight in the epoch's mean training loss (e.g. the batch's number of
            trajectories for a trip-weighted mean; 1 = a mean over steps).
        value: the training loss reported for this step (default ``float(loss)``; e.g. the task
            loss without an auxiliary term that is still back-propagated).
        stats: further per-step floats, averaged over the epoch with the same weights into
            :attr:`StepsResult.stats`.
        grad_weight: under data parallelism, this process's weight in the all-reduce of the
            gradients and of the reported loss (the number of terms ``loss`` averages, e.g. the
            masked positions of a masked-token loss, so that the result is the gradient of the
            global batch's mean); None = ``weight``. Ignored with one process.
        global_share: under data parallelism, ``loss`` (and ``value``) is this process's share
            of the global batch's loss, the processes' losses summing to it (e.g. a contrastive
            term against negatives gathered from every process,
            :func:`trajzoo.nn.contrastive.nt_xent_share`): the gradients, the reported loss and
            ``stats`` (shares too) are summed over the processes
            (:func:`~trajzoo.training.distributed.sum_gradients`) instead of averaged with
            ``grad_weight``. ``weight`` should then be the global batch's (e.g. its trajectories,
            ``batch_view()[0]``), as every process reports the global batch's loss. Ignored with
            one process.
    """

    loss: Tensor
    weight: float = 1
    value: float | None = None
    stats: Mapping[str, float] = field(default_factory=dict)
    grad_weight: float | None = None
    global_share: bool = False

    @property
    def share_weight(self) -> float:
        """The weight used across processes: ``grad_weight``, or ``weight`` when None."""
        return float(self.weight if self.grad_weight is None else self.grad_weight)

    def reduce_gradients(self, params: list[Tensor]) -> None:
        """Under data parallelism: the gradients of the global batch from the processes' (see
        ``grad_weight`` and ``global_share``)."""
        if self.global_share:
            distributed.sum_gradients(params)
        else:
            distributed.average_gradients(params, self.share_weight)

    def reduce_value(self, value: float) -> tuple[float, Mapping[str, float]]:
        """Under data parallelism: the global batch's reported loss from this process's ``value``,
        and the stats (summed when they are shares, ``global_share``; else this process's)."""
        if not self.global_share:
            return distributed.mean_over_processes(value, self.share_weight), self.stats
        keys = list(self.stats)
        summed = distributed.sum_over_processes([value, *(float(self.stats[k]) for k in keys)])
        return summed[0], dict(zip(keys, summed[1:]))


@dataclass
class StepsResult:
    """Outcome of :meth:`Trainer.run_steps`.

    Attributes:
        train_loss: weighted mean of the steps' reported losses (0.0 without a step).
        steps: optimisation steps taken. weight: sum of the step weights.
        stats: weighted means of the steps' ``StepLoss.stats`` (keys of the first step).
    """

    train_loss: float
    steps: int
    weight: float
    stats: dict[str, float]


@dataclass
class EpochResult:
    """One finished epoch, as given to the ``extra_fields`` hook of :meth:`Trainer.fit`.

    Attributes:
        epoch: 0-based epoch index. train: its :class:`StepsResult`. val_loss: validation loss
        (NaN without ``val_loss``). lr: learning rate of the first parameter group at the
        epoch's last step. best_epoch: the epoch whose weights are kept so far (the current one
        without early stopping). stopped: early stopping ends the run after this epoch.
    """

    epoch: int
    train: StepsResult
    val_loss: float
    lr: float
    best_epoch: int
    stopped: bool


@dataclass
class FitResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        best_epoch: epoch whose weights the model holds (-1 when no epoch ran).
        best_val: its validation loss (inf without early stopping or without an epoch).
        stopped: early stopping ended the run. steps: optimisation steps of the whole run.
        rows: the history rows of this phase (resumed ones included), in order.
    """

    best_epoch: int
    best_val: float
    stopped: bool
    steps: int
    rows: list[dict]


class Trainer:
    """Runs the optimisation of one model with one optimiser.

    Args:
        model: the ``nn.Module`` trained (put in train mode before every pass of steps).
        optimizer: its optimiser, freshly built by the caller (base learning rates are read
            from its parameter groups when the trainer is built).
        step_loss: ``(model, batch) -> Tensor | StepLoss``, the scalar loss of one batch.
        schedule: a :class:`TrainSchedule` (default: one epoch, nothing else).
        params: parameters whose gradient norm is clipped (default: every parameter of the
            optimiser, in its order).
        steps_per_epoch: steps one epoch takes (e.g. ``ceil(trips / batch_size)``); needed only
            for a cosine schedule without a ``schedule.repeat_batches`` step budget.

    Data parallelism: when a ``torch.distributed`` process group with K > 1 processes is
    initialised (:func:`trajzoo.training.distributed.init_from_env`, e.g. under torchrun), each
    process's ``batches()`` yields its share of each global batch
    (:func:`~trajzoo.training.distributed.shard`, e.g. ``iterate_batches(..., shard=True)``), and
    :meth:`step` all-reduces the gradients weighted by ``StepLoss.grad_weight`` (default
    ``StepLoss.weight``) before clipping and the optimiser step (and reports the
    weighted mean loss over the processes), or sums them when the loss is the process's share of
    the global batch's loss (``StepLoss.global_share``).

    Raises:
        ValueError: a cosine schedule whose total number of steps is unknown.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 step_loss: Callable[[nn.Module, Any], Tensor | StepLoss], schedule: TrainSchedule | None = None,
                 *, params: Iterable[Tensor] | None = None, steps_per_epoch: int | None = None):
        self.model = model
        self.optimizer = optimizer
        self.step_loss = step_loss
        self.schedule = schedule or TrainSchedule()
        self.params = list(params) if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.step_count = 0
        # torch.distributed data parallelism (trajzoo.training.distributed): on when a process
        # group with several processes exists; each process's batches are its share of the global ones
        self.data_parallel = distributed.world()[1] > 1
        # run-wide options (config `training`, trajzoo.training.options): mixed precision, TensorBoard
        from trajzoo.training.options import current_options
        self.options = current_options()
        self._scaler = None
        s = self.schedule
        per_epoch = s.steps_per_epoch if s.repeat_batches else steps_per_epoch
        if s.steps_per_epoch is not None and per_epoch is not None:
            per_epoch = min(per_epoch, s.steps_per_epoch)
        self.total_steps = s.epochs * per_epoch if per_epoch is not None else None
        if s.cosine and self.total_steps is None:
            raise ValueError("cosine learning-rate schedule: pass steps_per_epoch (or use a step budget) so that "
                             "the run's total number of steps is known")

    def current_lr(self) -> float:
        """Learning rate of the first parameter group (what the last step used)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, batch: Any) -> tuple[float, float, Mapping[str, float]]:
        """One optimisation step on ``batch``: loss, ``zero_grad``, backward, clipping,
        learning rate of this step (only when the schedule varies it), ``optimizer.step``.

        Returns:
            ``(reported loss, weight, stats)`` of the step (see :class:`StepLoss`).
        """
        if self.options.amp:  # mixed precision: float16 + loss scaling on CUDA, bfloat16 on CPU
            dev = next(self.model.parameters()).device.type
            with torch.autocast(dev, dtype=torch.float16 if dev == "cuda" else torch.bfloat16):
                out = self.step_loss(self.model, batch)
            if dev == "cuda" and self._scaler is None:
                self._scaler = torch.amp.GradScaler("cuda")
        else:
            out = self.step_loss(self.model, batch)
        if not isinstance(out, StepLoss):
            out = StepLoss(out)
        s = self.schedule
        if s.schedules_lr:
            factor = lr_factor(self.step_count, s.warmup_steps, s.cosine, self.total_steps, s.min_lr_ratio)
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * factor
        self.optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(out.loss).backward()
            if self.data_parallel:  # torch.distributed: gradient of the whole global batch
                self._scaler.unscale_(self.optimizer)
                out.reduce_gradients(self.params)
            if s.grad_clip > 0:
                if not self.data_parallel:
                    self._scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.params, s.grad_clip)
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            out.loss.backward()
            if self.data_parallel:  # torch.distributed: gradient of the whole global batch
                out.reduce_gradients(self.params)
            if s.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.params, s.grad_clip)
            self.optimizer.step()
        self.step_count += 1
        value = float(out.loss.detach()) if out.value is None else out.value
        stats = out.stats
        if self.data_parallel:
            value, stats = out.reduce_value(value)
        return value, out.weight, stats

    def run_steps(self, batches: Callable[[], Iterable], max_steps: int | None = None,
                  repeat: bool = False) -> StepsResult:
        """Train: one pass over ``batches()``, or at most ``max_steps`` steps of it, or (with
        ``repeat``) exactly ``max_steps`` steps, calling ``batches()`` again whenever a pass ends
        (a step budget; stops early only if a pass yields nothing).

        Returns:
            The :class:`StepsResult` (weighted mean loss and stats, steps).
        """
        self.model.train()
        try:
            return self._run_steps(batches, max_steps, repeat)
        finally:  # a pass left early (step budget) keeps no view of a global batch (data parallelism)
            distributed.set_batch_view(None)

    def _run_steps(self, batches: Callable[[], Iterable], max_steps: int | None, repeat: bool) -> StepsResult:
        total, weight, steps = 0.0, 0, 0
        sums: dict[str, float] = {}
        while True:
            for batch in batches():
                value, w, stats = self.step(batch)
                total += value * w
                weight += w
                steps += 1
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v * w
                if max_steps is not None and steps >= max_steps:
                    return self._result(total, weight, steps, sums)
            if not repeat or max_steps is None or steps == 0:
                return self._result(total, weight, steps, sums)

    def _tensorboard(self, phase: str, row: Mapping[str, Any]) -> None:
        """Write the numeric fields of one history row as TensorBoard scalars ``<field>`` at step
        ``epoch``, in ``<tensorboard_dir>/<phase>`` (only when the run's options name a folder)."""
        if self.options.tensorboard_dir is None:
            return
        if getattr(self, "_tb_writer", None) is None:
            from torch.utils.tensorboard import SummaryWriter
            self._tb_writer = SummaryWriter(log_dir=str(self.options.tensorboard_dir / phase.replace(":", "_")))
        for key, value in row.items():
            if key not in ("phase", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self._tb_writer.add_scalar(key, value, int(row["epoch"]))
        self._tb_writer.flush()

    @staticmethod
    def _result(total: float, weight: float, steps: int, sums: dict[str, float]) -> StepsResult:
        mean = (lambda x: x / weight) if weight else (lambda x: 0.0)
        return StepsResult(mean(total), steps, weight, {k: mean(v) for k, v in sums.items()})

    def fit(self, batches: Callable[[], Iterable], *, phase: str, history: list[dict],
            generator: torch.Generator | None = None, store: CheckpointStore | None = None,
            checkpoint_phase: str | None = None, val_loss: Callable[[nn.Module], float] | None = None,
            device: torch.device | str = "cpu", logger=None, label: str | None = None, desc: str | None = None,
            on_epoch_start: Callable[[int], None] | None = None,
            on_train_end: Callable[[int, StepsResult], None] | None = None,
            extra_fields: Callable[[EpochResult], Mapping[str, Any]] | None = None) -> FitResult:
        """Run ``schedule.epochs`` epochs with a checkpoint after each, resuming if one exists.

        Per epoch: ``on_epoch_start(epoch)``; the steps (:meth:`run_steps`);
        ``on_train_end(epoch, steps_result)``; ``val_loss(model)``; early-stopping bookkeeping;
        a history row ``{"phase", "epoch", "train_loss", "val_loss"}`` (plus ``"lr"`` when the
        schedule varies the learning rate, plus ``extra_fields(EpochResult)``) appended to
        ``history``; a log line; the checkpoint ``<checkpoint_phase>-epoch-<k>.pt`` with the
        model, optimiser, generator, step count, early-stopping state and the whole ``history``
        (:meth:`CheckpointStore.save` adds the fingerprint and the global RNG states). A run
        whose ``store`` holds a checkpoint of ``checkpoint_phase`` with its fingerprint restores
        all of that and continues after its epoch, so it ends bitwise where an uninterrupted run
        ends. With ``schedule.patience`` the model finally gets the best epoch's weights.

        Args:
            batches: factory of one pass of training batches (see the module docstring).
            phase: the history rows' ``phase`` (e.g. ``"pretrain:porto"``).
            history: the run's history list (e.g. ``RunContext.history``), appended to in place
                and replaced by the checkpoint's on resume.
            generator: the CPU generator of shuffles and masks (checkpointed and restored).
            store: where checkpoints go; None = no checkpoint, no resume.
            checkpoint_phase: checkpoint file prefix (default ``phase``).
            val_loss: validation loss after each epoch; None = NaN in the history.
            device: where checkpoints are loaded to. logger: for progress lines (None = silent).
            label: name in log lines (default ``phase``). desc: progress-bar text.
            on_epoch_start, on_train_end, extra_fields: optional hooks (above).

        Returns:
            A :class:`FitResult`.

        Raises:
            ValueError: ``schedule.patience`` set without ``val_loss``.
        """
        s = self.schedule
        if s.patience is not None and val_loss is None:
            raise ValueError(f"{phase}: early stopping (patience {s.patience}) needs a validation loss")
        checkpoint_phase = checkpoint_phase or phase
        if self.options.amp:  # mixed precision changes the numbers: never resume a full-precision run
            checkpoint_phase = f"{checkpoint_phase}-amp"
        label = label or phase
        best_val, best_epoch, best_state, bad_epochs, stopped, first = float("inf"), -1, None, 0, False, 0
        resume = store.latest(checkpoint_phase, device) if store is not None else None
        if resume is not None:
            first = store.resume_training(resume, self.model, self.optimizer, generator, history)
            self.step_count = int(resume.get("step", 0))
            best_val = float(resume.get("best_val", float("inf")))
            best_epoch = int(resume.get("best_epoch", resume["epoch"]))
            best_state = resume.get("best_state")
            bad_epochs = int(resume.get("bad_epochs", 0))
            stopped = bool(resume.get("stopped", False))
            if logger is not None:
                logger.info("%s: resuming after epoch %d", label, resume["epoch"])
        last = first if stopped else s.epochs
        for epoch in progress(range(first, last), desc or f"{label} epochs"):
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            result = self.run_steps(batches, s.steps_per_epoch, s.repeat_batches)
            if on_train_end is not None:
                on_train_end(epoch, result)
            val = float(val_loss(self.model)) if val_loss is not None else float("nan")
            if s.patience is None:
                best_epoch = epoch
            elif val < best_val:
                best_val, best_epoch, bad_epochs = val, epoch, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                bad_epochs += 1
            stopped = s.patience is not None and bad_epochs >= s.patience
            row = {"phase": phase, "epoch": epoch, "train_loss": result.train_loss, "val_loss": val}
            if s.schedules_lr:
                row["lr"] = self.current_lr()
            if extra_fields is not None:
                row.update(extra_fields(EpochResult(epoch, result, val, self.current_lr(), best_epoch, stopped)))
            history.append(row)
            self._tensorboard(phase, row)
            if logger is not None:
                logger.info("%s epoch %d: train loss %.4f, val loss %.4f%s%s, %d steps", label, epoch,
                            result.train_loss, val, f", lr {self.current_lr():.3g}" if s.schedules_lr else "",
                            f" (best epoch {best_epoch})" if s.patience is not None else "", result.steps)
            if store is not None and distributed.world()[0] == 0:  # one writer under data parallelism
                store.save(checkpoint_phase, epoch, {
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "generator": generator.get_state() if generator is not None else None,
                    "history": list(history), "step": self.step_count, "best_val": best_val,
                    "best_epoch": best_epoch, "best_state": best_state, "bad_epochs": bad_epochs,
                    "stopped": stopped})
            if stopped:
                if logger is not None:
                    logger.info("%s: early stop after epoch %d (best epoch %d)", label, epoch, best_epoch)
                break
        if s.patience is not None and best_state is not None:
            self.model.load_state_dict(best_state)
        if getattr(self, "_tb_writer", None) is not None:
            self._tb_writer.close()
            self._tb_writer = None
        return FitResult(best_epoch, best_val, stopped, self.step_count,
                         [h for h in history if h.get("phase") == phase])


def train(model: nn.Module, optimizer: torch.optim.Optimizer, step_loss: Callable[[nn.Module, Any], Tensor | StepLoss],
          batches: Callable[[], Iterable], schedule: TrainSchedule, *, params: Iterable[Tensor] | None = None,
          steps_per_epoch: int | None = None, **fit_kwargs) -> FitResult:
    """One call: ``Trainer(model, optimizer, step_loss, schedule, params=..., steps_per_epoch=...)
    .fit(batches, **fit_kwargs)``; see :class:`Trainer` and :meth:`Trainer.fit` (``phase`` and
    ``history`` are required keywords).

    Raises:
        ValueError: as :class:`Trainer` and :meth:`Trainer.fit`.
    """
    trainer = Trainer(model, optimizer, step_loss, schedule, params=params, steps_per_epoch=steps_per_epoch)
    return trainer.fit(batches, **fit_kwargs)

