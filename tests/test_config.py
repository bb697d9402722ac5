"""config.yaml validates against the schema; unknown keys and wrong types are refused."""
from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate

SCHEMA = "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_default_config_is_valid_and_points_at_shared_data(config, repo):
    validate(config, str(repo / SCHEMA))
    assert config["data_root"] == "../shared/data"
    assert config["device"] == "cpu"
    assert config["models"]["metatrl"]["sources"] == ["sanfrancisco"]


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["cities"]["porto"].update(colour="red"), "colour"),
    (lambda c: c["cities"]["porto"]["map_matching"].update(gps_error="fifty"), "fifty"),
    (lambda c: c.update(device="tpu"), "tpu"),
    (lambda c: c["cities"]["porto"]["trajectories"].update(format="gpx"), "gpx"),
])
def test_schema_rejects_bad_config(config, repo, mutate, message):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(Exception, match=message):
        validate(bad, str(repo / SCHEMA))
