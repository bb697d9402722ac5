"""SC-MoE: Spatial-Context Mixture of Experts with noisy top-k gating and load balancing.

Source: TransferTraj paper, section "Region-Transferable Trajectory Encoder / SC-MoE"; noisy
top-k gating from Shazeer et al. 2017 ("Outrageously large neural networks", eqs. 3-5); the
load-balancing term from Fedus et al. 2022 (Switch Transformer, eq. 4), generalised to top-k.

Each point token ``h_i`` is processed by C expert feed-forward networks
``E_c(h) = W2_c GELU(W1_c h + b1_c) + b2_c`` and combined as ``y_i = sum_c g_ic E_c(h_i)``.

Gate (the paper's router, on the token): the gate reads the point's hidden representation
``h_i`` (d,), the LayerNormed input of the block's feed-forward part, which carries the point's
spatial context (the POI and road modality tokens fused by modality mixing, then attention over
the trajectory), not a handful of raw scalars. Clean logits ``l_i = W_g h_i`` (C,) (Shazeer
eq. 4; with ``hidden > 0`` a one-hidden-layer GELU MLP instead) and, during training, noise
``l~_i = l_i + gate_noise * eps * softplus(W_n h_i + b_n)``, eps ~ N(0, 1) (Shazeer eq. 4; the
global torch RNG, so seeded runs repeat; under data parallelism drawn for the global batch's
points, so K processes draw what one does). ``TopK`` keeps the k largest ``l~_ic``; ``g_i`` is the
softmax over those k (0 for the others; Shazeer eq. 3-5: ``G(h) = Softmax(KeepTopK(H(h), k))``),
so exactly k experts are active per point. At evaluation no noise is added.

Load balancing (the reference code has none; expert collapse is its known failure)::

    LB = C * sum_c f_c P_c,   f_c = (# real points routed to c) / (k N),   P_c = mean_i softmax(l~_i)_c

f is the fraction of routing slots expert c receives (sums to 1), P the mean router probability
(sums to 1, differentiable). LB = 1 for perfectly uniform routing and rises to C / k when every
point is routed to the same k experts with concentrated probabilities (C / k = 2 for C = 8,
k = 4). The model adds ``load_balance_weight * mean over blocks of LB`` to the loss.

Expert usage: per forward, ``last_usage`` (C,) counts the real points routed to each expert
(sums to k N); ``usage_totals`` accumulates them until :meth:`SCMoE.reset_usage`.

Dispatch: ``"dense"`` runs every expert on every point with two plain matrix products over the
concatenated experts (``h [W1_1 ... W1_C]`` then ``[g_1 u_1 ... g_C u_C] [W2_1; ...; W2_C]``, the
gate weights folded in, so points get 0 from their inactive experts); ``"sparse"``
sorts the N k routing slots by expert and runs each expert on its contiguous chunk (a loop over
the C experts; gathers whose backward passes are gathers too). Both give the same numbers up to
rounding; sparse does k / C of the expert work and avoids (N, C f) temporaries, and is the faster
one on CPU here (see the package README for measurements).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

def load_balance_loss(probs: Tensor, topk_idx: Tensor, n_experts: int) -> Tensor:
    """Switch-style load-balancing term generalised to top-k (see the module docstring).

    Args:
        probs: ``(N, C)`` router probabilities of N real points (rows sum to 1).
        topk_idx: ``(N, k)`` long indices of the chosen experts.
        n_experts: C.

    Returns:
        scalar ``C * sum_c f_c P_c``: 1 when routing is uniform, up to C / k when collapsed;
        0 (graph-connected) when N = 0.

    Data parallelism (during a sharded training step, :func:`trajzoo.training.distributed.batch_view`):
    the N points are this process's share of the global batch's N' points; f is the global
    batch's (its routing counts and N' all-reduced, no gradient) and the result is this
    process's share ``C * sum_c f_c (sum_{i in share} p_ic) / N'``, so the processes' shares sum
    to the term of the whole global batch and so do their gradients.
    """
    from trajzoo.training.distributed import batch_view, sum_tensor_over_processes, world

    n, k = topk_idx.shape
    counts = torch.bincount(topk_idx.reshape(-1), minlength=n_experts).to(probs.dtype)
    if batch_view() is not None and world()[1] > 1:  # every process reaches this collective
        totals = sum_tensor_over_processes(torch.cat([counts, counts.new_tensor([float(n)])]))
        n_global = float(totals[-1])
        if n_global == 0:
            return probs.sum() * 0.0
        f = totals[:-1] / (k * n_global)
        return n_experts * (f * probs.sum(dim=0)).sum() / n_global
    if n == 0:
        return probs.sum() * 0.0
    f = counts / (k * n)
    p = probs.mean(dim=0)
    return n_experts * (f * p).sum()


class _PermuteRows(torch.autograd.Function):
    """``x[perm]`` for a permutation, whose backward is the gather ``g[inverse]`` (no scatter-add)."""

    @staticmethod
    def forward(ctx, x: Tensor, perm: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, perm)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


class _DispatchRows(torch.autograd.Function):
    """Rows of ``h`` (N, d) copied to the N k routing slots sorted by expert:
    ``out[j] = h[order[j] // k]``; backward unsorts with ``inverse`` and sums each point's k slots."""

    @staticmethod
    def forward(ctx, h: Tensor, order: Tensor, inverse: Tensor, k: int) -> Tensor:
        ctx.save_for_backward(inverse)
        ctx.k = k
        return h.index_select(0, torch.div(order, k, rounding_mode="floor"))

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse,) = ctx.saved_tensors
        g = grad.index_select(0, inverse)
        return g.view(-1, ctx.k, g.shape[-1]).sum(dim=1), None, None, None


