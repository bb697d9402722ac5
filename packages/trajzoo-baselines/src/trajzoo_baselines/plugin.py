"""Entry points of the baseline models (group ``trajzoo.models``): ``transformer-mlm``,
``start`` and ``node2vec``, all road-sequence models (:class:`trajzoo.plugins.RoadModelPlugin`)
with the settings ``untrained`` and ``in-city``.

``pretrain_road(target, sources, section, context)`` takes ``section = {"hparams": model config,
"pretrain": schedule}``; every baseline is single-city (no source settings). What used to be the
``random`` baseline is the ``untrained`` setting of every model.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from trajzoo.plugins import RoadModelPlugin

from .config import TransformerMLMConfig, TransformerMLMSchedule
from .node2vec import Node2VecConfig, Node2VecSchedule
from .start.config import STARTConfig, STARTSchedule

if TYPE_CHECKING:  # models, training and torch are imported where they are used: building the DAG needs none
    from torch import nn


class TransformerMLMPlugin(RoadModelPlugin):
    """``transformer-mlm``: BERT-style road-id Transformer with masked-road pretraining
    (:mod:`trajzoo_baselines.transformer_mlm`)."""

    name = "transformer-mlm"
    hparams_cls = TransformerMLMConfig
    schedule_cls = TransformerMLMSchedule

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`TransformerMLMEncoder` for ``graph`` (uses N only).

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        from .transformer_mlm import TransformerMLMEncoder
        return TransformerMLMEncoder(graph.num_segments, TransformerMLMConfig.from_dict(hparams))

    def pretrain_road(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """Masked-road pretraining on the target city's train split
        (:func:`trajzoo_baselines.training.pretrain_single_city`); returns the encoder.

        Raises:
            ValueError: unknown hparam/schedule keys, or an empty train split.
        """
        from .training import pretrain_single_city
        from .transformer_mlm import TransformerMLMPretrainer
        config = TransformerMLMConfig.from_dict(hparams.get("hparams", {}))
        schedule = TransformerMLMSchedule.from_dict(hparams.get("pretrain", {}))
        model = TransformerMLMPretrainer(target.graph.num_segments, config)
        return pretrain_single_city(model, self.name, config, schedule, target, sources, context).encoder


class STARTPlugin(RoadModelPlugin):
    """``start``: START (Jiang et al., ICDE 2023): TPE-GAT + TAT-Enc, span-masked recovery and
    contrastive pretraining (:mod:`trajzoo_baselines.start`)."""

    name = "start"
    hparams_cls = STARTConfig
    schedule_cls = STARTSchedule

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`STARTEncoder` for ``graph`` (N segments, F_u attributes).

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        from .start.model import STARTEncoder
        return STARTEncoder(graph.num_segments, int(graph.attributes.shape[1]), STARTConfig.from_dict(hparams))

    def pretrain_road(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """START pretraining on the target city's train split
        (:func:`trajzoo_baselines.training.pretrain_single_city`); returns the encoder.

        Raises:
            ValueError: unknown hparam/schedule keys, or an empty train split.
        """
        from .start.objective import STARTPretrainer
        from .training import pretrain_single_city
        config = STARTConfig.from_dict(hparams.get("hparams", {}))
        schedule = STARTSchedule.from_dict(hparams.get("pretrain", {}))
        model = STARTPretrainer(target.graph.num_segments, int(target.graph.attributes.shape[1]), config)
        return pretrain_single_city(model, self.name, config, schedule, target, sources, context).encoder


class Node2VecPlugin(RoadModelPlugin):
    """``node2vec``: node2vec road-segment embeddings (Grover & Leskovec, KDD 2016; biased walks
    on the directed segment graph + gensim skip-gram, :mod:`trajzoo_baselines.node2vec`) as the
    initial road table of the ``transformer-mlm`` sequence encoder, which is then fine-tuned
    like every model (road table trainable). Not PyG's ``Node2Vec``: it needs ``pyg-lib``,
    which is not installable here (see the module docstring)."""

    name = "node2vec"
    hparams_cls = Node2VecConfig
    schedule_cls = Node2VecSchedule

    def build_encoder(self, graph, hparams: dict) -> nn.Module:
        """A fresh :class:`TransformerMLMEncoder` for ``graph`` (uses N only) from
        :class:`Node2VecConfig` ``hparams``; its road table ``(N + 1, d)`` is random
        (``normal(0, 0.02)`` from the global torch RNG) until :meth:`pretrain` fills it.

        Raises:
            ValueError: an unknown or out-of-range hparam.
        """
        from .transformer_mlm import TransformerMLMEncoder
        return TransformerMLMEncoder(graph.num_segments, Node2VecConfig.from_dict(hparams).transformer_config())

    def pretrain_road(self, target, sources: list, hparams: dict, context) -> nn.Module:
        """Compute node2vec embeddings of the target city's road graph (no trips are read, so
        no validation loss) and copy them into a fresh encoder's road table.

        The encoder is built first (random weights from the caller-seeded global torch RNG);
        walks use ``numpy.random.default_rng(context.seed)`` and gensim ``seed=context.seed``, so
        the same seed gives the same encoder. Rows of segments never visited by a walk of >= 2
        segments keep their random initialisation (their count is logged). Appends one history
        row ``{"phase": "pretrain:<city>", "epoch": 0, "train_loss": skip-gram loss per centre
        token (nats), "val_loss": NaN}``; writes no checkpoint (one short, deterministic step).

        Args:
            target: the city whose ``graph`` (N segments, ``edge_index``) is embedded.
            sources: ignored (logged): node2vec is a single-city baseline.
            hparams: ``{"hparams": Node2VecConfig fields, "pretrain": Node2VecSchedule fields}``.
            context: :class:`trajzoo.training.loop.RunContext` (device, seed, logger, history).

        Returns:
            The :class:`TransformerMLMEncoder` on ``context.device``, in eval mode.

        Raises:
            ValueError: unknown hparam/schedule keys or values out of range, a malformed or
                edgeless road graph, or a seed outside ``[0, 2**32)``.
        """
        import torch

        from .node2vec import node2vec_embeddings
        config = Node2VecConfig.from_dict(hparams.get("hparams", {}))
        schedule = Node2VecSchedule.from_dict(hparams.get("pretrain", {}))
        if sources:
            context.logger.info("node2vec is a single-city baseline: ignoring source cities %s",
                                [s.name for s in sources])
        graph = target.graph
        encoder = self.build_encoder(graph, hparams.get("hparams", {}))
        context.logger.info("node2vec: %s, %d segments, %d edges; %d walks per segment of up to %d segments, "
                            "p=%g, q=%g; gensim skip-gram d=%d, window %d, %d negatives, %d epoch(s), seed %d",
                            target.name,
                            graph.num_segments, int(graph.edge_index.shape[1]), schedule.walks_per_node,
                            schedule.walk_length, schedule.p, schedule.q, config.d_model, schedule.context_size,
                            schedule.num_negative_samples, schedule.epochs, context.seed)
        emb = node2vec_embeddings(graph.edge_index, graph.num_segments, config.d_model, schedule, context.seed)
        visited = torch.from_numpy(emb.visited)
        with torch.no_grad():
            table = encoder.road_embedding.weight
            table[:graph.num_segments][visited] = torch.from_numpy(emb.vectors[emb.visited]).to(table.dtype)
        unvisited = int((~visited).sum())
        context.logger.info("node2vec: %d walks (%d stopped at a dead end), %d walks / %d tokens trained, "
                            "skip-gram loss %.4f per centre token, %.1f s", emb.num_walks, emb.dead_end_walks,
                            emb.num_sentences, emb.num_tokens, emb.train_loss, emb.seconds)
        context.logger.info("node2vec: road table initialised from node2vec for %d of %d segments; %d never visited "
                            "by a walk keep their random initialisation; mean node2vec vector norm %.3f",
                            graph.num_segments - unvisited, graph.num_segments, unvisited,
                            float(np.linalg.norm(emb.vectors[emb.visited], axis=1).mean()))
        context.history.append({"phase": f"pretrain:{target.name}", "epoch": 0, "train_loss": emb.train_loss,
                                "val_loss": math.nan})
        return encoder.to(context.device).eval()
