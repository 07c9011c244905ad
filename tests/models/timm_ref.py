"""timm as a test reference only (reslab never imports it): imported with `torch.library.register_fake`
neutralised (its compiled ops are CUDA builds), the test skipped with a message when it is not importable."""
from __future__ import annotations

import pytest
import torch
from torch import nn


def import_timm():
    """The timm package, or skip the calling test."""
    orig = torch.library.register_fake
    torch.library.register_fake = lambda *a, **k: (lambda f: f)
    try:
        import timm
        return timm
    except Exception as e:  # ImportError, or a version clash surfacing as another error at import time
        pytest.skip(f"timm is not importable here ({type(e).__name__}: {e}); it is only a test reference")
    finally:
        torch.library.register_fake = orig


def hook_macs(model: nn.Module, size: int = 224, in_chans: int = 3) -> int:
    """Multiply-adds of one image counted by forward hooks, written without reslab's counter: every
    Conv2d (out elements x in-channels per group x kernel area), every Linear, and every blur-pool
    (a fixed depthwise convolution: out elements x filter area), on the meta device."""
    total = [0]

    def conv(m, inputs, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inputs, out):
        total[0] += out.numel() * m.in_features

    def blur(m, inputs, out):
        total[0] += out.numel() * m.filt.shape[-2] * m.filt.shape[-1]

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear))
        elif type(mod).__name__ == "BlurPool2d":  # reslab's and timm's
            handles.append(mod.register_forward_hook(blur))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.empty(1, in_chans, size, size, device="meta"))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]
