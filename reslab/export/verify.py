"""Compare an exported model with eager PyTorch on the same (real) images."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VerifyReport:
    images: int
    max_abs_diff: float
    max_logit: float
    top1_agreement: float  # fraction of images whose top-1 class is the same

    def line(self) -> str:
        return (f"{self.images} images: max |exported - eager| = {self.max_abs_diff:.2e} "
                f"(logits up to {self.max_logit:.1f}), same top-1 class on {100 * self.top1_agreement:.2f}%")


@torch.no_grad()
def compare_outputs(eager: nn.Module, exported: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    batch_size: int = 64) -> VerifyReport:
    eager = eager.eval()
    diffs, agree, peak = [], 0, 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        ref = eager(xb).float()
        got = exported(xb).float()
        diffs.append(float((ref - got).abs().max()))
        agree += int((ref.argmax(1) == got.argmax(1)).sum())
        peak = max(peak, float(ref.abs().max()))
    return VerifyReport(len(x), max(diffs), peak, agree / len(x))
