"""What a training run adds to the crop and flip: auto-augment, random erasing, progressive resizing.

`Pipeline.train_augment` applies them in timm's order (crop/flip -> auto-augment on uint8 ->
normalise -> random erasing); mixup/cutmix act in the training step (training/mixing.py). With the
defaults nothing is added and no random number is drawn, so earlier runs are reproduced bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..errors import ReslabError
from .autoaugment import auto_augment
from .erasing import random_erasing
from .progressive import progressive_size


@dataclass
class TrainAugment:
    """The data.* fields of these augmentations, and the current epoch (for progressive resizing)."""

    auto_augment: str = "none"      # none | trivial | randaugment
    randaugment_n: int = 2
    randaugment_m: int = 9
    random_erasing: float = 0.0     # probability per sample
    erasing_mode: str = "pixel"     # pixel | const | rand
    progressive: int = 0            # start resolution; 0: off
    progressive_start: int = 0      # epoch where the ramp starts
    progressive_end: int = 0        # epoch from which the final resolution is used
    epoch: int = 0                  # set by the trainer at the start of every epoch

    def configure(self, data_cfg) -> None:
        """Take the matching fields of a DataConfig, in place (the object is shared, see Pipeline.extras)."""
        for f in fields(self):
            if f.name != "epoch" and hasattr(data_cfg, f.name):
                setattr(self, f.name, getattr(data_cfg, f.name))

    def check(self, final: int) -> None:
        """One-line errors for a progressive ramp that cannot reach `final` (the crop size)."""
        if self.progressive and self.progressive > final:
            raise ReslabError(f"data.progressive={self.progressive} is larger than the training crop ({final})")

    def size_at(self, epoch: int, final: int) -> int:
        """The training resolution of `epoch`: `final` unless progressive resizing is on."""
        if not self.progressive:
            return final
        return progressive_size(epoch, self.progressive, final, self.progressive_start, self.progressive_end)

    def augment_uint8(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Auto-augment (on uint8 crops, as torchvision applies it); nothing drawn when off."""
        return auto_augment(x, gen, self.auto_augment, self.randaugment_n, self.randaugment_m)

    def erase(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random erasing on the normalised batch; nothing drawn when off."""
        return random_erasing(x, gen, self.random_erasing, self.erasing_mode) if self.random_erasing > 0 else x
