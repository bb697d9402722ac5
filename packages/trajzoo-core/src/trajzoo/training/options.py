"""Run-wide training options of the config's ``training`` section: mixed precision, DataLoader
workers and pinned memory, TensorBoard logs.

They apply to every model alike, so they are set once by the rule scripts around a whole
pretraining or evaluation (``with run_options(opts): plugin.pretrain(...)``) and read by the one
training engine (:class:`trajzoo.training.engine.Trainer`) and the batch iterators
(:func:`trajzoo.data.city.iterate_batches`, :func:`trajzoo.data.points.iterate_point_batches`).
The scope is a :class:`contextvars.ContextVar`: outside a ``with run_options(...)`` block the
defaults hold (full precision, no worker process, no pinned memory, no TensorBoard), which
reproduce the numbers of runs made before these options existed.

Determinism on a GPU (:func:`apply_determinism`): cuDNN is put in deterministic mode without
autotuning, cuBLAS gets a fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``) and PyTorch is
asked for deterministic algorithms (``torch.use_deterministic_algorithms(True, warn_only=True)``).
Same seed, same data, same config then gives the same numbers on the same GPU model with the same
driver, CUDA and PyTorch versions, except where an operation has no deterministic CUDA kernel:
PyTorch then warns (``warn_only``) and that operation may differ in the last bits between runs
(e.g. ``index_add_``/``scatter_add_`` of graph message passing in PyTorch Geometric, which MetaTRL's
and START's GAT layers use). Mixed precision (``amp: true``) changes the numbers against full
precision but not between two runs with the same settings on the same hardware. Across GPU models,
CUDA versions, or CPU vs GPU, numbers differ at floating-point tolerance.
"""
from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

import torch


@dataclass(frozen=True)
class RunOptions:
    """Training options of one run (config ``training``).

    Attributes:
        amp: mixed precision in the optimisation steps: ``torch.autocast`` (float16 with a
            ``GradScaler`` on CUDA, bfloat16 on CPU) around each step's loss. Evaluation and
            embedding stay in full precision.
        loader_workers: DataLoader worker processes that collate batches (0 = in the main process).
        pin_memory: pin collated batches in page-locked memory (faster host-to-GPU copies).
        tensorboard_dir: folder of per-phase TensorBoard event files (None = none); needs the
            optional ``tensorboard`` extra (``pip install trajzoo-core[tensorboard]``).
    """

    amp: bool = False
    loader_workers: int = 0
    pin_memory: bool = False
    tensorboard_dir: Path | None = None


_CURRENT: ContextVar[RunOptions] = ContextVar("trajzoo_run_options", default=RunOptions())


def current_options() -> RunOptions:
    """The options in force (defaults outside :func:`run_options`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def run_options(options: RunOptions):
    """Put ``options`` in force for the block (restored afterwards, also on error)."""
    token = _CURRENT.set(options)
    try:
        yield options
    finally:
        _CURRENT.reset(token)


def options_from_config(training: dict | None, device: torch.device | str,
                        tensorboard_dir: Path | str | None = None) -> RunOptions:
    """Options from the config's ``training`` section on ``device``.

    ``loader_workers: null`` means 2 worker processes on CUDA and 0 on CPU; pinned memory is used
    on CUDA only; TensorBoard logs go to ``tensorboard_dir`` when ``tensorboard: true``.

    Raises:
        ValueError: an unknown key, or ``tensorboard: true`` without the tensorboard package.
    """
    training = dict(training or {})
    unknown = set(training) - {"amp", "loader_workers", "tensorboard"}
    if unknown:
        raise ValueError(f"training: unknown key(s) {sorted(unknown)}")
    cuda = torch.device(device).type == "cuda"
    workers = training.get("loader_workers")
    tb = None
    if training.get("tensorboard"):
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ValueError("training.tensorboard: true needs the tensorboard package "
                             "(pip install 'trajzoo-core[tensorboard]')") from None
        tb = Path(tensorboard_dir) if tensorboard_dir is not None else None
    return RunOptions(amp=bool(training.get("amp", False)),
                      loader_workers=int(workers) if workers is not None else (2 if cuda else 0),
                      pin_memory=cuda, tensorboard_dir=tb)


def apply_determinism() -> None:
    """Ask PyTorch (and, when present, CUDA) for deterministic kernels; see the module docstring
    for how far same-seed-same-numbers holds on a GPU. Called by
    :func:`trajzoo.training.loop.seed_everything`."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS initialises
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def batch_loader(rows: list, batches: list[list[int]], collate_fn):
    """Collated batches of ``rows`` through a ``torch.utils.data.DataLoader`` with the workers and
    pinned memory of :func:`current_options`, in exactly the order of ``batches`` (lists of row
    indices), so the numbers do not depend on the number of workers.

    ``collate_fn(indices, rows_of_batch)`` builds one batch; it must be deterministic.
    """
    from torch.utils.data import DataLoader

    opts = current_options()
    dataset = _IndexedRows(rows)
    return DataLoader(dataset, batch_sampler=batches, num_workers=opts.loader_workers,
                      pin_memory=opts.pin_memory and torch.cuda.is_available(),
                      multiprocessing_context="fork" if opts.loader_workers > 0 else None,
                      collate_fn=lambda items: collate_fn([i for i, _ in items], [r for _, r in items]))


class _IndexedRows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return i, self.rows[i]


def with_tensorboard(options: RunOptions, tensorboard_dir: Path | str | None) -> RunOptions:
    """``options`` with another TensorBoard folder (kept off when TensorBoard is off)."""
    return replace(options, tensorboard_dir=Path(tensorboard_dir) if options.tensorboard_dir is not None else None)
