"""From a DataBundle and the data config to the two functions the engine calls:
train_augment(uint8 batch, generator) -> float batch, and eval_prepare(uint8 batch) -> float batch."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import transforms as T
from .preprocessing import InputConfig, normalize
from .types import DataBundle
from .train_augment import TrainAugment


@dataclass
class Pipeline:
    preprocess: InputConfig  # the evaluation transform (written into checkpoints)
    augment_kind: str
    channels_last: bool = False
    min_scale: float = 0.08  # rrc's smallest crop (torchvision 0.08; fastai's Imagenette recipe 0.35)
    # Auto-augment, random erasing, progressive resizing and the current epoch. Mutable and shared on
    # purpose: dataclasses.replace (fine-tuning's normalisation) copies the reference, so a loader holding
    # the train_augment of the pipeline it was built with sees what configure()/set_epoch() set later.
    extras: TrainAugment = field(default_factory=TrainAugment)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.preprocess.mean, self.preprocess.std)

    def configure(self, data_cfg) -> None:
        """Take auto-augment, random erasing and progressive resizing from a DataConfig (in place)."""
        self.extras.configure(data_cfg)
        self.extras.check(self.preprocess.input_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose batches come next (progressive resizing is a function of it)."""
        self.extras.epoch = epoch

    def size_at(self, epoch: int) -> int:
        """The training resolution of `epoch`: the crop, or less early on with progressive resizing. The
        whole-image loader should cut its crops at this size (it then arrives here at the right size)."""
        return self.extras.size_at(epoch, self.preprocess.input_size)

    def train_augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """timm's order: crop/flip -> auto-augment (uint8) -> normalise -> resize (progressive) -> erase."""
        p, kind, ex = self.preprocess, self.augment_kind, self.extras
        size = self.size_at(ex.epoch)
        if kind == "cifar":
            x = self._norm(ex.augment_uint8(T.random_crop_flip(x, gen, pad=max(1, x.shape[-1] // 8)), gen))
            if p.input_size < x.shape[-1]:
                x = T.center_crop(x, p.input_size)
        elif kind == "scale":
            shorter = (int(size * 256 / 224), int(size * 480 / 224))  # scaled with the output: the same field of view
            x = self._crop_float(x, gen, lambda f: T.scale_augment(f, gen, size, shorter=shorter))
        elif kind == "rrc":
            x = self._crop_float(x, gen, lambda f: T.random_resized_crop(f, gen, size, scale=(self.min_scale, 1.0)))
        elif kind == "whole":  # cropped, resized and flipped per sample on the whole image (data/whole.py)
            x = self._norm(ex.augment_uint8(x, gen))
        else:
            x = self.eval_prepare(ex.augment_uint8(x, gen))
        if ex.progressive and tuple(x.shape[-2:]) != (size, size):  # progressive, where the crop did not resize
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
        return self._finish(ex.erase(x, gen))

    def _crop_float(self, x: torch.Tensor, gen: torch.Generator, crop) -> torch.Tensor:
        """A resampling crop on float images; with auto-augment, the crop is rounded back to uint8 first
        (torchvision's order: the policies' ops are defined on uint8 images)."""
        if self.extras.auto_augment == "none":
            return crop(self._norm(x))  # normalise first: unchanged from before auto-augment existed
        x = crop(x.to(torch.float32)).round_().clamp_(0, 255).to(torch.uint8)
        return self._norm(self.extras.augment_uint8(x, gen))

    def eval_prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation images arrive through the evaluation transform (input-sized): normalise them. Larger
        ones (uint8 arrays of the training size) get torchvision's centre crop."""
        x = self._norm(x)
        if self.preprocess.input_size < x.shape[-1] or self.preprocess.input_size < x.shape[-2]:
            x = T.center_crop(x, self.preprocess.input_size)
        return self._finish(x)

    def eval_input(self, ten_crop: bool = False):
        """The evaluation input function: eval_prepare, or (10-crop) normalisation alone, the crops
        being cut by the evaluator."""
        return self._norm if ten_crop else self.eval_prepare


def make_pipeline(bundle: DataBundle, channels_last: bool = False) -> Pipeline:
    """The pipeline of a bundle from load_data: its evaluation transform and resolved augmentation."""
    kind = "whole" if bundle.info.get("input") == "whole" else bundle.info["augment"]
    return Pipeline(bundle.info["eval"], kind, channels_last=channels_last, min_scale=bundle.info.get("min_scale", 0.08))


__all__ = ["Pipeline", "make_pipeline"]