def _noise_like(logits: Tensor) -> Tensor:
    """eps ~ N(0, 1) of ``logits``' shape from the global torch RNG: ``torch.randn_like``, or,
    during a sharded training step under data parallelism, this process's rows of one draw for the
    global batch's points (:func:`trajzoo.training.distributed.global_randn_rows`: the points of
    the shares in rank order are the global batch's, so the noise is one process's)."""
    from trajzoo.training.distributed import batch_view, global_randn_rows, world

    if batch_view() is not None and world()[1] > 1:
        return global_randn_rows(logits.shape[0], *logits.shape[1:], dtype=logits.dtype, device=logits.device)
    return torch.randn_like(logits)


class NoisyTopKGate(nn.Module):
    """Noisy top-k router over C experts reading the point token (Shazeer 2017 eqs. 3-5).

    Args:
        d_model: d, size of the token the gate reads.
        experts: C. top_k: k. hidden: 0 = linear router ``W_g h`` (the paper's / Shazeer's);
            > 0 = hidden size of a GELU MLP router. noise: noise scale during training.

    Raises:
        ValueError: not ``1 <= top_k <= experts``.
    """

    def __init__(self, d_model: int, experts: int, top_k: int, hidden: int = 0, noise: float = 1.0) -> None:
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"need 1 <= top_k <= experts, got top_k={top_k}, experts={experts}")
        self.d_model, self.experts, self.top_k, self.noise = d_model, experts, top_k, float(noise)
        self.router = (nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, experts)) if hidden
                       else nn.Linear(d_model, experts, bias=False))
        self.noise_proj = nn.Linear(d_model, experts)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default init of the router; zero noise projection (noise std ``softplus(0)`` at start)."""
        for m in self.router.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        nn.init.zeros_(self.noise_proj.weight)
        nn.init.zeros_(self.noise_proj.bias)

    def logits(self, h: Tensor) -> Tensor:
        """Clean router logits ``(N, C)`` of ``(N, d)`` tokens."""
        return self.router(h)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Route N points.

        Args:
            h: ``(N, d)`` point tokens.

        Returns:
            ``(gates, topk_idx, probs)``: gates ``(N, C)`` with exactly k non-zero entries per row
            (softmax over the kept logits, rows sum to 1); topk_idx ``(N, k)`` long; probs ``(N, C)``
            softmax of the (noisy, in training) logits over all C experts.
        """
        logits = self.logits(h)
        if self.training and self.noise > 0:
            std = F.softplus(self.noise_proj(h)) * self.noise
            logits = logits + _noise_like(logits) * std
        top_val, top_idx = logits.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(logits).scatter(-1, top_idx, torch.softmax(top_val, dim=-1))
        return gates, top_idx, torch.softmax(logits, dim=-1)


