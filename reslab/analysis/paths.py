"""Gradient per path length (Veit, Wilber, Belongie, NeurIPS 2016, Fig. 6b-c).

A network of n residual blocks unrolls into 2^n paths: at each block a path goes through the residual
branch F or through the shortcut s. With the forward pass fixed (BN in eval mode, ReLU masks set by the
forward values), the backward pass is linear, and the input gradient is exactly the sum over the 2^n
paths of the gradient that flows along each one. To measure the paths of length k, the gradient is
routed: for k chosen blocks it flows back through F only, for the n - k others through s only. The
forward values are unchanged (one of F(x), s(x) is detached, not removed), so every routing sees the
same activations. The gradient is read at the input of the first block, where every path starts.

Veit et al. multiply the mean magnitude of a length-k path by the number of such paths, C(n, k), to get
each length's share of the total gradient: in their ResNet-110 almost all of it comes from paths of
5-17 blocks, far shorter than the network. Plain nets have a single path and are not measured.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError
from ..models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from ..models.resnet import ResNet
from .lesion import random_deletions, residual_blocks


ROUTABLE = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)
PREACT = (PreActBasicBlock, PreActBottleneck)


def routable(block: nn.Module) -> bool:
    """A residual unit of the original or pre-activation kind (the ones whose paths are defined here)."""
    return isinstance(block, ROUTABLE) and block.residual


class RoutedBlock(nn.Module):
    """A block whose forward is unchanged but whose gradient flows through F only (branch=True) or
    through the shortcut only (branch=False)."""

    def __init__(self, block: nn.Module, branch: bool, capture_input: bool = False) -> None:
        super().__init__()
        if not routable(block):
            raise ReslabError("gradients per path length are defined for residual nets of the original or "
                              f"pre-activation units, not for {type(block).__name__}"
                              f"{'' if getattr(block, 'residual', True) else ' without shortcuts (a plain net has one path)'}")
        self.block, self.branch, self.capture_input = block, branch, capture_input
        self.captured: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.capture_input:  # the paths start here: their gradients are read at this tensor
            x = x.detach().requires_grad_(True)
            self.captured = x
        b = self.block
        pre = b.relu(b.bn1(x)) if isinstance(b, PREACT) else x
        f, s = b.residual_branch(pre), b._identity(x, pre)
        out = f + s.detach() if self.branch else f.detach() + s
        return out if isinstance(b, PREACT) else torch.relu(out)


@contextlib.contextmanager
def routed(model: ResNet, through_branch: Sequence[int]) -> Iterator[RoutedBlock]:
    """The model with every block routed: through F for the blocks in `through_branch`, through the
    shortcut for the others. Yields the first block's wrapper (its `captured` input holds the gradient)."""
    blocks = residual_blocks(model)
    chosen = set(through_branch)
    if any(not 0 <= d < len(blocks) for d in chosen):
        raise ReslabError(f"block indices out of range 0..{len(blocks) - 1}: {sorted(chosen)}")
    wrappers = [RoutedBlock(block, d in chosen, capture_input=d == 0) for d, (_, _, block) in enumerate(blocks)]
    try:
        for (stage, i, _), w in zip(blocks, wrappers):
            getattr(model, stage)[i] = w
        yield wrappers[0]
    finally:
        for stage, i, block in blocks:
            getattr(model, stage)[i] = block


def path_gradient(model: ResNet, x: torch.Tensor, y: torch.Tensor, through_branch: Sequence[int]) -> torch.Tensor:
    """The gradient of the mean cross-entropy at the first block's input, along the paths that go
    through the residual branches of `through_branch` and the shortcuts of every other block."""
    with routed(model, through_branch) as first, torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y)
        (grad,) = torch.autograd.grad(loss, first.captured)  # the input's gradient only, no weight gradients
        return grad


def gradient_per_path_length(model: ResNet, x: torch.Tensor, y: torch.Tensor, draws: int = 4, seed: int = 0,
                             progress=None) -> list[dict]:  # progress(backward passes done)
    """For k = 0..n: the mean and std of the L2 norm of one length-k path's input gradient over `draws`
    distinct random routings (fewer where C(n, k) is smaller), and that mean times C(n, k), from which
    each length's share of the total (Veit et al., Fig. 6b-c).
    The model is put in eval mode (fixed BN statistics: the backward pass is then linear)."""
    model.eval()
    n = len(residual_blocks(model))
    rows, done = [], 0
    for k in range(n + 1):
        norms = []
        for route in random_deletions(n, k, draws, seed):
            norms.append(float(path_gradient(model, x, y, route).norm()))
            done += 1
            if progress is not None:
                progress(done)
        mean = sum(norms) / len(norms)
        std = (sum((v - mean) ** 2 for v in norms) / (len(norms) - 1)) ** 0.5 if len(norms) > 1 else 0.0
        rows.append({"k": k, "grad_norm_mean": mean, "grad_norm_std": std, "paths": math.comb(n, k),
                     "total": mean * math.comb(n, k)})
    total = sum(r["total"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["total"] / total
    return rows


def effective_lengths(rows: list[dict], mass: float = 0.9) -> tuple[int, int]:
    """The shortest range of path lengths holding `mass` of the total gradient."""
    best = (0, len(rows) - 1)
    for lo in range(len(rows)):
        acc = 0.0
        for hi in range(lo, len(rows)):
            acc += rows[hi]["share"]
            if acc >= mass - 1e-12:
                if hi - lo < best[1] - best[0]:
                    best = (lo, hi)
                break
    return best
