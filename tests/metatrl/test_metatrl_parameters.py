"""Shared / private parameter split and Parameters Clone (MetaTRL eqs. 1, 3)."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from torch import nn

from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_metatrl.objective import MetaTRLPretrainer
from trajzoo_metatrl.parameters import (
    classify_or_raise,
    is_private,
    is_shared,
    load_shared_state,
    private_parameters,
    shared_parameters,
    shared_state_dict,
)

FLAGS = ["use_meta_knowledge", "use_time_encoder", "use_interval", "use_knowledge_fusion", "use_time_mask"]


def test_name_classification() -> None:
    assert is_shared("encoder.road_encoder.shared_mkf.fc1.weight")
    assert not is_private("encoder.road_encoder.shared_mkf.fc1.weight")
    assert is_private("private_road_head.bias")
    assert not is_shared("private_road_head.bias")
    assert not is_shared("encoder.layers.0.weight") and not is_private("encoder.layers.0.weight")
    # a prefix must start the component, not appear inside it
    assert not is_shared("encoder.notshared_x.weight")


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared_a = nn.Linear(2, 2)
        self.private_b = nn.Linear(2, 2)


def test_classify_or_raise_names_offenders() -> None:
    classify_or_raise(_Toy())
    toy = _Toy()
    toy.plain = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="plain.weight"):
        classify_or_raise(toy)
    toy = _Toy()
    toy.shared_a.private_c = nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="shared_a.private_c"):
        classify_or_raise(toy)
    with pytest.raises(ValueError):
        shared_parameters(toy)


@pytest.mark.parametrize("disabled", [None, *FLAGS])
def test_every_parameter_classified(disabled: str | None, small_config: MetaTRLConfig) -> None:
    cfg = dataclasses.replace(small_config, **({disabled: False} if disabled else {}))
    model = MetaTRLPretrainer(10, 5, cfg)
    classify_or_raise(model)
    shared, private = shared_parameters(model), private_parameters(model)
    names = {n for n, _ in model.named_parameters()}
    assert set(shared) | set(private) == names
    assert not set(shared) & set(private)
    assert private, "the heads and the GAT are always private"


def _names(model) -> tuple[set[str], set[str]]:
    return set(shared_parameters(model)), set(private_parameters(model))


def test_paper_assignment_of_shared_and_private(small_config: MetaTRLConfig) -> None:
    """The paper's split (eqs. 6-20): GAT road encoder, period embeddings, value view and value
    projection, heads private; MKF, interval encoder, shared view, Q/K shared."""
    model = MetaTRLPretrainer(10, 5, small_config)
    shared, private = _names(model)
    paper_shared = ["encoder.road_encoder.shared_mkf.", "encoder.temporal_encoder.shared_interval_mlp.",
                    "encoder.temporal_encoder.shared_bucket_embedding", "encoder.trajectory_encoder.layers.0.shared_view.",
                    "encoder.trajectory_encoder.layers.0.shared_w_q.", "encoder.trajectory_encoder.layers.1.shared_w_k."]
    paper_private = ["encoder.road_encoder.private_naf.", "encoder.road_encoder.private_layers.0.private_w1.",
                     "encoder.road_encoder.private_layers.0.private_w2", "encoder.road_encoder.private_layers.1.private_w3",
                     "encoder.road_encoder.private_layers.1.private_w4",
                     "encoder.temporal_encoder.private_day_embedding.", "encoder.temporal_encoder.private_minute_embedding.",
                     "encoder.trajectory_encoder.layers.0.private_view.", "encoder.trajectory_encoder.layers.1.private_w_v.",
                     "private_road_head.", "private_time_head."]
    for prefix in paper_shared:
        assert any(n.startswith(prefix) for n in shared), prefix
    for prefix in paper_private:
        assert any(n.startswith(prefix) for n in private), prefix
    # every parameter of the road encoder but MKF is private (eqs. 7-10)
    road = [n for n in shared if n.startswith("encoder.road_encoder.")]
    assert road and all(n.startswith("encoder.road_encoder.shared_mkf.") for n in road)
    # every parameter of the value path and of the period embeddings is private
    assert not [n for n in shared if "w_v" in n or "private_view" in n or "day_embedding" in n or "head" in n]


@pytest.mark.parametrize("unclassified_shared", [True, False])
def test_unclassified_components_follow_the_config(small_config: MetaTRLConfig, unclassified_shared: bool) -> None:
    """Output projection, layer norms, feed-forward and the two mask vectors: shared by default,
    private with unclassified_shared=False; the paper's components do not move."""
    cfg = dataclasses.replace(small_config, unclassified_shared=unclassified_shared)
    model = MetaTRLPretrainer(10, 5, cfg)
    shared, private = _names(model)
    side = shared if unclassified_shared else private
    other = private if unclassified_shared else shared
    for layer in (0, 1):
        for part in ("out", "norm1", "ffn", "norm2"):
            prefix = "shared_" if unclassified_shared else "private_"
            assert any(n.startswith(f"encoder.trajectory_encoder.layers.{layer}.{prefix}{part}.") for n in side), part
            assert not any(f".{part}." in n or f"_{part}." in n for n in other), part
    assert any(n.endswith("road_mask_token") for n in side)
    assert any(n.endswith("time_mask") for n in side)
    default_shared, default_private = _names(MetaTRLPretrainer(10, 5, small_config))
    paper = {n for n in default_shared if any(k in n for k in ("mkf", "interval", "bucket", "shared_view", "w_q", "w_k"))}
    assert paper <= shared
    assert {n for n in default_private if n in private} == default_private


