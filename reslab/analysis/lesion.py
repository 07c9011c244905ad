"""Lesion studies (Veit, Wilber, Belongie, NeurIPS 2016, "Residual Networks Behave Like Ensembles of
Relatively Shallow Networks"): test error after deleting residual blocks at test time.

Deleting a block removes its residual branch F, so the block's output is what its shortcut carries:
- original units, y = relu(F(x) + s(x)): y = relu(s(x)). Inside a stage s is the identity and x is
  already non-negative (the previous unit ended with a ReLU), so y = x exactly.
- downsampling units keep their non-identity shortcut: option A subsamples and zero-pads, option B/C
  projects (1x1 conv + BN), as in the trained network; only F is removed.
- pre-activation units, y = s(x) + F(x): y = s(x) (a projection reads the pre-activated input, as the unit does).
- plain nets have no shortcut: a deleted plain block becomes the identity (subsampled and zero-padded
  where it changes the shape, i.e. option A), which is what deleting a layer from a VGG-like net means.
"""
from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ..errors import ReslabError
from ..models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from ..models.layers import ShortcutA
from ..models.resnet import ResNet
from ..utils.seeding import epoch_seed


class ShortcutOnly(nn.Module):
    """What a deleted block computes."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if not isinstance(block, (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)):
            raise ReslabError(f"lesions are defined for the original and pre-activation units and their plain "
                              f"twins, not for {type(block).__name__} (a 2016 Table 2 variant)")
        self.block = block
        self.preact = isinstance(block, (PreActBasicBlock, PreActBottleneck))
        self.identity = None
        if not block.residual:  # a plain block: identity, option-A style where the shape changes
            conv = block.conv1
            out_ch = block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels
            stride = max(m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d))
            self.identity = ShortcutA(conv.in_channels, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity is not None:
            return self.identity(x)
        b = self.block
        pre = b.relu(b.bn1(x)) if self.preact and b.shortcut_sees_preact else x
        out = b._identity(x, pre)
        return out if self.preact else torch.relu(out)


def residual_blocks(model: ResNet) -> list[tuple[str, int, nn.Module]]:
    """(stage name, index, block) of every block, in depth order."""
    return [(name, i, block) for name in model.stage_names for i, block in enumerate(getattr(model, name))]


@contextlib.contextmanager
def lesioned(model: ResNet, deleted: Sequence[int]) -> Iterator[ResNet]:
    """The model with blocks `deleted` (indices into residual_blocks) replaced by ShortcutOnly."""
    blocks = residual_blocks(model)
    bad = [d for d in deleted if not 0 <= d < len(blocks)]
    if bad:
        raise ReslabError(f"block indices {bad} out of range 0..{len(blocks) - 1}")
    saved = []
    try:
        for d in deleted:
            stage, i, block = blocks[d]
            getattr(model, stage)[i] = ShortcutOnly(block)
            saved.append((stage, i, block))
        yield model
    finally:
        for stage, i, block in saved:
            getattr(model, stage)[i] = block


def random_deletions(n_blocks: int, k: int, draws: int, seed: int = 0) -> list[list[int]]:
    """`draws` distinct random sets of k blocks (fewer when there are fewer than `draws` such sets)."""
    rng = random.Random(epoch_seed(seed, k))
    possible = math.comb(n_blocks, k)
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < min(draws, possible):
        chosen.add(tuple(sorted(rng.sample(range(n_blocks), k))))
    return [list(c) for c in sorted(chosen)]


def path_length_distribution(n_blocks: int) -> list[float]:
    """Share of the 2^n paths through n residual blocks that pass through k residual branches
    (binomial: C(n, k) / 2^n), k = 0..n (Veit et al., Fig. 6a)."""
    return [math.comb(n_blocks, k) / 2 ** n_blocks for k in range(n_blocks + 1)]
