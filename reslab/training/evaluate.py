"""Evaluation: top-1/top-5 error, per-class accuracy and the confusion matrix, reduced across ranks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import transforms as T
from ..data.preprocessing import InputConfig
from ..data.streaming import eval_batches
from ..data.types import FileSplit, Split
from . import distributed as dist


@dataclass
class EvalResult:
    split: str
    n: int
    loss: float
    top1: float
    top5: float
    confusion: torch.Tensor  # (classes, classes): rows true, columns predicted

    @property
    def top1_err(self) -> float:
        return 1.0 - self.top1

    @property
    def top5_err(self) -> float:
        return 1.0 - self.top5

    def per_class(self) -> list[float]:
        c = self.confusion.double()
        return (c.diag() / c.sum(1).clamp(min=1)).tolist()

    def summary(self) -> dict[str, float]:
        return {f"{self.split}/loss": self.loss, f"{self.split}/top1_err": self.top1_err,
                f"{self.split}/top5_err": self.top5_err}


@torch.no_grad()
def evaluate(model: nn.Module, split: Split | FileSplit, num_classes: int, prepare, device: torch.device,
             batch_size: int = 512, amp_dtype: torch.dtype | None = None, ten_crop_size: int = 0,
             cfg: InputConfig | None = None, skip_bad: bool = False) -> EvalResult:
    """prepare: uint8 batch -> network input. With ten_crop_size, the logits of 10 crops are averaged
    (prepare must then keep the full image: crops are cut here). Files (a FileSplit) are decoded batch by
    batch through `cfg`'s evaluation transform (with ten crops: the centre square of the resized image)."""
    if cfg is not None and ten_crop_size:
        cfg = cfg.for_ten_crop()
    was_training = model.training
    model.eval()
    rank, world = dist.rank(), dist.world_size()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    k = min(5, num_classes)
    for x, y in eval_batches(split, batch_size, device, prepare, rank, world, cfg, skip_bad):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            if ten_crop_size:
                crops = T.ten_crop(x, ten_crop_size)
                logits = torch.stack([model(c.contiguous()) for c in crops]).float().mean(0)
            else:
                logits = model(x).float()
        sums[0] += nn.functional.cross_entropy(logits, y, reduction="sum")
        topk = logits.topk(k, dim=1).indices
        sums[1] += (topk[:, 0] == y).sum()
        sums[2] += (topk == y[:, None]).any(1).sum()
        sums[3] += len(y)
        confusion += torch.bincount(y * num_classes + topk[:, 0], minlength=num_classes ** 2).view(num_classes, num_classes)
    dist.all_reduce_sum(sums)
    dist.all_reduce_sum(confusion)
    model.train(was_training)
    n = max(int(sums[3].item()), 1)
    return EvalResult(split.name, n, sums[0].item() / n, sums[1].item() / n, sums[2].item() / n, confusion.cpu())
