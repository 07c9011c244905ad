"""Optimizer with the usual parameter groups, and an exponential moving average of the weights."""
from __future__ import annotations

import copy

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool,
                 backbone_lr: float = 1.0) -> list[dict]:
    """Trainable parameters grouped by weight decay and, for fine-tuning, by learning-rate scale
    (`lr_scale`: backbone_lr for everything but the classifier `fc`, 1 for the classifier)."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = weight_decay if decay_norm_and_bias or p.ndim > 1 else 0.0  # BN weights and biases are 1-D
        scale = 1.0 if name.startswith("fc.") else backbone_lr
        groups.setdefault((decay, scale), []).append(p)
    return [{"params": ps, "weight_decay": decay, "lr_scale": scale} for (decay, scale), ps in groups.items()]


def make_optimizer(model: nn.Module, oc, backbone_lr: float = 1.0) -> torch.optim.Optimizer:
    """optim.name: sgd (momentum, Nesterov) or adamw (decoupled weight decay); each parameter group keeps
    its own weight decay (none on BN parameters and biases with decay_norm_and_bias false)."""
    groups = param_groups(model, oc.weight_decay, oc.decay_norm_and_bias, backbone_lr)
    # foreach kernels: one launch per group rather than per tensor
    if getattr(oc, "name", "sgd") == "adamw":
        return torch.optim.AdamW(groups, lr=oc.lr, betas=(float(oc.betas[0]), float(oc.betas[1])), eps=oc.eps,
                                 foreach=True)
    return torch.optim.SGD(groups, lr=oc.lr, momentum=oc.momentum, nesterov=oc.nesterov and oc.momentum > 0,
                           foreach=True)


class EMA:
    """ema = decay * ema + (1 - decay) * weights, after every step; buffers (BN statistics) copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.module.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
