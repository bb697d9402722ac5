"""Per-epoch checkpoints that a killed run resumes from.

A checkpoint is written atomically (temporary file + rename) and carries a fingerprint of what
defines the run (hyperparameters, schedule, seed, data sizes). A run resumes only from a
checkpoint with its own fingerprint, so a changed config never continues an old run. Besides the
caller's state (models, optimisers, generators, history), every checkpoint stores the global
torch, NumPy and Python RNG states, restored on resume, so a resumed run reaches the same
numbers as an uninterrupted one.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import torch

from trajzoo.training.loop import atomic_save, load_checkpoint


class CheckpointStore:
    """Checkpoints ``<phase>-epoch-<k>.pt`` in one folder, for one run fingerprint.

    Args:
        folder: where checkpoints live (created on the first save).
        fingerprint: digest of the run's definition (e.g. :func:`trajzoo.runlog.config_digest`).
        keep_last_only: delete a phase's older checkpoints after each save (fine-tuning keeps
            only the latest; pretraining keeps every epoch).
    """

    def __init__(self, folder: Path | str, fingerprint: str, keep_last_only: bool = False):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.keep_last_only = keep_last_only

    def path(self, phase: str, epoch: int) -> Path:
        """File of ``phase`` at ``epoch``."""
        return self.folder / f"{phase}-epoch-{epoch:03d}.pt"

    def save(self, phase: str, epoch: int, state: dict) -> Path:
        """Atomically write ``state`` (tensors, numbers, strings, lists, dicts) plus the
        fingerprint and the global RNG states."""
        payload = dict(state)
        py_state = random.getstate()
        np_state = np.random.get_state()
        payload.update(
            fingerprint=self.fingerprint, phase=phase, epoch=int(epoch),
            torch_rng=torch.get_rng_state(),
            python_rng=[py_state[0], list(py_state[1]), py_state[2]],
            numpy_rng=[np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                       int(np_state[3]), float(np_state[4])],
        )
        target = self.path(phase, epoch)
        atomic_save(payload, target)
        if self.keep_last_only:
            for old in self._files(phase):
                if old[0] < epoch:
                    old[1].unlink(missing_ok=True)
        return target

    def _files(self, phase: str) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        pattern = re.compile(rf"^{re.escape(phase)}-epoch-(\d+)\.pt$")
        found = []
        for p in self.folder.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self, phase: str, device: torch.device | str = "cpu") -> dict | None:
        """The newest checkpoint of ``phase`` with this run's fingerprint, or None. Checkpoints
        of another fingerprint are ignored. Call :meth:`restore_rng` once the models are rebuilt."""
        for epoch, path in reversed(self._files(phase)):
            state = load_checkpoint(path, device)
            if state.get("fingerprint") == self.fingerprint:
                return state
        return None

    @classmethod
    def resume_training(cls, state: dict, model, optimizer, generator, history: list) -> int:
        """Load a checkpoint saved with keys ``model``, ``optimizer``, ``generator``, ``history``
        into the live objects (``history`` is replaced in place; ``generator`` may be None when
        the run has none), restore the global RNGs, and return the epoch to continue with (the
        checkpoint's epoch + 1). Used by :meth:`trajzoo.training.engine.Trainer.fit`."""
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if generator is not None:
            generator.set_state(state["generator"])
        history[:] = state["history"]
        cls.restore_rng(state)
        return state["epoch"] + 1

    @staticmethod
    def restore_rng(state: dict) -> None:
        """Put the global torch, Python and NumPy RNGs back where the checkpoint left them."""
        torch.set_rng_state(state["torch_rng"].cpu())
        version, key, pos = state["python_rng"]
        random.setstate((version, tuple(key), pos))
        name, keys, pos, has_gauss, gauss = state["numpy_rng"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
