"""START with activation checkpointing (STARTConfig.activation_checkpointing): the TAT-Enc layer
with its dropout masks drawn first equals the layer written with torch's dropout in place, bit
for bit; pretraining with checkpointing gives the same weights and losses bit for bit, while
keeping far fewer activations for the backward pass."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from baselines_toy import ATTRIBUTE_DIM, NUM_SEGMENTS, build_batch, build_graph
from baselines_toy import single_thread  # noqa: F401  (autouse fixture)
from checkpointing_support import assert_same_training, saved_bytes, train_steps
from trajzoo_baselines.start.config import STARTConfig
from trajzoo_baselines.start.objective import STARTPretrainer
from trajzoo_baselines.start.trajectory_encoder import TATEncoderLayer

CONFIG = STARTConfig(d_model=16, gat_layers=2, gat_heads=2, layers=2, heads=2, ffn_dim=32, dropout=0.2,
                     interval_hidden=8, mask_ratio=0.3)


def _reference_layer(layer: TATEncoderLayer, x, bias, pad):
    """The TAT-Enc layer written with torch's dropout where each is used (attention weights,
    then the two residual branches): H = LN(H + Drop(Attn(H))), H = LN(H + Drop(FFN(H)))."""
    p = layer.dropout.p
    weights, v = layer.attention.attention_weights(x, bias, pad)
    att = F.dropout(weights, p, True) @ v
    att = layer.attention.out(att.transpose(1, 2).reshape(x.shape))
    x = layer.norm1(x + F.dropout(att, p, True))
    return layer.norm2(x + F.dropout(layer.ffn(x), p, True))


def test_layer_with_drawn_masks_equals_torch_dropout_in_place():
    torch.manual_seed(0)
    layer = TATEncoderLayer(16, 2, 32, dropout=0.2).train()
    x, bias = torch.randn(3, 7, 16), torch.randn(3, 2, 7, 7)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    for checkpointing in (False, True):
        layer.activation_checkpointing = checkpointing
        torch.manual_seed(11)
        got = layer(x, bias, pad)
        torch.manual_seed(11)
        assert torch.equal(got, _reference_layer(layer, x, bias, pad))
    layer.eval()
    assert torch.equal(layer(x, bias, pad), layer(x, bias, pad))  # no dropout in evaluation


def _train(checkpointing: bool):
    return train_steps(lambda: STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, replace(CONFIG, activation_checkpointing=checkpointing)),
                       build_graph(), build_batch([12, 9, 7, 5, 4, 3]), optimizer=torch.optim.AdamW)


def test_pretraining_with_checkpointing_is_bit_identical():
    plain = _train(False)
    assert_same_training(plain, _train(True))
    plain_state = plain[0]
    # the weights moved, so equality is not that of two untrained models
    torch.manual_seed(0)
    init = STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM, CONFIG).state_dict()
    assert not torch.equal(init["encoder.trajectory_encoder.layers.0.ffn.0.weight"],
                           plain_state["encoder.trajectory_encoder.layers.0.ffn.0.weight"])


def _saved_bytes(checkpointing: bool) -> int:
    return saved_bytes(lambda: STARTPretrainer(NUM_SEGMENTS, ATTRIBUTE_DIM,
                                     replace(CONFIG, layers=4, activation_checkpointing=checkpointing)),
                       build_graph(), build_batch([12, 9, 7, 5, 4, 3]))


def test_checkpointing_keeps_fewer_activations():
    plain, ckpt = _saved_bytes(False), _saved_bytes(True)
    assert ckpt < 0.5 * plain, (ckpt, plain)