class FeedForward(nn.Module):
    """One FFN ``W2 GELU(W1 h + b1) + b2`` (the ``use_moe=False`` ablation). ``(N, d) -> (N, d)``."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model))

    def reset_parameters(self) -> None:
        """Default init."""
        self.net[0].reset_parameters()
        self.net[3].reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        """``(N, d) -> (N, d)``."""
        return self.net(h)


class SCMoE(nn.Module):
    """Spatial-context mixture of C expert FFNs with noisy top-k gating (see module docstring).

    Args:
        d_model: d. ffn_dim: hidden size f of each expert. experts: C. top_k: k.
        gate_hidden: 0 = linear router, else its MLP hidden size. gate_noise: training noise scale.
        dropout: dropout inside the experts. dispatch: ``"dense"`` or ``"sparse"``.

    Attributes:
        last_load_balance: scalar tensor LB of the last forward (graph-connected in training).
        last_usage: ``(C,)`` long, points routed to each expert in the last forward.
        usage_totals: ``(C,)`` long buffer (not saved), cumulative counts since :meth:`reset_usage`.
    """

    def __init__(self, d_model: int, ffn_dim: int, experts: int = 8, top_k: int = 4, gate_hidden: int = 0,
                 gate_noise: float = 1.0, dropout: float = 0.0, dispatch: str = "dense") -> None:
        super().__init__()
        if dispatch not in ("dense", "sparse"):
            raise ValueError(f"dispatch must be 'dense' or 'sparse', got {dispatch!r}")
        self.d_model, self.ffn_dim, self.experts, self.top_k, self.dispatch = d_model, ffn_dim, experts, top_k, dispatch
        self.gate = NoisyTopKGate(d_model, experts, top_k, gate_hidden, gate_noise)
        self.w1 = nn.Parameter(torch.empty(experts, d_model, ffn_dim))
        self.b1 = nn.Parameter(torch.empty(experts, ffn_dim))
        self.w2 = nn.Parameter(torch.empty(experts, ffn_dim, d_model))
        self.b2 = nn.Parameter(torch.empty(experts, d_model))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("usage_totals", torch.zeros(experts, dtype=torch.long), persistent=False)
        self.last_usage = torch.zeros(experts, dtype=torch.long)
        self.last_load_balance = torch.zeros(())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each expert initialised like ``nn.Linear`` (uniform +-1/sqrt(fan_in)); gate default."""
        for w, b, fan_in in ((self.w1, self.b1, self.d_model), (self.w2, self.b2, self.ffn_dim)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)
        self.gate.reset_parameters()

    def reset_usage(self) -> None:
        """Zero the cumulative expert-usage counts."""
        self.usage_totals.zero_()

    def _dense(self, h: Tensor, gates: Tensor) -> Tensor:
        # y = sum_c g_c (GELU(h W1_c + b1_c) W2_c + b2_c) as two plain GEMMs over the concatenated
        # experts: [g_1 u_1, ..., g_C u_C] (N, C f) @ [W2_1; ...; W2_C] (C f, d) + g @ b2
        n = h.shape[0]
        c, d, f = self.w1.shape
        w1 = self.w1.permute(1, 0, 2).reshape(d, c * f)
        u = F.gelu(torch.addmm(self.b1.reshape(1, c * f), h, w1)).view(n, c, f)
        u = self.dropout(u) * gates.unsqueeze(-1)
        return torch.addmm(gates @ self.b2, u.reshape(n, c * f), self.w2.reshape(c * f, d))

    def _sparse(self, h: Tensor, gates: Tensor, topk_idx: Tensor) -> Tensor:
        # sort the N k routing slots by expert, run each expert on its contiguous chunk, unsort;
        # gathers with gather-only backward passes (no scatter-add), one loop over the C experts
        n, k = topk_idx.shape
        flat = topk_idx.reshape(-1)  # slot s = point s // k, its (s % k)-th expert
        order = torch.argsort(flat, stable=True)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        counts = torch.bincount(flat, minlength=self.experts).tolist()
        x = _DispatchRows.apply(h, order, inverse, k)  # (N k, d) sorted by expert
        ys = []
        for c, chunk in enumerate(x.split(counts)):
            if chunk.shape[0]:
                ys.append(self.dropout(F.gelu(torch.addmm(self.b1[c], chunk, self.w1[c]))) @ self.w2[c] + self.b2[c])
        y = _PermuteRows.apply(torch.cat(ys), inverse, order).view(n, k, -1)  # back to slot order
        return (y * gates.gather(1, topk_idx).unsqueeze(-1)).sum(dim=1)

    def forward(self, h: Tensor) -> Tensor:
        """Mix the experts for N real points; the gate reads the same tokens.

        Args:
            h: ``(N, d)`` point tokens.

        Returns:
            ``(N, d)``. Side effects: sets ``last_load_balance``, ``last_usage``, adds to
            ``usage_totals``.
        """
        gates, topk_idx, probs = self.gate(h)
        self.last_load_balance = load_balance_loss(probs, topk_idx, self.experts)
        usage = torch.bincount(topk_idx.reshape(-1), minlength=self.experts).detach()
        self.last_usage = usage.cpu()
        self.usage_totals += usage.to(self.usage_totals.device)
        if self.dispatch == "dense":
            return self._dense(h, gates)
        return self._sparse(h, gates, topk_idx)
