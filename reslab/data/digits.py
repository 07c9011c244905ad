"""The offline default: 1,797 handwritten digits (8x8, 10 classes), shipped with reslab as uint8.

The images are the test set of the UCI "Optical Recognition of Handwritten Digits" data
(E. Alpaydin, C. Kaynak, 1998; licence CC BY 4.0), the same copy scikit-learn bundles as
`load_digits`: see digits-NOTICE.md beside the data file.
"""
from __future__ import annotations

import io
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x 8 x 8 with values 0..16, labels uint8 N)."""
    raw = resources.files("reslab.data").joinpath("digits.npz").read_bytes()
    with np.load(io.BytesIO(raw)) as d:
        return d["images"], d["labels"]


def load_digits_split(split: str = "train", size: int = 16, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 RGB images (N, 3, size, size), labels, class names; a fixed (unstratified) 80/20 split."""
    raw_images, raw_labels = digits_arrays()
    images = torch.from_numpy(raw_images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(raw_labels.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
    n_test = int(len(labels) * test_fraction)
    idx = order[n_test:] if split == "train" else order[:n_test]
    return images[idx], labels[idx], [str(i) for i in range(10)]
