"""MetaTRL with activation checkpointing (MetaTRLConfig.activation_checkpointing): the
knowledge-fusion layer with its dropout masks drawn first equals the layer written with torch's
dropout in place, bit for bit; pretraining with checkpointing gives the same weights and losses
bit for bit, while keeping far fewer activations for the backward pass."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from metatrl_toy import ATTRIBUTE_DIM, NUM_SEGMENTS, build_batch, build_graph
from checkpointing_support import assert_same_training, saved_bytes, train_steps
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.trajectory_encoder import KnowledgeFusionLayer

CONFIG = MetaTRLConfig(d_model=16, heads=2, ffn_dim=32, num_buckets=8, gat_layers=1, layers=2, dropout=0.2)


def _reference_layer(layer: KnowledgeFusionLayer, h, pad):
    """Eqs. 16-18 with torch's dropout where each is used (attention weights, then both residual
    branches)."""
    p = layer.dropout.p
    q, k, v = layer._query_key_value(h)
    attention = F.dropout(layer._softmax_scores(q, k, pad), p, True)
    context = (attention @ v).transpose(1, 2).reshape(h.shape)
    h = layer.norm1(h + F.dropout(layer.out(context), p, True))
    return layer.norm2(h + F.dropout(layer.ffn(h), p, True))


@pytest.mark.parametrize("fusion", [True, False])
def test_layer_with_drawn_masks_equals_torch_dropout_in_place(fusion):
    torch.manual_seed(0)
    layer = KnowledgeFusionLayer(16, 2, 32, dropout=0.2, use_knowledge_fusion=fusion).train()
    h = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    for checkpointing in (False, True):
        layer.activation_checkpointing = checkpointing
        torch.manual_seed(11)
        got = layer(h, pad)
        torch.manual_seed(11)
        assert torch.equal(got, _reference_layer(layer, h, pad))


def _train(checkpointing: bool):
    return train_steps(lambda: MetaTRLPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, replace(CONFIG, activation_checkpointing=checkpointing)),
                       build_graph(), build_batch([12, 9, 7, 5, 4, 3]), optimizer=torch.optim.Adam)


def test_pretraining_with_checkpointing_is_bit_identical():
    plain = _train(False)
    assert_same_training(plain, _train(True))
    plain_state = plain[0]
    torch.manual_seed(0)
    init = MetaTRLPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, CONFIG).state_dict()
    moved = [k for k in init if not torch.equal(init[k], plain_state[k])]
    assert any(".layers.0." in k for k in moved)  # the layers trained, so equality is not trivial


def _saved_bytes(checkpointing: bool) -> int:
    return saved_bytes(lambda: MetaTRLPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM,
                                     replace(CONFIG, layers=4, activation_checkpointing=checkpointing)),
                       build_graph(), build_batch([12, 9, 7, 5, 4, 3]))


def test_checkpointing_keeps_fewer_activations():
    plain, ckpt = _saved_bytes(False), _saved_bytes(True)
    assert ckpt < 0.6 * plain, (ckpt, plain)
