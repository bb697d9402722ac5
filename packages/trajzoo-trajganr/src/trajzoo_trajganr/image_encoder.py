"""Street-view image encoder (TrajGANR eq. 1): ``v = g(f(I))`` with f a pretrained backbone
(a ViT from timm, as in the paper) and g a learnable projection head
(:attr:`trajzoo_trajganr.model.TrajGANR.image_proj`). The backbone is frozen: its features are
computed once per image in their own rule (``image_features``) and cached; pretraining and
fine-tuning read the cache. timm is the optional extra ``trajzoo-trajganr[streetview]`` (it needs
a torchvision that works with the installed torch); ``tiny`` is a small random-weight
convolutional encoder for tests and for checking the image path without timm.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

#: ImageNet normalisation of the timm backbones.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class TinyImageEncoder(nn.Module):
    """A small conv encoder ``(n, 3, H, W) -> (n, out_dim)`` (random weights, seeded by the caller)."""

    def __init__(self, out_dim: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, out_dim, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """``(n, 3, H, W)`` -> ``(n, out_dim)``."""
        return self.net(x)


def backbone(name: str) -> nn.Module:
    """The frozen backbone f: ``tiny`` or a pretrained timm model without its classifier.

    Raises:
        ImportError: timm missing (naming the extra).
    """
    if name == "tiny":
        torch.manual_seed(0)
        return TinyImageEncoder().eval()
    try:
        import timm
    except Exception as exc:  # timm imports torchvision, which may fail to import
        raise ImportError(f"image backbone {name!r} needs timm: pip install 'trajzoo-trajganr[streetview]' ({exc})") \
            from None
    return timm.create_model(name, pretrained=True, num_classes=0).eval()


def load_image(path: Path | str, size: int) -> Tensor:
    """``(3, size, size)`` float32 ImageNet-normalised image (PIL resize, bilinear).

    Raises:
        ValueError: the file cannot be read as an image (naming it).
    """
    from PIL import Image

    try:
        img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    arr = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def encode_images(paths: list[str], encoder: nn.Module, size: int, batch_size: int = 32, device="cpu") -> np.ndarray:
    """Frozen features ``(n, F)`` float32 of the images, in order (no gradient)."""
    encoder.eval().to(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            x = torch.stack([load_image(p, size) for p in paths[start:start + batch_size]]).to(device)
            out.append(encoder(x).float().cpu().numpy())
    dim = getattr(encoder, "num_features", 0)
    return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)
