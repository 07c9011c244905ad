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


def make_optimizer(model: nn.Module, oc, backbone_lr: float = 1.0):
    """optim.name: sgd (momentum, Nesterov), adamw (decoupled weight decay), radam (RAdam, decoupled weight
    decay) or ranger (RAdam inside Lookahead: fastai's Imagenette optimiser); each parameter group keeps its
    own weight decay (none on BN parameters and biases with decay_norm_and_bias false)."""
    groups = param_groups(model, oc.weight_decay, oc.decay_norm_and_bias, backbone_lr)
    name = getattr(oc, "name", "sgd")
    betas = (float(oc.betas[0]), float(oc.betas[1])) if hasattr(oc, "betas") else (0.9, 0.999)
    # foreach kernels: one launch per group rather than per tensor
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=oc.lr, betas=betas, eps=oc.eps, foreach=True)
    if name in ("radam", "ranger"):
        radam = torch.optim.RAdam(groups, lr=oc.lr, betas=betas, eps=oc.eps, decoupled_weight_decay=True, foreach=True)
        return radam if name == "radam" else Lookahead(radam, oc.lookahead_k, oc.lookahead_alpha)
    return torch.optim.SGD(groups, lr=oc.lr, momentum=oc.momentum, nesterov=oc.nesterov and oc.momentum > 0,
                           foreach=True)


class Lookahead:
    """Lookahead (Zhang et al. 2019) around any optimiser: every k steps the slow weights move `alpha` of the way
    to the fast ones, and the fast weights restart from there. It shares the inner optimiser's param_groups (the
    trainer sets their lr), and its state (the slow weights, its step count) is saved and resumed with it."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        self.inner, self.k, self.alpha = inner, int(k), float(alpha)
        self.param_groups = inner.param_groups
        self.slow = [[p.detach().clone() for p in g["params"]] for g in self.param_groups]
        self.steps = 0

    @property
    def state(self):
        return self.inner.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.inner.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group, slow in zip(self.param_groups, self.slow):
                torch._foreach_lerp_(slow, group["params"], self.alpha)
                torch._foreach_copy_(group["params"], slow)
        return loss

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "slow": [[t.clone() for t in s] for s in self.slow],
                "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["inner"])
        for dst, src in zip(self.slow, state["slow"]):
            torch._foreach_copy_(dst, [t.to(d.device) for t, d in zip(src, dst)])
        self.steps = int(state["steps"])


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
