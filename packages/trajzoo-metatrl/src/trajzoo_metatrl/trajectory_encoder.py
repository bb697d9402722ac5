"""Knowledge-fusion trajectory encoder of MetaTRL (paper eqs. 15-18).

Input (eq. 15): x_i = h_{road_i} + T_i + pe_i, with pe a fixed sinusoidal position encoding and
a learned [MASK] road vector in place of h at span-masked positions.

Each layer (eqs. 16-18), for the layer input H:
X^private = MLP^private(H), X^shared = MLP^shared(H);
Q = X^shared W_Q^shared, K = X^shared W_K^shared, V = X^private W_V^private;
multi-head softmax(Q K^T / sqrt(d_head)) V over the real (non-padded) keys (eq. 18), output
projection, residual + LayerNorm, feed-forward block (d -> ffn_dim -> d, ReLU), residual +
LayerNorm. The paper writes sqrt(d) for a single head; with several heads each head is scaled by
sqrt(d / n_heads), the usual multi-head convention.

The views, W_Q, W_K (shared) and W_V (private) are classified by the paper. The output
projection, the layer norms, the feed-forward block and the [MASK] road vector are not; they
are shared unless ``unclassified_shared`` is False, and their attribute names carry the chosen
side (``shared_out`` / ``private_out``, ...; :mod:`trajzoo_metatrl.parameters`).

The ablation ``use_knowledge_fusion=False`` is a plain post-LayerNorm Transformer encoder whose
Q, K, V all come from H through private projections.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.nn.attention import attention_weights, split_heads
from trajzoo.nn.checkpointing import apply_dropout, dropout_keep_mask, maybe_checkpoint
from trajzoo.nn.mlp import MLP
from trajzoo.nn.positional import sinusoidal_position_encoding

from .parameters import side_prefix


class KnowledgeFusionLayer(nn.Module):
    """One knowledge-fusion Transformer layer (MetaTRL eqs. 16-18), or a plain one.

    Attributes (knowledge fusion): ``private_view`` / ``shared_view`` (MLPs of eq. 16),
    ``shared_w_q``, ``shared_w_k``, ``private_w_v`` (eq. 17); ``out`` (output projection),
    ``norm1``, ``ffn``, ``norm2``, registered as ``<side>out``, ``<side>norm1``, ... with
    ``<side>`` = ``shared_`` or ``private_`` per ``unclassified_shared``. Plain (ablation):
    ``private_w_q``, ``private_w_k``, ``private_w_v`` applied directly to H, the rest as above.

    Args:
        d_model: model size d (divisible by ``n_heads``).
        n_heads: number of attention heads.
        ffn_dim: hidden size of the feed-forward block.
        dropout: dropout on attention weights and on both residual branches.
        use_knowledge_fusion: False for the plain Transformer layer.
        unclassified_shared: side of the output projection, layer norms and feed-forward block
            (not classified by the paper): True = shared (default), False = private.

    Raises:
        ValueError: if ``d_model`` is not divisible by ``n_heads`` or a size is not positive.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        use_knowledge_fusion: bool = True,
        unclassified_shared: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.activation_checkpointing = activation_checkpointing
        if d_model <= 0 or n_heads <= 0 or ffn_dim <= 0:
            raise ValueError(f"sizes must be positive, got d={d_model}, heads={n_heads}, ffn={ffn_dim}")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.use_knowledge_fusion = use_knowledge_fusion
        if use_knowledge_fusion:
            self.private_view = MLP(d_model, d_model, d_model)
            self.shared_view = MLP(d_model, d_model, d_model)
            self.shared_w_q = nn.Linear(d_model, d_model)
            self.shared_w_k = nn.Linear(d_model, d_model)
        else:
            self.private_w_q = nn.Linear(d_model, d_model)
            self.private_w_k = nn.Linear(d_model, d_model)
        self.private_w_v = nn.Linear(d_model, d_model)
        self._side = side_prefix(unclassified_shared)
        self.add_module(self._side + "out", nn.Linear(d_model, d_model))
        self.add_module(self._side + "norm1", nn.LayerNorm(d_model))
        self.add_module(self._side + "ffn", nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(),
                                                          nn.Linear(ffn_dim, d_model)))
        self.add_module(self._side + "norm2", nn.LayerNorm(d_model))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @property
    def out(self) -> nn.Linear:
        """Output projection of the attention (not classified by the paper)."""
        return getattr(self, self._side + "out")

    @property
    def norm1(self) -> nn.LayerNorm:
        """LayerNorm after the attention residual (not classified by the paper)."""
        return getattr(self, self._side + "norm1")

    @property
    def ffn(self) -> nn.Sequential:
        """Feed-forward block d -> ffn_dim -> d (not classified by the paper)."""
        return getattr(self, self._side + "ffn")

    @property
    def norm2(self) -> nn.LayerNorm:
        """LayerNorm after the feed-forward residual (not classified by the paper)."""
        return getattr(self, self._side + "norm2")

    def reset_parameters(self) -> None:
        """Xavier-uniform projections with zero bias; default init for MLPs, FFN and LayerNorms."""
        projections = [self.private_w_v, self.out]
        if self.use_knowledge_fusion:
            projections += [self.shared_w_q, self.shared_w_k]
            self.private_view.reset_parameters()
            self.shared_view.reset_parameters()
        else:
            projections += [self.private_w_q, self.private_w_k]
        for linear in projections:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        for module in (self.norm1, self.norm2, self.ffn[0], self.ffn[2]):
            module.reset_parameters()

    def _query_key_value(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K, V of eq. 17 split into heads, each ``(B, heads, L, d / heads)``."""
        if self.use_knowledge_fusion:
            x_shared = self.shared_view(h)  # eq. 16
            x_private = self.private_view(h)
            q, k, v = self.shared_w_q(x_shared), self.shared_w_k(x_shared), self.private_w_v(x_private)
        else:
            q, k, v = self.private_w_q(h), self.private_w_k(h), self.private_w_v(h)
        return split_heads(q, self.n_heads), split_heads(k, self.n_heads), split_heads(v, self.n_heads)

    @staticmethod
    def _softmax_scores(q: Tensor, k: Tensor, padding_mask: Tensor) -> Tensor:
        # padded keys get the lowest finite score (not -inf), as in the original implementation
        return attention_weights(q, k, padding_mask, fill_value=torch.finfo(q.dtype).min)  # (B, heads, L, L)

    def attention_weights(self, h: Tensor, padding_mask: Tensor) -> Tensor:
        """The attention matrix softmax(Q K^T / sqrt(d_head)) of eq. 18 (before dropout).

        Args:
            h: ``(B, L, d)`` layer input H.
            padding_mask: ``(B, L)`` bool, True at padded positions.

        Returns:
            ``(B, heads, L, L)``; row i sums to 1 over the real keys, 0 on padded keys.
        """
        q, k, _ = self._query_key_value(h)
        return self._softmax_scores(q, k, padding_mask)

    def forward(self, h: Tensor, padding_mask: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            h: ``(B, L, d)`` layer input H.
            padding_mask: ``(B, L)`` bool, True at padded positions (never attended to).

        Returns:
            ``(B, L, d)`` layer output.

        The three dropout masks (attention weights, then both residual branches) are drawn first,
        in the order the computation uses them, and the layer runs under activation checkpointing
        when ``activation_checkpointing`` and training (:mod:`trajzoo.nn.checkpointing`: the same
        values and gradients, bit for bit, with less memory and one more forward computation).
        """
        b, length, _ = h.shape
        p, training = self.dropout.p, self.training
        keep_attention = dropout_keep_mask((b, self.n_heads, length, length), p, training, h.device)
        keep_attention_out = dropout_keep_mask(h.shape, p, training, h.device)
        keep_ffn_out = dropout_keep_mask(h.shape, p, training, h.device)
        return maybe_checkpoint(self._forward, h, padding_mask, keep_attention, keep_attention_out, keep_ffn_out,
                                enabled=self.activation_checkpointing and training)

    def _forward(self, h: Tensor, padding_mask: Tensor, keep_attention: Tensor | None,
                 keep_attention_out: Tensor | None, keep_ffn_out: Tensor | None) -> Tensor:
        """The layer with its drawn dropout masks (None = no dropout): eq. 18's attention, then
        ``H = LN(H + Drop(out(context)))``, ``H = LN(H + Drop(FFN(H)))``."""
        p = self.dropout.p
        q, k, v = self._query_key_value(h)
        attention = apply_dropout(self._softmax_scores(q, k, padding_mask), keep_attention, p)  # eq. 18
        context = (attention @ v).transpose(1, 2).reshape(h.shape)
        h = self.norm1(h + apply_dropout(self.out(context), keep_attention_out, p))
        return self.norm2(h + apply_dropout(self.ffn(h), keep_ffn_out, p))


class KnowledgeFusionTrajectoryEncoder(nn.Module):
    """Stack of :class:`KnowledgeFusionLayer` plus the input embedding of eq. 15.

    Attributes:
        road_mask_token: ``(d,)`` learned [MASK] road vector, registered as
            ``shared_road_mask_token`` or ``private_road_mask_token`` (``unclassified_shared``).
        layers: the ``n_layers`` :class:`KnowledgeFusionLayer` (the container is neither shared
            nor private; each layer classifies its own parameters by attribute name, and the
            plain ablation's layers have only private ones).

    Args:
        d_model: model size d.
        n_layers: number of layers (>= 1).
        n_heads: attention heads per layer.
        ffn_dim: feed-forward hidden size.
        dropout: dropout probability (default 0).
        use_knowledge_fusion: False for a plain Transformer encoder (ablation).
        unclassified_shared: side of the components the paper does not classify (see
            :class:`KnowledgeFusionLayer`) and of the [MASK] road vector.
        activation_checkpointing: in training, each layer under activation checkpointing
            (:meth:`KnowledgeFusionLayer.forward`).

    Raises:
        ValueError: on invalid sizes (see :class:`KnowledgeFusionLayer`) or ``n_layers < 1``.
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int = 2,
        n_heads: int = 4,
        ffn_dim: int = 128,
        dropout: float = 0.0,
        use_knowledge_fusion: bool = True,
        unclassified_shared: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.d_model = d_model
        self._mask_token_name = side_prefix(unclassified_shared) + "road_mask_token"
        self.register_parameter(self._mask_token_name, nn.Parameter(torch.empty(d_model)))
        self.layers = nn.ModuleList(
            KnowledgeFusionLayer(d_model, n_heads, ffn_dim, dropout, use_knowledge_fusion, unclassified_shared,
                                 activation_checkpointing)
            for _ in range(n_layers)
        )
        self.reset_parameters()

    @property
    def road_mask_token(self) -> nn.Parameter:
        """The ``(d,)`` [MASK] road vector of span-masked positions."""
        return getattr(self, self._mask_token_name)

    def reset_parameters(self) -> None:
        """[MASK] vector ~ N(0, 0.02^2); every layer re-initialised."""
        nn.init.normal_(self.road_mask_token, std=0.02)
        for layer in self.layers:
            layer.reset_parameters()

    def embed_inputs(
        self,
        road_embeddings: Tensor,
        roads: Tensor,
        time_embeddings: Tensor,
        road_mask: Tensor | None = None,
    ) -> Tensor:
        """Build X of eq. 15: x_i = h_{road_i} + T_i + pe_i.

        Args:
            road_embeddings: ``(N, d)`` road encoder output h.
            roads: ``(B, L)`` int64 segment ids in ``[0, N)``.
            time_embeddings: ``(B, L, d)`` temporal encoder output T.
            road_mask: optional ``(B, L)`` bool, True where the road is masked (the [MASK]
                vector replaces h there, so the true id has no influence).

        Returns:
            ``(B, L, d)`` input X.

        Raises:
            ValueError: if ``road_mask`` does not have the shape of ``roads``.
        """
        h = road_embeddings[roads]  # (B, L, d)
        if road_mask is not None:
            if road_mask.shape != roads.shape:
                raise ValueError(f"road_mask has shape {tuple(road_mask.shape)}, roads {tuple(roads.shape)}")
            h = torch.where(road_mask.unsqueeze(-1), self.road_mask_token.expand_as(h), h)
        pe = sinusoidal_position_encoding(roads.shape[1], self.d_model, device=roads.device).to(h.dtype)
        return h + time_embeddings + pe

    def forward(self, x: Tensor, padding_mask: Tensor) -> Tensor:
        """Encode a padded batch.

        Args:
            x: ``(B, L, d)`` input X (see :meth:`embed_inputs`).
            padding_mask: ``(B, L)`` bool, True at padded positions; padded positions never
                influence real ones.

        Returns:
            ``(B, L, d)`` Z, zero at padded positions.

        Raises:
            ValueError: if the shapes of ``x`` and ``padding_mask`` disagree.
        """
        if x.dim() != 3 or x.shape[:2] != padding_mask.shape or x.shape[2] != self.d_model:
            raise ValueError(f"x {tuple(x.shape)} and padding_mask {tuple(padding_mask.shape)} disagree")
        z = x
        for layer in self.layers:
            z = layer(z, padding_mask)
        return z.masked_fill(padding_mask.unsqueeze(-1), 0.0)
