"""From a DataBundle and the data config to the two functions the engine calls:
train_augment(uint8 batch, generator) -> float batch, and eval_prepare(uint8 batch) -> float batch."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ReslabError
from . import transforms as T
from .sources import DataBundle


@dataclass(frozen=True)
class Preprocess:
    """What inference needs to reproduce evaluation (saved in checkpoints)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int   # the cached/resized image size (shorter side)
    crop: int         # network input size
    interpolation: str = "bilinear"  # of the resize (Pillow's antialiased filters)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "image_size": self.image_size, "crop": self.crop,
                "interpolation": self.interpolation}

    @classmethod
    def from_dict(cls, d: dict, **defaults) -> "Preprocess":
        """From checkpoint metadata; keys it lacks come from `defaults`."""
        merged = {**defaults, **{k: v for k, v in d.items() if v is not None}}
        return cls(tuple(merged["mean"]), tuple(merged["std"]), int(merged["image_size"]), int(merged["crop"]),
                   str(merged.get("interpolation", "bilinear")))


@dataclass
class Pipeline:
    preprocess: Preprocess
    augment_kind: str
    channels_last: bool = False

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return T.normalize(x, self.preprocess.mean, self.preprocess.std)

    def train_augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        p, kind = self.preprocess, self.augment_kind
        if kind == "cifar":
            x = self._norm(T.random_crop_flip(x, gen, pad=max(1, x.shape[-1] // 8)))
            if p.crop < x.shape[-1]:
                x = T.center_crop(x, p.crop)
        elif kind == "scale":
            x = T.scale_augment(self._norm(x), gen, p.crop, shorter=(int(p.crop * 256 / 224), int(p.crop * 480 / 224)))
        elif kind == "rrc":
            x = T.random_resized_crop(self._norm(x), gen, p.crop)
        elif kind == "whole":  # cropped, resized and flipped per sample on the whole image (data/whole.py)
            x = self._norm(x)
        else:
            x = self.eval_prepare(x)
        return self._finish(x)

    def eval_prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = self._norm(x)
        if self.preprocess.crop < x.shape[-1] or self.preprocess.crop < x.shape[-2]:
            x = T.center_crop(x, self.preprocess.crop)
        return self._finish(x)

    def eval_input(self, ten_crop: bool = False):
        """The evaluation input function: eval_prepare, or (10-crop) normalisation alone, the crops
        being cut by the evaluator."""
        return self._norm if ten_crop else self.eval_prepare


def make_pipeline(bundle: DataBundle, augment: str = "auto", crop: int = 0, channels_last: bool = False) -> Pipeline:
    if bundle.info.get("input") == "whole":  # crops come from the loader; evaluation: resize, centre crop
        w = bundle.info
        return Pipeline(Preprocess(tuple(bundle.mean), tuple(bundle.std), w["eval_resize"], w["crop"],
                                   w["interpolation"]), "whole", channels_last=channels_last)
    size = int(bundle.train.image_shape[-1])
    crop = crop or size
    if crop > size:
        raise ReslabError(f"data.crop={crop} is larger than the images ({size}); lower it or raise data.cache_size")
    if augment == "auto":
        augment = "cifar" if bundle.small else "rrc"
    return Pipeline(Preprocess(tuple(bundle.mean), tuple(bundle.std), size, crop), augment, channels_last=channels_last)


__all__ = ["Pipeline", "Preprocess", "make_pipeline"]