def test_shared_state_dict_is_detached_clone(small_config: MetaTRLConfig) -> None:
    model = MetaTRLPretrainer(10, 5, small_config)
    state = shared_state_dict(model)
    assert set(state) == set(shared_parameters(model))
    name = "encoder.temporal_encoder.shared_time_mask"
    before = dict(model.named_parameters())[name].detach().clone()
    assert not state[name].requires_grad
    state[name].add_(1.0)
    assert torch.equal(dict(model.named_parameters())[name], before)


def test_load_shared_state_copies_shared_keeps_private(small_config: MetaTRLConfig) -> None:
    torch.manual_seed(0)
    source = MetaTRLPretrainer(10, 5, small_config)
    torch.manual_seed(1)
    # another city: different number of segments and attribute columns
    target = MetaTRLPretrainer(23, 7, small_config)
    private_before = {n: p.detach().clone() for n, p in private_parameters(target).items()}
    ids_before = {n: id(p) for n, p in target.named_parameters()}
    assert not all(torch.equal(p, shared_parameters(target)[n]) for n, p in shared_parameters(source).items())

    load_shared_state(target, shared_state_dict(source))

    for name, p in shared_parameters(source).items():
        assert torch.equal(shared_parameters(target)[name], p), name
    for name, p in private_parameters(target).items():
        assert torch.equal(p, private_before[name]), name
    assert {n: id(p) for n, p in target.named_parameters()} == ids_before  # in-place copy


def test_load_shared_state_rejects_bad_keys(small_config: MetaTRLConfig) -> None:
    model = MetaTRLPretrainer(10, 5, small_config)
    state = shared_state_dict(model)
    missing = dict(itertools.islice(state.items(), 1, None))
    with pytest.raises(ValueError, match="missing"):
        load_shared_state(model, missing)
    unexpected = {**state, "private_time_head.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match="private_time_head.bias"):
        load_shared_state(model, unexpected)
    other = MetaTRLPretrainer(10, 5, MetaTRLConfig(d_model=8, heads=2, ffn_dim=16, num_buckets=8))
    with pytest.raises(ValueError, match="shape"):
        load_shared_state(model, shared_state_dict(other))
