"""trajzoo.config: the declarative config-class mechanism (ranged fields, ConfigClass.from_dict)
and its use by every model's config dataclass."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest

from trajzoo.config import ConfigClass, Range, check_divisible, check_ordered, ranged, strict_from_dict
from trajzoo_baselines.node2vec import Node2VecConfig, Node2VecSchedule
from trajzoo_baselines.start.config import STARTConfig
from trajzoo_baselines.transformer_mlm import TransformerMLMConfig
from trajzoo_metatrl.model import MetaTRLConfig
from trajzoo_transfertraj.parameters import TransferTrajConfig


@dataclass
class Toy(ConfigClass):
    size: int = ranged(64, ge=1)
    heads: int = ranged(4, ge=1)
    rate: float = ranged(0.0, ge=0, lt=1)
    mode: str = ranged("a", choices=("a", "b"))
    cap: int | None = ranged(None, ge=1)
    low: float = ranged(0.2, gt=0, le=1)
    high: float = ranged(0.5, gt=0, le=1)
    flag: bool = True

    def check(self) -> None:
        check_divisible(self, "size", "heads")
        check_ordered(self, "low", "high")


@dataclass(frozen=True)
class FrozenToy(ConfigClass):
    steps: int = ranged(3, ge=0)


def test_range_descriptions() -> None:
    assert Range(ge=1).describe() == ">= 1"
    assert Range(gt=0).describe() == "> 0"
    assert Range(ge=0, lt=1).describe() == "in [0, 1)"
    assert Range(gt=0, lt=1).describe() == "in (0, 1)"
    assert Range(gt=0, le=1).describe() == "in (0, 1]"
    assert Range(ge=0.5, le=2.5).describe() == "in [0.5, 2.5]"
    assert Range(lt=3).describe() == "< 3"
    assert Range(choices=("dense", "sparse")).describe() == "'dense' or 'sparse'"
    assert Range(choices=(1, 2, 3)).describe() == "one of 1, 2, 3"


def test_defaults_and_round_trip() -> None:
    toy = Toy()
    assert Toy.from_dict({}) == toy == Toy.from_dict(None)
    assert Toy.from_dict(toy.to_dict()) == toy
    assert Toy.from_dict({"cap": 5, "rate": 0}).cap == 5  # an int is a valid float
    assert FrozenToy.from_dict({"steps": 0}).steps == 0
    assert [row[0] for row in Toy.describe()] == [f.name for f in dataclasses.fields(Toy)]
    assert Toy.describe()[2] == ("rate", "float", 0.0, "in [0, 1)")


@pytest.mark.parametrize("values, message", [
    ({"size": 0}, "size must be >= 1, got 0"),
    ({"rate": 1.0}, "rate must be in [0, 1), got 1.0"),
    ({"rate": -0.5}, "rate must be in [0, 1), got -0.5"),
    ({"mode": "c"}, "mode must be 'a' or 'b', got 'c'"),
    ({"cap": 0}, "cap must be >= 1, got 0"),
    ({"size": 2.5}, "size must be an integer, got 2.5"),
    ({"size": True}, "size must be an integer, got True"),
    ({"flag": 1}, "flag must be true or false, got 1"),
    ({"rate": math.nan}, "rate must be a finite number, got nan"),
    ({"rate": "0.1"}, "rate must be a finite number, got '0.1'"),
    ({"mode": 3}, "mode must be a string, got 3"),
    ({"size": 30, "heads": 4}, "size=30 is not divisible by heads=4"),
    ({"low": 0.6, "high": 0.5}, "need low <= high, got 0.6, 0.5"),
])
def test_messages_name_the_field_and_the_allowed_values(values, message) -> None:
    with pytest.raises(ValueError) as direct:
        Toy(**values)
    assert str(direct.value) == message
    with pytest.raises(ValueError) as keyed:
        Toy.from_dict(values, key="models.toy.hparams")
    field_error = message.split(" ")[0] in Toy.__dataclass_fields__
    expected = f"models.toy.hparams.{message}" if field_error else f"models.toy.hparams: {message}"
    assert str(keyed.value) == expected


def test_unknown_keys_are_named_with_the_full_key() -> None:
    with pytest.raises(ValueError) as info:
        Toy.from_dict({"sise": 3, "colour": "red", "size": 8}, key="models.toy.hparams")
    assert str(info.value).startswith("unknown key(s) models.toy.hparams.colour, models.toy.hparams.sise (known: size,")
    with pytest.raises(ValueError, match=r"unknown Toy key\(s\) sise"):
        Toy.from_dict({"sise": 3})
    with pytest.raises(ValueError, match=r"unknown key\(s\) toy section\.sise"):
        strict_from_dict(Toy, {"sise": 3}, "toy section")


def test_replace_and_frozen_classes_are_checked_too() -> None:
    with pytest.raises(ValueError, match="rate must be"):
        dataclasses.replace(Toy(), rate=2.0)
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        FrozenToy(steps=-1)


def test_a_default_outside_its_own_range_is_refused() -> None:
    with pytest.raises(ValueError, match="default 0 is not >= 1"):
        ranged(0, ge=1)


MODEL_CONFIGS = [MetaTRLConfig, TransformerMLMConfig, STARTConfig, Node2VecConfig, Node2VecSchedule, TransferTrajConfig]


@pytest.mark.parametrize("cls", MODEL_CONFIGS, ids=lambda c: c.__name__)
def test_every_model_config_class_uses_the_mechanism(cls) -> None:
    assert issubclass(cls, ConfigClass)
    assert cls.from_dict({}) == cls()
    with pytest.raises(ValueError, match=r"unknown key\(s\) models\.m\.hparams\.typo_key"):
        cls.from_dict({"typo_key": 1}, key="models.m.hparams")
    ranged_fields = [f for f in dataclasses.fields(cls) if "range" in f.metadata]
    assert ranged_fields, "no declared range"
    name = ranged_fields[0].name
    with pytest.raises(ValueError, match=rf"^models\.m\.hparams\.{name} must be "):
        cls.from_dict({name: -1000}, key="models.m.hparams")


@pytest.mark.parametrize("cls, values, message", [
    (MetaTRLConfig, {"d_model": 0}, "d_model must be >= 1, got 0"),
    (MetaTRLConfig, {"d_model": 30, "heads": 4}, "d_model=30 is not divisible by heads=4"),
    (MetaTRLConfig, {"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    (MetaTRLConfig, {"mask_ratio": 0.0}, "mask_ratio must be in (0, 1), got 0.0"),
    (MetaTRLConfig, {"time_mask_ratio": 1.0}, "time_mask_ratio must be in [0, 1), got 1.0"),
    (MetaTRLConfig, {"mean_span_length": 0.5}, "mean_span_length must be >= 1, got 0.5"),
    (MetaTRLConfig, {"gamma": 1.5}, "gamma must be in [0, 1], got 1.5"),
    (TransformerMLMConfig, {"mask_ratio": 1.0}, "mask_ratio must be in (0, 1), got 1.0"),
    (TransformerMLMConfig, {"d_model": 10, "heads": 4}, "d_model=10 is not divisible by heads=4"),
    (STARTConfig, {"gat_heads": 3}, "d_model=64 is not divisible by gat_heads=3"),
    (STARTConfig, {"temperature": 0}, "temperature must be > 0, got 0"),
    (STARTConfig, {"trim_ratio_min": 0.0}, "trim_ratio_min must be in (0, 1), got 0.0"),
    (STARTConfig, {"shift_fraction": -1}, "shift_fraction must be in (0, 1], got -1"),
    (STARTConfig, {"mask_weight": 1.1}, "mask_weight must be in [0, 1], got 1.1"),
    (Node2VecConfig, {"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    (Node2VecSchedule, {"walk_length": 1}, "walk_length must be >= 2, got 1"),
    (Node2VecSchedule, {"context_size": 1.5}, "context_size must be an integer, got 1.5"),
    (Node2VecSchedule, {"q": math.inf}, "q must be a finite number, got inf"),
    (Node2VecSchedule, {"p": 0}, "p must be > 0, got 0"),
    (TransferTrajConfig, {"top_k": 9}, "top_k=9 exceeds experts=8"),
    (TransferTrajConfig, {"d_model": 12, "heads": 4}, "head size d_model/heads=3 must be even (TRIE rotates pairs)"),
    (TransferTrajConfig, {"moe_dispatch": "loop"}, "moe_dispatch must be 'dense' or 'sparse', got 'loop'"),
    (TransferTrajConfig, {"p_spatial": 0, "p_temporal": 0}, "p_spatial + p_temporal must be > 0"),
    (TransferTrajConfig, {"span_ratio_min": 0.6}, "need span_ratio_min <= span_ratio_max, got 0.6, 0.5"),
    (TransferTrajConfig, {"modality_ratio_min": 0.0}, "modality_ratio_min must be in (0, 1], got 0.0"),
    (TransferTrajConfig, {"trie_min_wavelength_m": 1e6}, "need trie_min_wavelength_m <= trie_max_wavelength_m, got 1000000.0, 50000.0"),
])
def test_model_config_checks_keep_their_meaning(cls, values, message) -> None:
    with pytest.raises(ValueError) as info:
        cls(**values)
    assert str(info.value) == message
