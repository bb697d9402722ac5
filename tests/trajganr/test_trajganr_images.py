"""The street-view path with a tiny image encoder: frozen features once per image, the eq. 1
projection, the image terms of eq. 7, and the image modality in the head."""
import numpy as np
import pytest
import torch
from PIL import Image

from trajzoo.locations import LocationView
from trajzoo_trajganr.image_encoder import TinyImageEncoder, encode_images, load_image
from trajzoo_trajganr.model import TrajGANR
from trajzoo_trajganr.parameters import TrajGANRConfig
from trajzoo_trajganr.plugin import TrajGANRPlugin

from toy import inputs_of, location_view, straight_rows

SPLITS = {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}


def test_images_encode_once_with_a_tiny_encoder(tmp_path):
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 30), colour).save(p)
        paths.append(str(p))
    assert load_image(paths[0], 16).shape == (3, 16, 16)
    torch.manual_seed(0)
    feats = encode_images(paths, TinyImageEncoder(8), 16)
    assert feats.shape == (2, 8) and not np.allclose(feats[0], feats[1])
    again = TrajGANRPlugin().image_features(paths, {"image_backbone": "tiny", "image_size": 16}, "cpu")
    assert again.shape == (2, 16)
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "missing.jpg", 16)


def test_image_modality_reaches_features_head_and_pretraining(tmp_path):
    from trajzoo.training.loop import RunContext
    from trajzoo_trajganr.parameters import PretrainConfig
    from trajzoo_trajganr.training import pretrain

    rows = straight_rows()
    view = location_view(rows, SPLITS)
    view.images = np.random.default_rng(0).normal(size=(len(view.table), 5)).astype(np.float32)
    inputs = inputs_of(view, rows, SPLITS)
    torch.manual_seed(0)
    cfg = TrajGANRConfig(d_model=8, heads=2, agg_heads=2, ffn_dim=8, layers=1, window=8, modalities="img+loc+traj",
                         queue_size=16, random_locations=2)
    m = TrajGANR(cfg, image_dim=5)
    ctx = RunContext(torch.device("cpu"), 0, tmp_path / "ck")
    hist = pretrain(m, inputs, PretrainConfig(epochs=2, batch_size=4), ctx)
    # step 1 has an empty queue (no negatives for the location terms); step 2 has the enqueued ones
    assert hist[0]["L_IL"] == 0 and hist[0]["L_TI"] > 0
    assert hist[1]["L_IL"] > 0 and hist[1]["L_TI"] > 0 and hist[1]["L_TL"] > 0
    f = m.location_features(inputs, "cpu")
    assert set(f) == {"img", "loc", "traj", "traj_mask"} and f["img"].shape == (4, 8)
    head = m.location_head(f, 3)
    assert head(f).shape == (4, 3)


def test_dag_check_names_the_streetview_extra(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "timm" else real(n, *a))
    with pytest.raises(ValueError, match=r"trajzoo-trajganr\[streetview\]"):
        TrajGANRPlugin.check_images({"hparams": {}}, True)
    TrajGANRPlugin.check_images({"hparams": {"image_backbone": "tiny"}}, True)
    TrajGANRPlugin.check_images({"hparams": {}}, False)
