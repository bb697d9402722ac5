"""MoCo-style queue of location embeddings (TrajGANR section 3.3; He et al., CVPR 2020, "MoCo"):
the negatives of the two location terms of eq. 7 are drawn from a FIFO queue of embeddings of
random and trajectory locations. Entries are detached; the oldest are overwritten first. Each
entry keeps the id of its location (-1 for a random location) so that an anchor's own
location is never one of its negatives."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LocationQueue(nn.Module):
    """A FIFO ring buffer of ``size`` embeddings of width ``d``.

    Buffers: ``embeddings`` ``(size, d)``, ``location_ids`` ``(size,)`` int64, ``ptr`` (next
    slot), ``count`` (filled slots).

    Raises:
        ValueError: size or d < 1.
    """

    def __init__(self, size: int, d: int):
        super().__init__()
        if size < 1 or d < 1:
            raise ValueError(f"LocationQueue needs size >= 1 and d >= 1, got {size}, {d}")
        self.register_buffer("embeddings", torch.zeros(size, d))
        self.register_buffer("location_ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        """Capacity."""
        return int(self.embeddings.shape[0])

    @torch.no_grad()
    def enqueue(self, emb: Tensor, location_ids: Tensor) -> None:
        """Append ``(n, d)`` embeddings (detached) with their ``(n,)`` location ids in order,
        overwriting the oldest entries once full (only the last ``size`` are kept when n > size)."""
        emb, location_ids = emb.detach(), location_ids.detach().long()
        if len(emb) > self.size:
            emb, location_ids = emb[-self.size:], location_ids[-self.size:]
        n = len(emb)
        slots = (self.ptr + torch.arange(n, device=emb.device)) % self.size
        self.embeddings[slots] = emb.to(self.embeddings.dtype)
        self.location_ids[slots] = location_ids
        self.ptr.fill_(int((self.ptr + n) % self.size))
        self.count.fill_(min(self.size, int(self.count) + n))

    def contents(self) -> tuple[Tensor, Tensor]:
        """``(m, d)`` embeddings and ``(m,)`` ids of the filled slots, oldest first."""
        m = int(self.count)
        if m < self.size:
            return self.embeddings[:m], self.location_ids[:m]
        order = (self.ptr + torch.arange(self.size, device=self.embeddings.device)) % self.size
        return self.embeddings[order], self.location_ids[order]
