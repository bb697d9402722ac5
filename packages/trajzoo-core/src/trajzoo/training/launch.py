"""Run a rule script's main function in K data-parallel processes (torchrun-compatible).

A Snakemake job asks for K processes with the resource ``processes`` (profiles/default
``set-resources``, e.g. ``pretrain: {processes: 2}``; default 1). :func:`run` then

- with K = 1 and no torchrun environment: calls ``main(*args)`` in this process (nothing else);
- under torchrun (``WORLD_SIZE`` > 1 in the environment, e.g. ``torchrun --nproc-per-node K``):
  joins the process group torchrun describes and calls ``main`` in this process (``processes``
  is then ignored: torchrun already chose the processes);
- otherwise: starts K processes with ``torch.multiprocessing.spawn`` (start method spawn), each
  with torchrun's environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR=127.0.0.1`` and ``MASTER_PORT`` (a free local port), joins the process group
  (:func:`trajzoo.training.distributed.init_from_env`: gloo on CPU, NCCL with one GPU per
  process, ``LOCAL_RANK``'s, when the device is CUDA and CUDA is present) and calls ``main`` in
  each; an exception in any process is raised here (``torch.multiprocessing.ProcessRaisedException``
  with its traceback).

The training engine then shards each global batch over the processes and all-reduces the
gradients (:mod:`trajzoo.training.distributed`). Rank 0 alone writes outputs, logs and
checkpoints (:func:`is_writer`); the other processes only compute, with their stdout and stderr
sent to ``os.devnull``.

With spawn, ``main`` must be importable by the child processes: a module-level function of an
importable module or of the running script (a Snakemake ``script:`` runs as ``__main__``; its
module-level code must sit under ``if __name__ == "__main__":`` so that the children do not run
it again), and ``args`` must be picklable (Snakemake's ``snakemake`` object is).
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch

from trajzoo.training import distributed

RESOURCE = "processes"
"""The Snakemake resource naming a job's number of data-parallel processes (default 1)."""

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def processes_of(resources: Any) -> int:
    """The job's number of processes: ``resources.processes`` (a Snakemake ``Resources`` object,
    a mapping, or None); 1 when absent.

    Raises:
        ValueError: not an integer >= 1.
    """
    if resources is None:
        return 1
    value = resources.get(RESOURCE, 1) if hasattr(resources, "get") else getattr(resources, RESOURCE, 1)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"resource {RESOURCE} must be an integer >= 1, got {value!r}") from None
    if n < 1 or n != float(value):
        raise ValueError(f"resource {RESOURCE} must be an integer >= 1, got {value!r}")
    return n


def under_torchrun() -> bool:
    """True when torchrun (or another launcher) already set ``WORLD_SIZE`` > 1 for this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_writer() -> bool:
    """True in the process that writes outputs and logs: rank 0 (the only process without data
    parallelism). Before the process group is joined, read from ``RANK`` in the environment."""
    if distributed.world()[1] > 1:
        return distributed.world()[0] == 0
    return int(os.environ.get("RANK", "0")) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of the call (for ``MASTER_PORT``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend_device(device: str | torch.device) -> str:
    """``"cuda"`` when ``device`` asks for CUDA ("cuda", "cuda:k" or "auto") and CUDA is present,
    else ``"cpu"`` (gloo)."""
    kind = str(device).split(":")[0]
    return "cuda" if kind in ("cuda", "auto") and torch.cuda.is_available() else "cpu"


def _join_and_call(main: Callable, args: tuple, device: str) -> Any:
    distributed.init_from_env(device)
    try:
        return main(*args)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _child(rank: int, world_size: int, port: int, device: str, threads: int | None, main: Callable,
           args: tuple) -> None:
    """One spawned process: torchrun's environment, silence unless rank 0, join, ``main(*args)``;
    a ``SystemExit`` with code 0 or None ends it normally."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: loopback only
    if threads is not None:
        torch.set_num_threads(threads)
    if rank != 0:  # only rank 0 writes; the others compute silently (errors still reach the parent)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        _join_and_call(main, args, device)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise


def run(main: Callable, *args: Any, processes: int = 1, device: str | torch.device = "cpu",
        threads: int | None = None) -> Any:
    """Call ``main(*args)`` in one process or data-parallel in several (see the module docstring).

    Args:
        main: the function to run in every process (importable; see the module docstring).
        args: its arguments (picklable when ``processes`` > 1).
        processes: K, the number of processes (e.g. :func:`processes_of` of the job's resources).
        device: the job's device ("cpu", "cuda", "auto"): CUDA present and asked for = NCCL,
            one GPU per process; else gloo on CPU.
        threads: torch intra-op threads per spawned process (e.g. the job's threads // K);
            None = torch's default.

    Returns:
        ``main``'s result with one process or under torchrun; None after a spawn (the results
        stay in the children: they write their outputs).

    Raises:
        ValueError: ``processes`` < 1, or more CUDA processes than visible GPUs.
        torch.multiprocessing.ProcessRaisedException: ``main`` raised in a spawned process.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    backend_device = _backend_device(device)
    if under_torchrun():
        return _join_and_call(main, args, backend_device)
    if processes == 1:
        return main(*args)
    if backend_device == "cuda" and processes > torch.cuda.device_count():
        raise ValueError(f"{processes} processes on CUDA need as many GPUs, {torch.cuda.device_count()} visible")
    saved = {k: os.environ.get(k) for k in _TORCHRUN_VARS}
    try:
        torch.multiprocessing.spawn(_child, args=(processes, free_port(), backend_device, threads, main, args),
                                    nprocs=processes, join=True, start_method="spawn")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return None


def run_rule(main: Callable, smk: Any, device: str | torch.device = "cpu") -> Any:
    """:func:`run` for a Snakemake ``script:``: ``main(smk)`` in ``processes_of(smk.resources)``
    processes, each with ``max(1, smk.threads // K)`` torch threads.

    Raises:
        as :func:`processes_of` and :func:`run`.
    """
    k = processes_of(getattr(smk, "resources", None))
    threads = max(1, int(getattr(smk, "threads", 1)) // k) if k > 1 else None
    return run(main, smk, processes=k, device=device, threads=threads)
