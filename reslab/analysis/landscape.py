"""Loss landscapes (Li, Xu, Taylor, Studer, Goldstein, NeurIPS 2018): the loss and error on a fixed set
of training images at theta + a * d1 + b * d2, for random directions d1, d2 with filter-wise
normalisation.

Filter-wise normalisation: each filter of a direction (one output channel of a convolution, one row of
the classifier) is rescaled to the norm of the same filter of the weights, so that directions are
comparable between networks and between layers whatever their scale; 1-D parameters (BatchNorm's
weight and bias, biases) get a zero direction, as in the paper ("ignore biasbn").

BatchNorm running statistics: `bn="frozen"` evaluates every point in eval mode with the trained
statistics (the paper's code evaluates the perturbed network as it is); `bn="recompute"` first
re-estimates the statistics on the images at each point (cumulative average over the set, one
train-mode pass), which removes the mismatch between perturbed weights and stale statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ReslabError
from ..utils.progress import Progress

BN_MODES = ("frozen", "recompute")


def random_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A Gaussian direction, filter-wise normalised to the model's weights; zero on 1-D parameters.

    Drawn parameter by parameter in the model's order from one seeded generator, so models with the
    same parameter shapes (a ResNet and its plain twin) get the same direction for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in model.named_parameters():
        w = p.detach().float().cpu()
        d = torch.randn(w.shape, generator=gen)
        if w.dim() <= 1:
            out[name] = torch.zeros_like(w)
            continue
        wf, df = w.flatten(1), d.flatten(1)  # one row per filter (output channel / output neuron)
        scale = wf.norm(dim=1, keepdim=True) / df.norm(dim=1, keepdim=True).clamp(min=1e-10)
        out[name] = (df * scale).view_as(w)
    return out


@dataclass
class Landscape:
    coords: list[float]          # grid coordinates along each direction
    loss: torch.Tensor           # (n,) for 1-D, (n, n) for 2-D: [i along d1, j along d2]
    err: torch.Tensor


@torch.no_grad()
def loss_landscape(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 11,
                   span: float = 1.0, dims: int = 2, seed: int = 0, bn: str = "frozen", batch_size: int = 500,
                   device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None,
                   progress: bool = True, desc: str = "landscape") -> Landscape:
    """Loss and top-1 error over a steps^dims grid in [-span, span]^dims around the model's weights.
    `images` are network inputs (normalised float), evaluated in batches of `batch_size`."""
    if bn not in BN_MODES:
        raise ReslabError(f"bn={bn!r}: choose one of {', '.join(BN_MODES)}")
    if dims not in (1, 2) or steps < 2 or span <= 0:
        raise ReslabError(f"need dims 1 or 2, steps >= 2 and span > 0 (got {dims}, {steps}, {span})")
    dev = torch.device(device)
    model = model.to(dev).eval()
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    dirs = [random_direction(model, seed + k) for k in range(dims)]
    dirs = [{n: d.to(dev, theta[n].dtype) for n, d in direction.items()} for direction in dirs]
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    coords = torch.linspace(-span, span, steps).tolist()
    grid = [(a,) for a in coords] if dims == 1 else [(a, b) for a in coords for b in coords]
    losses, errs = torch.empty(len(grid)), torch.empty(len(grid))
    bar = Progress(len(grid), desc=desc, unit="point", enabled=progress)
    params = dict(model.named_parameters())
    try:
        for i, point in enumerate(grid):
            for n, p in params.items():
                p.copy_(theta[n] + sum(c * d[n] for c, d in zip(point, dirs)))
            if bn == "recompute":
                _recompute_bn(model, images, batch_size, dev, amp_dtype)
            losses[i], errs[i] = _evaluate(model, images, labels, batch_size, dev, amp_dtype)
            bar.update(i + 1)
    finally:
        for n, p in params.items():
            p.copy_(theta[n])
        for n, b in model.named_buffers():
            b.copy_(buffers[n])
        bar.close()
    shape = (steps,) if dims == 1 else (steps, steps)
    return Landscape(coords, losses.view(shape), errs.view(shape))


def _evaluate(model, images, labels, batch_size, dev, amp_dtype) -> tuple[float, float]:
    loss_sum, wrong = 0.0, 0
    for s in range(0, len(images), batch_size):
        x, y = images[s:s + batch_size].to(dev), labels[s:s + batch_size].to(dev)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        wrong += int((logits.argmax(1) != y).sum())
    return loss_sum / len(images), wrong / len(images)


def _recompute_bn(model, images, batch_size, dev, amp_dtype) -> None:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    try:
        for s in range(0, len(images), batch_size):
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                model(images[s:s + batch_size].to(dev))
    finally:
        model.eval()
        for m, momentum in zip(bns, saved):
            m.momentum = momentum


def roughness(land: Landscape) -> dict[str, float]:
    """Numbers for 'smooth and convex-like' vs 'chaotic' on a 2-D grid: local minima of the grid (a
    convex-like bowl has one), the share of interior points where the finite-difference Hessian has a
    negative eigenvalue (non-convexity), and the loss rise from the centre to the grid's edge."""
    z = land.loss.double()
    if z.dim() != 2:
        return {"loss_centre": float(z[len(z) // 2]), "loss_edge_mean": float((z[0] + z[-1]) / 2)}
    n = z.shape[0]
    minima = 0
    for i in range(n):
        for j in range(n):
            nb = z[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            minima += int(z[i, j] <= nb.min())
    zxx = z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]
    zyy = z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]
    zxy = (z[2:, 2:] - z[2:, :-2] - z[:-2, 2:] + z[:-2, :-2]) / 4
    lam_min = (zxx + zyy) / 2 - torch.sqrt(((zxx - zyy) / 2) ** 2 + zxy ** 2)
    edge = torch.cat([z[0], z[-1], z[1:-1, 0], z[1:-1, -1]])
    c = n // 2
    return {"local_minima": float(minima), "non_convex_share": float((lam_min < 0).double().mean()),
            "loss_centre": float(z[c, c]), "loss_edge_mean": float(edge.mean())}
