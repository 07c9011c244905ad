"""Gradient flow through the blocks, and how correlated the gradients of nearby inputs are.

A residual block computes x_{l+1} = x_l + F(x_l), so dL/dx_l = dL/dx_L * prod(1 + dF/dx): the
identity term carries the gradient from the top to every block. A plain block has no such term.
`block_gradient_norms` measures ||dL/dx_l|| at the input of every block (and at the output of the
last), `gradient_correlation` measures the "shattered gradients" effect (Balduzzi et al. 2017):
the cosine similarity of the input gradients at nearby inputs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.resnet import ResNet


def _block_inputs(model: ResNet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Forward pass returning the logits and the input of every block plus the last block's output."""
    captured: list[torch.Tensor] = []
    blocks = model.blocks()
    hooks = [b.register_forward_pre_hook(lambda m, args: captured.append(args[0])) for b in blocks]
    hooks.append(blocks[-1].register_forward_hook(lambda m, args, out: captured.append(out)))
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, captured


def block_gradient_norms(model: ResNet, x: torch.Tensor, y: torch.Tensor, train_mode_bn: bool = True) -> list[float]:
    """||dL/dx_l|| (Frobenius norm over the batch) for l = input of block 0 .. output of the last block.

    BN in training mode by default: the statistics of the batch itself, as during training.
    """
    was_training = model.training
    model.train(train_mode_bn)
    try:
        logits, acts = _block_inputs(model, x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        grads = torch.autograd.grad(loss, acts)
    finally:
        model.train(was_training)
    return [g.float().norm().item() for g in grads]


def gradient_correlation(model: ResNet, x: torch.Tensor, steps: int = 8, scale: float = 1e-2, seed: int = 0,
                         train_mode_bn: bool = True) -> dict[str, list[float] | float]:
    """Cosine similarity of d f / d input at points x + t * delta along a random direction (t = 0..steps-1).

    f is a fixed random projection of the logits (a scalar "network output" as in Balduzzi et al.);
    delta has norm `scale` times the image's norm. Returns the mean similarity of neighbours
    ("neighbour_cos") and of each point with the first ("decay", t = 1..steps-1), over images.
    """
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    u = torch.randn(x.shape, generator=gen).to(x)
    u = u / u.flatten(1).norm(dim=1).view(n, 1, 1, 1)
    step = scale * x.flatten(1).norm(dim=1).view(n, 1, 1, 1)
    pts = torch.stack([x + t * step * u for t in range(steps)], dim=1).flatten(0, 1).requires_grad_(True)
    was_training = model.training
    model.train(train_mode_bn)
    try:
        logits = model(pts).float()
        w = torch.randn(logits.shape[1], generator=gen).to(logits)
        (g,) = torch.autograd.grad((logits @ w).sum(), pts)
    finally:
        model.train(was_training)
    g = g.flatten(1).view(n, steps, -1)
    g = g / g.norm(dim=2, keepdim=True).clamp(min=1e-30)
    neighbour = (g[:, 1:] * g[:, :-1]).sum(2).mean().item()
    decay = (g[:, 1:] * g[:, :1]).sum(2).mean(0).tolist()
    return {"neighbour_cos": neighbour, "decay": decay}
