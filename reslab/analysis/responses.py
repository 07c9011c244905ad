"""Layer responses (2015 paper, Fig. 7): the standard deviation of each 3x3 layer's output after BN
and before the addition / ReLU (for pre-activation units: the 3x3 convolution's own output)."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..models.resnet import ResNet


def response_modules(model: ResNet) -> list[nn.Module]:
    """The module whose output is each 3x3 layer's response, in depth order."""
    preact = model.cfg.resolved_unit == "full_preact"
    out = []
    for block in model.blocks():
        i = 1
        while getattr(block, f"conv{i}", None) is not None:
            conv = getattr(block, f"conv{i}")
            if conv.kernel_size == (3, 3):
                bn = getattr(block, f"bn{i}", None)
                out.append(conv if preact or bn is None else bn)
            i += 1
    return out


@torch.no_grad()
def layer_responses(model: ResNet, batches: Iterable[torch.Tensor]) -> list[float]:
    """Std of every 3x3 layer's response over all given images (BN in eval mode, as at test time)."""
    mods = response_modules(model)
    sums = torch.zeros(len(mods), 3, dtype=torch.float64)  # count, sum, sum of squares

    def hook(i):
        def fn(m, args, out):
            o = out.detach().double()
            sums[i, 0] += o.numel()
            sums[i, 1] += o.sum().cpu()
            sums[i, 2] += o.square().sum().cpu()
        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(mods)]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    n, s, ss = sums[:, 0], sums[:, 1], sums[:, 2]
    var = (ss / n - (s / n) ** 2).clamp(min=0)
    return var.sqrt().tolist()
