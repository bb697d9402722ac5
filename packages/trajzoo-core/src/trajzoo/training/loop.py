"""Run plumbing shared by every model (seeding, device choice, atomic saves, encoder files) and
the supervised fine-tuning of road tasks, which trains through the one training engine
(:mod:`trajzoo.training.engine`: per-epoch checkpoints, resume, early stopping)."""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trajzoo.training.configs import FineTuneConfig  # noqa: F401 (re-exported: torch-free module)

log = logging.getLogger(__name__)


def progress(iterable, desc: str, total: int | None = None):
    """A tqdm progress bar on stderr (the rule's log file) for epochs or evaluation batches."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, mininterval=10, dynamic_ncols=False, ncols=100)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every CUDA device too), and ask torch, cuDNN and cuBLAS for
    deterministic kernels (:func:`trajzoo.training.options.apply_determinism`, which says how far
    same-seed-same-numbers holds on a GPU)."""
    from trajzoo.training.options import apply_determinism

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    apply_determinism()


@dataclass(frozen=True)
class RngState:
    """The global RNG states :func:`seed_everything` sets: Python's ``random``, NumPy's legacy
    global generator, torch's CPU generator and (when CUDA was initialised at capture) every CUDA
    device's generator. ``seed`` re-seeds CUDA lazily when it was not initialised at capture
    (what ``torch.manual_seed`` does for a device first used later)."""

    seed: int
    python: tuple
    numpy: tuple
    torch_cpu: torch.Tensor
    cuda: list | None


def capture_rng_state(seed: int) -> RngState:
    """The current global RNG states (after ``seed_everything(seed)`` and whatever consumed
    random numbers since), to put back with :func:`restore_rng_state`.

    Used by the ``evaluate`` rule, which loads a run's city and model once and then fine-tunes
    each task from the same RNG state the task's own job would have started from
    (:func:`trajzoo.evaluation.evaluate_run`)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return RngState(seed, random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)


def restore_rng_state(state: RngState) -> None:
    """Put the global RNG states of :func:`capture_rng_state` back (bit-identical streams)."""
    random.setstate(state.python)
    np.random.set_state(state.numpy)
    torch.set_rng_state(state.torch_cpu)
    if state.cuda is not None:
        torch.cuda.set_rng_state_all(state.cuda)
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(state.seed)


def resolve_device(requested: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present, else CPU).

    Raises:
        RuntimeError: ``"cuda"`` requested but not available.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("config device: cuda, but torch sees no CUDA device")
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise ValueError(f"device must be cpu, cuda or auto, got {requested!r}")


def tensor_digest(state: dict) -> str:
    """SHA-256 (12 hex digits) of a state dict's names and tensor bytes: identifies weights."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """Load a trajzoo checkpoint with ``weights_only=True`` (no arbitrary pickle)."""
    return torch.load(path, map_location=device, weights_only=True)


