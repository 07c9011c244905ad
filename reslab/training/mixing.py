"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) in the training step, with timm's semantics.

timm's `Mixup` in its default batch mode: with probability `prob` a batch is mixed; when both are on,
CutMix is chosen with probability `switch_prob`; one lambda ~ Beta(alpha, alpha) for the whole batch;
each sample is mixed with its mirror in the batch (`x.flip(0)`: the batch is already in random order);
CutMix's box is timm's `rand_bbox` (side sqrt(1 - lambda) of the image's, centre uniform, clipped),
and lambda is corrected to 1 - box area / image area. Targets are timm's `mixup_target`: label-smoothed
one-hots (off = smoothing / K, on = 1 - smoothing + off), mixed with the same lambda.

The random numbers come from a generator that is a pure function of (seed, step, rank), apart from
the augmentation stream of the batch, so a resumed run mixes exactly as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def mix_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The mixing stream of one training step on one rank."""
    digest = hashlib.blake2b(f"mix|{seed}|{step}|{rank}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def mixup_target(y: torch.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0) -> torch.Tensor:
    """timm's mixup_target: smoothed one-hots of y and of y.flip(0), mixed lam : 1 - lam."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = torch.full((len(y), num_classes), off, device=y.device).scatter_(1, y.long().view(-1, 1), on)
    return y1 * lam + y1.flip(0) * (1.0 - lam)


def cutmix_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[tuple[int, int, int, int], float]:
    """timm's rand_bbox (no margin) and the corrected lambda: ((top, bottom, left, right), 1 - area / (h w))."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (), generator=gen))
    cx = int(torch.randint(0, w, (), generator=gen))
    yl, yh = min(max(cy - cut_h // 2, 0), h), min(max(cy + (cut_h + 1) // 2, 0), h)
    xl, xh = min(max(cx - cut_w // 2, 0), w), min(max(cx + (cut_w + 1) // 2, 0), w)
    return (yl, yh, xl, xh), 1.0 - (yh - yl) * (xh - xl) / float(h * w)


def sample_beta(alpha: float, gen: torch.Generator) -> float:
    """One draw of Beta(alpha, alpha) from gen (torch.distributions has no generator argument)."""
    conc = torch.tensor([alpha, alpha], dtype=torch.float64)
    return float(torch._sample_dirichlet(conc, generator=gen)[0])


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (timm's SoftTargetCrossEntropy), averaged over the batch."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


@dataclass(frozen=True)
class Mixer:
    num_classes: int
    mixup: float = 0.0          # Beta alpha of mixup; 0: off
    cutmix: float = 0.0         # Beta alpha of CutMix; 0: off
    prob: float = 1.0           # probability that a batch is mixed
    switch_prob: float = 0.5    # with both on: probability of CutMix
    smoothing: float = 0.0      # label smoothing folded into the soft targets

    def params(self, gen: torch.Generator) -> tuple[float, bool]:
        """(lambda, use CutMix) of one batch: timm's `_params_per_batch`, drawing from gen."""
        if float(torch.rand((), generator=gen, dtype=torch.float64)) >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix > 0
        if self.mixup > 0 and self.cutmix > 0:
            use_cutmix = float(torch.rand((), generator=gen, dtype=torch.float64)) < self.switch_prob
        return sample_beta(self.cutmix if use_cutmix else self.mixup, gen), use_cutmix

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed batch, soft targets N x K). x is not modified."""
        lam, use_cutmix = self.params(gen)
        if lam != 1.0:
            if use_cutmix:
                (yl, yh, xl, xh), lam = cutmix_box(x.shape[-2], x.shape[-1], lam, gen)
                x = x.clone()
                x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
            else:
                x = x * lam + x.flip(0) * (1.0 - lam)
        return x, mixup_target(y, self.num_classes, lam, self.smoothing)


def make_mixer(data_cfg, num_classes: int, label_smoothing: float) -> Mixer | None:
    """The run's Mixer from data.mixup / data.cutmix / data.mix_prob / data.mix_switch_prob; None when off."""
    if data_cfg.mixup <= 0 and data_cfg.cutmix <= 0:
        return None
    return Mixer(num_classes, data_cfg.mixup, data_cfg.cutmix, data_cfg.mix_prob, data_cfg.mix_switch_prob,
                 label_smoothing)


def dominant_label(target: torch.Tensor) -> torch.Tensor:
    """The label with the largest weight in a soft target (the train-error metric counts against it)."""
    return target.argmax(dim=1)
