"""TransferTrajConfig validation and presets."""
import pytest

from trajzoo_transfertraj.parameters import PAPER_PRESET, TransferTrajConfig


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="d_modle"):
        TransferTrajConfig.from_dict({"d_modle": 64})


@pytest.mark.parametrize("bad", [{"top_k": 9}, {"d_model": 30, "heads": 4}, {"d_model": 12, "heads": 4},
                                 {"moe_dispatch": "loop"}, {"dropout": 1.0}, {"modality_ratio_min": 0.0},
                                 {"span_ratio_min": 0.6, "span_ratio_max": 0.5}, {"p_spatial": 0, "p_temporal": 0},
                                 {"p_span": 1.5}])
def test_out_of_range_values_raise(bad):
    with pytest.raises(ValueError):
        TransferTrajConfig.from_dict(bad)


def test_paper_preset_and_round_trip():
    cfg = TransferTrajConfig.paper()
    assert (cfg.d_model, cfg.layers, cfg.experts, cfg.top_k) == (128, 2, 8, 4)
    assert PAPER_PRESET["d_model"] == 128
    assert TransferTrajConfig.from_dict(cfg.to_dict()) == cfg
    assert TransferTrajConfig(p_spatial=3, p_temporal=1).spatial_share == 0.75
