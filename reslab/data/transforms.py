"""Batched tensor transforms that run on the training device (uint8 NCHW in, float out)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images (N, C, H, W) in [0, 255] -> float, scaled to [0, 1] then standardised per channel."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    m = torch.tensor(mean, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255
    return (images.to(dtype) - m) / s
