"""``torch.distributed`` data parallelism for the training engine (torchrun-compatible).

A job started by ``torchrun --nproc-per-node K ...`` (or any launcher that sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) runs K processes; each takes its
share of every global batch (:func:`shard`), computes the loss of its share, and
:func:`average_gradients` all-reduces the gradients weighted by the shares' sizes before the
optimiser step, so every process applies the gradient of the whole global batch and keeps
identical weights (Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training", VLDB 2020: the all-reduce of gradients that ``DistributedDataParallel`` performs,
here without wrapping the model, so state dicts and checkpoints keep their keys). A loss that
needs the whole global batch (contrastive negatives) gathers the shares' rows differentiably
(:func:`all_gather_rows`); each process then computes its share of the global loss and the
gradients are summed (:func:`sum_gradients`). Random draws are made for the whole global batch
(:func:`batch_view`, :func:`global_batch`, :func:`global_batch_of`; a global batch that does not
come from a sharding iterator is sharded with :func:`share_of`). Backend: gloo on CPU, NCCL on GPU. With one process
(no launcher) every function is the identity.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device | str = "cpu") -> tuple[int, int]:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1), once.

    Args:
        device: the job's device; a CUDA device selects NCCL (and ``LOCAL_RANK``'s GPU), anything
            else gloo.

    Returns:
        ``(rank, world_size)``; ``(0, 1)`` when ``WORLD_SIZE`` is unset or 1 (nothing is started).

    Raises:
        RuntimeError: from ``torch.distributed.init_process_group`` (e.g. unreachable master).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return world()
    if not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return world()


def _comm_device() -> torch.device:
    """Where collective tensors must live: this process's GPU under NCCL, else the CPU (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(items: Sequence, rank: int | None = None, world_size: int | None = None) -> Sequence:
    """This process's contiguous share of ``items`` (e.g. the rows of one global batch):
    ``items[rank * n // K : (rank + 1) * n // K]`` for n items and K processes (sizes differ by
    at most one; :func:`average_gradients` weights by them)."""
    r, k = world() if rank is None else (rank, world_size or 1)
    n = len(items)
    return items[r * n // k:(r + 1) * n // k]


def average_gradients(params: Iterable[Tensor], weight: float = 1.0) -> None:
    """All-reduce the gradients of ``params`` in place to ``sum_r w_r g_r / sum_r w_r`` over the
    processes, ``w_r = weight`` of process r (its share's size, so the result is the gradient of
    the mean loss over the global batch). A parameter without a gradient counts as zero. No-op
    with one process."""
    _, k = world()
    if k == 1:
        return
    params = [p for p in params if p.requires_grad]
    device = params[0].device if params else _comm_device()
    total = torch.tensor([float(weight)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    _all_reduce_gradients(params, scale=float(weight), divide_by=total)


def _all_reduce_gradients(params: list[Tensor], scale: float = 1.0, divide_by: Tensor | None = None) -> None:
    """Replace each gradient of ``params`` (requires_grad ones; none counts as zero) by
    ``sum_r scale_r g_r`` over the processes, divided by ``divide_by`` when given: one float64
    all-reduce of the flattened gradients. The body of :func:`average_gradients` and
    :func:`sum_gradients`."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).to(torch.float64) for g in grads])
    if scale != 1.0:
        flat = flat * scale
    dist.all_reduce(flat)
    if divide_by is not None:
        flat /= divide_by
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        value = flat[offset:offset + n].view_as(g).to(g.dtype)
        if p.grad is None:
            p.grad = value
        else:
            p.grad.copy_(value)
        offset += n


def sum_gradients(params: Iterable[Tensor]) -> None:
    """All-reduce the gradients of ``params`` in place to their sum over the processes: for a loss
    of which each process computed its share of the global batch's loss (the processes' losses
    sum to it, e.g. :func:`trajzoo.nn.contrastive.nt_xent_share`; ``StepLoss.global_share``), the
    sum is the gradient of the global batch's loss. A parameter without a gradient counts as
    zero. No-op with one process."""
    _, k = world()
    if k == 1:
        return
    params = [p for p in params if p.requires_grad]
    if params:
        _all_reduce_gradients(params)


def sum_over_processes(value):
    """``sum_r v_r`` over the processes (e.g. the global batch's loss from the processes'
    shares, or its number of loss terms): a float, or a list of floats summed element-wise
    (one collective); ``value`` itself with one process."""
    _, k = world()
    if k == 1:
        return value
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    out = t.tolist()
    return out if isinstance(value, (list, tuple)) else out[0]


def sum_tensor_over_processes(x: Tensor) -> Tensor:
    """``sum_r x_r`` of a detached tensor over the processes (a new tensor, on ``x``'s device and
    dtype; e.g. the global batch's routing counts); ``x`` itself with one process."""
    _, k = world()
    if k == 1:
        return x
    t = x.detach().to(_comm_device(), copy=True)
    dist.all_reduce(t)
    return t.to(x.device)


def share_sizes(n: int) -> list[int]:
    """Every process's ``n`` (e.g. its share's rows or tokens), in rank order (one collective);
    ``[n]`` with one process."""
    rank, k = world()
    if k == 1:
        return [int(n)]
    sizes = torch.zeros(k, dtype=torch.int64, device=_comm_device())
    sizes[rank] = int(n)
    dist.all_reduce(sizes)
    return sizes.tolist()


def global_randn_rows(n: int, *trailing: int, dtype=None, device=None) -> Tensor:
    """``(n, *trailing)`` standard normal draws of the global torch RNG that are this process's
    rows of ONE draw for the concatenation of every process's rows (rank order): under data
    parallelism every process draws ``torch.randn(sum_r n_r, *trailing)`` and keeps its rows, so the
    draws (and the global RNG's state afterwards) are those of one process on the whole global
    batch, given the same RNG state before (e.g. TransferTraj's gate noise per real point). With
    one process: ``torch.randn(n, *trailing)``. Every process must call it (a collective)."""
    if world()[1] == 1:
        return torch.randn((n, *trailing), dtype=dtype, device=device)
    sizes = share_sizes(n)
    rank = world()[0]
    offset = sum(sizes[:rank])
    return torch.randn((sum(sizes), *trailing), dtype=dtype, device=device)[offset:offset + n]


def all_gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """Differentiable all-gather of every process's rows: ``(cat_r x_r, start)``.

    ``x_r`` is process r's ``(B_r, ...)`` tensor (the shares may differ in size, even be empty;
    they are padded to the largest for the collective and cut again); the result is the
    ``(sum_r B_r, ...)`` concatenation in rank order, and ``start`` the row where this process's
    rows begin (``x == result[start:start + B_r]``). Gradients flow back to every process's
    ``x`` (``torch.distributed.nn.functional.all_gather``, whose backward sums the gradients
    that every process's loss sends to each share), so a loss computed against the gathered rows
    (e.g. contrastive negatives from the whole global batch, :func:`trajzoo.nn.contrastive.nt_xent_share`)
    trains every process's encoder: with :func:`sum_gradients` the processes' shares of the loss
    give the gradient of the global batch's loss. With one process: ``(x, 0)``.

    Args:
        x: ``(B_r, ...)`` on this process's device (a CUDA device under NCCL).

    Returns:
        ``((B, ...), start)`` with ``B = sum_r B_r``.

    Raises:
        RuntimeError: from the collectives (e.g. trailing shapes or dtypes differing between
            processes).
    """
    rank, k = world()
    if k == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    sizes = share_sizes(x.shape[0])
    largest = max(sizes)
    padded = x
    if x.shape[0] < largest:
        padded = torch.cat([x, x.new_zeros((largest - x.shape[0], *x.shape[1:]))])
    parts = all_gather(padded)
    gathered = torch.cat([part[:n] for part, n in zip(parts, sizes)])
    return gathered, int(sum(sizes[:rank]))


def mean_over_processes(value: float, weight: float = 1.0) -> float:
    """``sum_r w_r v_r / sum_r w_r`` over the processes (the global batch's loss); ``value``
    itself with one process."""
    _, k = world()
    if k == 1:
        return value
    t = torch.tensor([value * weight, weight], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t[0] / t[1])


# --- the process's rows of a global batch, and random draws made for the whole global batch ---

_BATCH_VIEW: tuple[int, int, int] | None = None
_GLOBAL_BATCH = None


def batch_view() -> tuple[int, int, int] | None:
    """``(global_size, start, stop)`` while the training step of a sharded global batch runs
    (:func:`trajzoo.data.city.iterate_batches` with ``shard=True`` under data parallelism): this
    process holds rows ``start:stop`` of a global batch of ``global_size`` rows. None otherwise.

    :func:`trajzoo.nn.random_mask.random_subset` reads it to draw its scores for the whole global
    batch and keep this process's rows, so masks (and the generator's state, hence later
    shuffles) are the same as with one process on the whole global batch."""
    return _BATCH_VIEW


def global_batch():
    """The whole global batch (every process's rows, as collated, on the CPU) while the training
    step of its share runs (see :func:`batch_view`); None otherwise.

    For random draws that are not one ``torch.rand`` of the batch's shape (e.g. START's span
    masks and augmentations, which draw per row with lengths that depend on the rows): a model
    draws them for the whole global batch, as one process would, and keeps rows
    ``start:stop`` of :func:`batch_view` (:func:`local_rows`), so its draws and the generator's
    state do not depend on the number of processes."""
    return _GLOBAL_BATCH


def set_batch_view(view: tuple[int, int, int] | None, batch=None) -> None:
    """Set (or clear, with None) :func:`batch_view` and :func:`global_batch`; used by the sharding
    batch iterators only."""
    global _BATCH_VIEW, _GLOBAL_BATCH
    _BATCH_VIEW = view
    _GLOBAL_BATCH = batch if view is not None else None


def global_batch_of(batch):
    """The whole global batch whose share ``batch`` is, on ``batch``'s device, during a sharded
    training step under data parallelism: :func:`batch_view` is set, :func:`global_batch` holds a
    ``(B, L)`` batch of ``batch``'s type (a :class:`~trajzoo.data.batch.TrajectoryBatch` or a
    :class:`~trajzoo.data.points.PointBatch`: anything with ``padding_mask`` and ``to``) and
    ``batch`` has the view's ``stop - start`` rows; None otherwise (one process, or a batch that
    is not the share of the current global batch, e.g. a validation batch).

    A model's loss draws its row-by-row random masks for the returned batch, as one process
    would, keeps its rows (:func:`local_rows`) and returns its share of the global batch's loss
    (``StepLoss.global_share``): START's span masks and views, MetaTRL's span and time masks,
    TransferTraj's context dropout and unified masks."""
    view, full = _BATCH_VIEW, _GLOBAL_BATCH
    if view is None or type(full) is not type(batch) or batch.padding_mask.shape[0] != view[2] - view[1]:
        return None
    return full.to(batch.padding_mask.device)


@contextmanager
def share_of(batch):
    """Shard one global batch (each batch of ``iterate_batches(..., shard=True)``, and batches
    that do not come from it, e.g. MetaTRL's query batches of eq. 2): a context manager giving this process's rows of
    ``batch``, a ``(B, L)`` :class:`~trajzoo.data.batch.TrajectoryBatch` (rows
    :func:`share_bounds` ``(B)``, still padded to L), with :func:`batch_view` and
    :func:`global_batch` set to ``batch`` while the block runs, as during a sharded training
    step (so a loss inside draws its masks for the whole global batch and returns its share), and
    the previous view restored afterwards. With one process: ``batch`` itself, nothing set.

    Example: ``with share_of(batch) as share: loss, stats = model.loss(share, graph, gen)``."""
    if world()[1] == 1:
        yield batch
        return
    n = int(batch.roads.shape[0])
    start, stop = share_bounds(n)
    previous = (_BATCH_VIEW, _GLOBAL_BATCH)
    set_batch_view((n, start, stop), batch)
    try:
        yield batch.rows(start, stop)
    finally:
        set_batch_view(*previous)


def local_rows(x):
    """Rows ``start:stop`` of :func:`batch_view` of ``x``, something holding the whole global batch
    (a tensor, or an object with a ``rows(start, stop)`` method such as a trajectory batch);
    ``x`` itself outside a sharded step."""
    view = _BATCH_VIEW
    if view is None:
        return x
    if hasattr(x, "rows"):
        return x.rows(view[1], view[2])
    return x[view[1]:view[2]]


def share_bounds(n: int, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of this process's contiguous share of n items (as :func:`shard`)."""
    r, k = world() if rank is None else (rank, world_size or 1)
    return r * n // k, (r + 1) * n // k


def broadcast_order(order: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``order`` (an int64 permutation) on every process, so that the shares of a global
    batch always partition it even if the processes' generators drifted apart; ``order`` itself
    with one process."""
    _, k = world()
    if k == 1:
        return order
    device = order.device
    order = order.to(_comm_device(), copy=True)
    dist.broadcast(order, src=0)
    return order.to(device)
