"""Fold each BatchNorm that directly follows a convolution into that convolution (inference only).

Pre-activation units normalise the residual stream before a ReLU: those BNs have no convolution
right before them and stay (as in every framework's conv-BN fusion)."""
from __future__ import annotations

import copy

from torch import nn


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """(folded copy in eval mode, number of BN layers folded); the original model is untouched."""
    from torch.fx.experimental.optimization import fuse
    m = copy.deepcopy(model).eval()
    before = _count_bn(m)
    folded = fuse(m)  # symbolic trace + conv-BN folding of eval-mode weights
    return folded, before - _count_bn(folded)


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