@dataclass
class RunContext:
    """Where and how a training run happens.

    Attributes:
        device: torch device.
        seed: RNG seed of the run.
        checkpoint_dir: folder for per-epoch checkpoints.
        logger: where progress lines go (the rule's log file).
        history: list of dicts (one per epoch and phase) that the caller writes out.
    """

    device: torch.device
    seed: int
    checkpoint_dir: Path
    logger: logging.Logger = field(default_factory=lambda: log)
    history: list[dict] = field(default_factory=list)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU torch.Generator seeded with ``seed + offset`` (for shuffles and masks)."""
        return torch.Generator().manual_seed(self.seed + offset)


class FineTuneModel(nn.Module):
    """A pretrained encoder plus a linear head on the mean-pooled trajectory representation.

    ``forward(batch, graph) -> (B, n_outputs)``; with ``freeze_encoder`` the encoder's
    parameters get no gradient (linear probing).
    """

    def __init__(self, encoder: nn.Module, n_outputs: int, freeze_encoder: bool = False):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.d_model, n_outputs)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def forward(self, batch, graph) -> torch.Tensor:
        """``(B, n_outputs)`` head outputs for a batch."""
        if self.freeze_encoder:
            with torch.no_grad():
                z = self.encoder.embed(batch, graph)
        else:
            z = self.encoder.embed(batch, graph)
        return self.head(z)


def _predict(model, task, rows, graph, batch_size, device) -> np.ndarray:
    from trajzoo.data.city import iterate_batches

    model.eval()
    outs = []
    with torch.no_grad():
        for _, batch in progress(iterate_batches(rows, batch_size), f"evaluate {task.name}",
                                 total=-(-len(rows) // batch_size)):
            outs.append(model(task.input_view(batch).to(device), graph).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, 1))


def finetune_and_evaluate(encoder: nn.Module, graph, task, data, cfg: FineTuneConfig, ctx: RunContext
                          ) -> dict:
    """Fine-tune ``encoder`` + a linear head on a task's train split, early-stop on val, score test.

    Regression labels are standardised with the train mean and std (MSE loss) and predictions
    mapped back; classification uses cross-entropy. The epoch with the lowest validation loss is
    kept. Training runs through :func:`trajzoo.training.engine.train` (AdamW, early stopping with
    ``cfg.patience``, optional clipping and learning-rate schedule; the train loss is trip-weighted): a checkpoint
    ``<task>-epoch-<k>.pt`` (model, optimizer, generator and global RNG states, best epoch and
    weights, history; latest only) is written atomically after every epoch and a killed run
    resumes from it (same fingerprint only). History rows: ``{"phase": "finetune:<task>",
    "epoch", "train_loss", "val_loss"}`` appended to ``ctx.history``.

    Args:
        encoder: pretrained encoder (``embed(batch, graph) -> (B, d)``).
        graph: the city's :class:`~trajzoo.data.batch.RoadGraph`.
        task: a :class:`~trajzoo.tasks.base.Task`.
        data: its :class:`~trajzoo.tasks.base.TaskData` for the city.

    Returns:
        ``{"metrics": {name: value}, "n_train": int, "n_test": int, "best_epoch": int,
        "test_trip_ids": [str], "test_outputs": (n_test,) minutes (regression, mapped back) or
        (n_test, C) class scores, "model": the fine-tuned FineTuneModel, "label_mean",
        "label_std": the train-label standardisation of regression (0 and 1 otherwise)}``.

    Raises:
        ValueError: an empty train, val or test split.
    """
    from trajzoo.data.city import iterate_batches

    for s in ("train", "val", "test"):
        if len(data.rows[s]) == 0:
            raise ValueError(f"task {task.name}: no eligible trip in the {s} split")
    device = ctx.device
    graph = graph.to(device)
    model = FineTuneModel(encoder, data.n_outputs, cfg.freeze_encoder).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    regression = task.kind == "regression"
    y_train = data.labels["train"]
    mean = float(np.mean(y_train)) if regression else 0.0
    std = (float(np.std(y_train)) or 1.0) if regression else 1.0

    def loss_of(out, y):
        if regression:
            return nn.functional.mse_loss(out.squeeze(-1), (y - mean) / std)
        return nn.functional.cross_entropy(out, y)

    def labels_tensor(split, idx):
        y = torch.as_tensor(data.labels[split][idx.numpy()])
        return (y.float() if regression else y.long()).to(device)

    from trajzoo.runlog import config_digest
    from trajzoo.training.checkpoints import CheckpointStore
    from trajzoo.training.engine import StepLoss, TrainSchedule, train

    fingerprint = config_digest({"task": task.name, "config": vars(cfg), "seed": ctx.seed,
                                 "sizes": {k: len(v) for k, v in data.rows.items()},
                                 "encoder": tensor_digest(encoder.state_dict())})
    store = CheckpointStore(ctx.checkpoint_dir, fingerprint, keep_last_only=True)
    gen = ctx.generator(offset=1)

    def step_loss(model, item):
        from trajzoo.training.distributed import batch_view

        idx, batch = item
        out = model(task.input_view(batch).to(device), graph)
        # data parallelism: the gradients are averaged with this share's trips (grad_weight), the
        # epoch's trip-weighted train loss weighs the step by its global batch's trips
        view = batch_view()
        return StepLoss(loss_of(out, labels_tensor("train", idx)), weight=len(idx) if view is None else view[0],
                        grad_weight=len(idx))

    def val_loss(model) -> float:
        model.eval()
        with torch.no_grad():
            total, count = 0.0, 0
            for idx, batch in iterate_batches(data.rows["val"], cfg.batch_size):
                out = model(task.input_view(batch).to(device), graph)
                total += float(loss_of(out, labels_tensor("val", idx))) * len(idx)
                count += len(idx)
        return total / max(count, 1)

    fit = train(model, opt, step_loss,
                lambda: iterate_batches(data.rows["train"], cfg.batch_size, shuffle=True, generator=gen, shard=True),
                TrainSchedule(epochs=cfg.epochs, patience=cfg.patience, grad_clip=cfg.grad_clip,
                              warmup_steps=cfg.warmup_steps, cosine=cfg.cosine),
                steps_per_epoch=-(-len(data.rows["train"]) // cfg.batch_size), phase=f"finetune:{task.name}",
                history=ctx.history, generator=gen, store=store,
                checkpoint_phase=task.name, val_loss=val_loss, device=device, logger=ctx.logger,
                label=f"finetune {task.name}", desc=f"finetune {task.name} epochs")
    best_epoch = fit.best_epoch
    outputs = _predict(model, task, data.rows["test"], graph, cfg.batch_size, device)
    if regression:
        outputs = outputs.reshape(-1) * std + mean
    metrics = task.metrics(data.labels["test"], outputs)
    return {"metrics": metrics, "n_train": len(data.rows["train"]), "n_test": len(data.rows["test"]),
            "best_epoch": best_epoch,
            "test_trip_ids": [str(r["trip_id"]) for r in data.rows["test"]], "test_outputs": outputs,
            "model": model, "label_mean": mean, "label_std": std}


def pretraining_loss(model: nn.Module, rows: list[dict], graph, batch_size: int, seed: int, device) -> float:
    """Trip-weighted mean self-supervised loss of ``model`` over ``rows`` in eval mode.

    ``model.loss(batch, graph, generator) -> (loss, stats)`` is the model's pretraining objective;
    masks come from a generator seeded with ``seed``, so values are comparable across epochs.
    Returns NaN when ``rows`` is empty.
    """
    from trajzoo.data.city import iterate_batches

    if not rows:
        return float("nan")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    with torch.no_grad():
        for idx, batch in iterate_batches(rows, batch_size):
            loss, _ = model.loss(batch.to(device), graph, gen)
            total += float(loss) * len(idx)
            n += len(idx)
    return total / max(n, 1)


def embed_trips(encoder: nn.Module, graph, rows: list[dict], batch_size: int, device) -> np.ndarray:
    """``(n, d)`` float32 trajectory embeddings of ``rows`` with the encoder in eval mode."""
    from trajzoo.data.city import iterate_batches

    encoder.eval().to(device)
    graph = graph.to(device)
    out = []
    with torch.no_grad():
        for _, batch in progress(iterate_batches(rows, batch_size), "embed", total=-(-len(rows) // batch_size)):
            out.append(encoder.embed(batch.to(device), graph).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, encoder.d_model), dtype=np.float32)


def save_encoder(path: Path, encoder: nn.Module, model: str, hparams: dict, graph) -> None:
    """Write a pretrained encoder: its weights plus what is needed to rebuild it
    (model name, hparams, the road graph's N and F_u). Atomic."""
    atomic_save({"model": model, "hparams": hparams, "num_segments": graph.num_segments,
                 "attribute_dim": int(graph.attributes.shape[1]),
                 "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}, path)


def load_encoder(path: Path, graph, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a saved encoder through the model registry and load its weights.

    Raises:
        ValueError: the checkpoint was trained on a road graph of another size.
        KeyError: its model is not installed.
    """
    from trajzoo.registry import get_model

    ckpt = load_checkpoint(path, device)
    if ckpt["num_segments"] != graph.num_segments or ckpt["attribute_dim"] != graph.attributes.shape[1]:
        raise ValueError(f"{path}: encoder built for {ckpt['num_segments']} segments x {ckpt['attribute_dim']} "
                         f"attributes, city {graph.city} has {graph.num_segments} x {graph.attributes.shape[1]}")
    encoder = get_model(ckpt["model"]).build_encoder(graph, dict(ckpt["hparams"]))
    encoder.load_state_dict(ckpt["state_dict"])
    return encoder.to(device)
