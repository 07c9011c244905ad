"""The offline default: scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def load_digits_split(split: str = "train", size: int = 16, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 RGB images (N, 3, size, size), labels, class names; a fixed stratified-free 80/20 split."""
    from sklearn.datasets import load_digits
    d = load_digits()
    images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(d.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
    n_test = int(len(labels) * test_fraction)
    idx = order[n_test:] if split == "train" else order[:n_test]
    return images[idx], labels[idx], [str(i) for i in range(10)]
