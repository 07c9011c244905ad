"""The one ResNet class behind every preset: stem, stages of residual units, pooled classifier.

Interface (as timm): forward, forward_features, forward_head, reset_classifier, feature_info and
forward_stages for multi-scale backbones, set_grad_checkpointing for deep nets in little memory.
Every preset can be scripted (torch.jit.script), exported (torch.export) and compiled with
fullgraph=True, with and without activation checkpointing.
"""

import dataclasses
import functools
import math
from typing import Dict, List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ReslabError
from .variants import block_class
from .config import ResNetConfig
from .pooling import stem_pool


class ResNet(nn.Module):
    __jit_ignored_attributes__ = ["pretrained_cfg"]  # plain Python metadata, not part of the scripted graph

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained_cfg = {}  # timm's attribute: how the weights expect their input ({}: random init);
        # set by reslab.create_model / load_model and training runs (reslab/api.py), read by timm's resolve_data_config
        self.grad_checkpointing = False
        self._eval_always: list[nn.Module] = []  # frozen parts: kept in eval mode by train()
        self._build_stem(cfg)
        unit = block_class(cfg.block, cfg.resolved_unit == "full_preact", cfg.resolved_unit)
        total = sum(cfg.layers)
        in_ch, index, reduction, dilation = cfg.stem_width, 0, self._stem_reduction, 1
        self.feature_info: list[dict] = [dict(index=0, module="stem", num_chs=cfg.stem_width, reduction=reduction)]
        self.stage_names: List[str] = []
        for s, (n, planes) in enumerate(zip(cfg.layers, cfg.widths)):
            stride, first_dilation = (1 if s == 0 else 2), dilation
            if s > 0 and cfg.dilated_stages[s - 1]:  # output stride kept: dilate instead of striding
                dilation, stride = dilation * stride, 1
            blocks = []
            for b in range(n):
                # stochastic depth: linear decay from 0 (first block) to drop_path_rate (last block)
                dp = cfg.drop_path_rate * index / max(total - 1, 1)
                blocks.append(unit(in_ch, planes, stride if b == 0 else 1, cfg.shortcut, cfg.residual, dp,
                                   cfg.groups, cfg.base_width, cfg.stride_on, dilation=dilation,
                                   first_dilation=first_dilation if b == 0 else dilation,
                                   avg_down=cfg.avg_down, aa=cfg.aa))
                in_ch = planes * cfg.expansion
                index += 1
            name = f"layer{s + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            reduction *= stride * (2 if s == 0 and cfg.stem == "imagenet" else 1)  # the stem's max-pool
            self.feature_info.append(dict(index=s + 1, module=name, num_chs=in_ch, reduction=reduction))
        # Pre-activation nets end with BN + ReLU before pooling (2016 paper).
        self.bn_final = nn.BatchNorm2d(in_ch) if cfg.resolved_unit == "full_preact" else None
        self.num_features = in_ch
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_ch, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self._init_weights()

    # ----------------------------------------------------------------------------- construction
    def _build_stem(self, cfg: ResNetConfig) -> None:
        if cfg.stem == "imagenet":
            self.conv1 = deep_stem(cfg) if cfg.stem_type else nn.Conv2d(cfg.in_chans, cfg.stem_width, 7, stride=2,
                                                                           padding=3, bias=False)
            self.maxpool = stem_pool(cfg.aa, cfg.stem_width)
            self._stem_reduction = 2  # conv1; the max-pool belongs to stage 1's reduction
        else:
            self.conv1 = nn.Conv2d(cfg.in_chans, cfg.stem_width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
            self._stem_reduction = 1
        # Pre-activation nets leave the stem un-normalised: the first unit's BN-ReLU follows it.
        self.bn1 = None if cfg.resolved_unit == "full_preact" else nn.BatchNorm2d(cfg.stem_width)
        self.relu = nn.ReLU(inplace=True)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if isinstance(self.fc, nn.Linear):  # torch's default Linear init, as torchvision
            self.fc.reset_parameters()
        if self.cfg.zero_init_residual:
            for block in self.blocks():
                block.zero_init_last()

    # ----------------------------------------------------------------------------- structure
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, n) for n in self.stage_names]

    def blocks(self) -> list[nn.Module]:
        return [b for stage in self.stages() for b in stage]

    def set_grad_checkpointing(self, enable: bool = True) -> "ResNet":
        """Recompute activations in the backward pass: O(sqrt(blocks)) activation memory."""
        self.grad_checkpointing = bool(enable)
        return self

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (e.g. for fine-tuning); 0 removes it and forward returns pooled features."""
        if int(num_classes) < 0:
            raise ReslabError(f"num_classes must be >= 0, got {num_classes}")
        ref = next(self.parameters())  # the new head follows the model's device and precision
        self.fc = (nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype) if num_classes > 0
                   else nn.Identity())
        self.cfg = _replace(self.cfg, num_classes=max(int(num_classes), 0))

    # ----------------------------------------------------------------------------- fine-tuning
    def stem_modules(self) -> list[nn.Module]:
        """The stem's layers with weights (a deep stem's inner BNs are inside conv1)."""
        return [m for m in (self.conv1, self.bn1) if m is not None]

    def freeze(self, stages: int = 0, bn_stats: bool = False) -> "ResNet":
        """Freeze the stem and the first `stages` stages (weights and BN statistics), and with
        `bn_stats` keep every BatchNorm's running statistics fixed (its affine part still trains).

        Frozen parts stay in eval mode through later `train()` calls (DDP and torch.compile call it).
        """
        if not 0 <= int(stages) <= len(self.stage_names):
            raise ReslabError(f"cannot freeze {stages} stages: this model has {len(self.stage_names)} "
                              f"(0 freezes nothing, {len(self.stage_names)} freezes the whole trunk)")
        frozen: list[nn.Module] = (self.stem_modules() + self.stages()[:int(stages)]) if stages else []
        for m in frozen:
            m.requires_grad_(False)
        self._eval_always = frozen + ([m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
                                      if bn_stats else [])
        return self.train(self.training)

    def train(self, mode: bool = True) -> "ResNet":
        super().train(mode)
        for m in self._eval_always:
            m.eval()
        return self

    # ----------------------------------------------------------------------------- forward
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        return x

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn_final(x)) if self.bn_final is not None else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (after the final BN-ReLU in pre-activation nets), before pooling."""
        x = self.maxpool(self.forward_stem(x))
        if self.grad_checkpointing and self.training and torch.is_grad_enabled() and not torch.jit.is_scripting():
            x = self._forward_checkpointed(x)
        else:
            for name, stage in self.named_children():
                if name.startswith("layer"):
                    x = stage(x)
        return self._final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.export
    def forward_stages(self, x: torch.Tensor, indices: Optional[List[int]] = None) -> List[torch.Tensor]:
        """Feature maps of the chosen stages (0 = stem, 1.. = layer1..; default: every stage), for
        detection/segmentation. Channels and strides of each index are in `feature_info`. The last stage
        is returned after the final BN-ReLU in pre-activation nets (as forward_features), the others as
        the residual stream."""
        n = len(self.stage_names)
        wanted = list(range(1, n + 1)) if indices is None else indices
        if not torch.jit.is_scripting():
            self._check_indices(wanted)
        top = max(wanted)
        feats: Dict[int, torch.Tensor] = {}
        x = self.forward_stem(x)
        if 0 in wanted:
            feats[0] = x
        x = self.maxpool(x)
        i = 0
        for name, stage in self.named_children():
            if name.startswith("layer"):
                i += 1
                if i <= top:
                    x = stage(x)
                    if i in wanted:
                        feats[i] = self._final_norm(x) if i == n else x
        return [feats[j] for j in wanted]

    @torch.jit.unused
    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's feature interface: (final features, [feature maps of `indices`]), or the maps alone.

        indices: None (every level: 0 = stem, 1.. = layer1..), an int n (the last n levels) or a list
        (negative counts from the end). stop_early: run no further than the deepest level asked for (the
        "final features" are then that level's). norm is accepted for timm's signature: a ResNet has no
        final norm, and a pre-activation net's final BN-ReLU is always applied to the last stage."""
        if output_fmt != "NCHW":
            raise ReslabError(f"output_fmt={output_fmt!r}: ResNets give NCHW feature maps")
        n = len(self.stage_names)
        if indices is None:
            take = list(range(n + 1))
        elif isinstance(indices, int):
            take = list(range(n + 1 - indices, n + 1))
        else:
            take = [int(i) + n + 1 if int(i) < 0 else int(i) for i in indices]
        self._check_indices(take)
        if intermediates_only:
            return self.forward_stages(x, take)
        run = sorted(set(take) | ({max(take)} if stop_early else {n}))
        feats = dict(zip(run, self.forward_stages(x, run)))
        return feats[max(take) if stop_early else n], [feats[i] for i in take]

    @torch.jit.unused
    def _check_indices(self, indices: List[int]) -> None:
        last = len(self.stage_names)
        bad = [i for i in indices if not 0 <= int(i) <= last]
        if bad or not indices:
            raise ReslabError(f"feature indices {list(indices)} invalid; this model has indices 0..{last}")

    @torch.jit.unused
    def _forward_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        return _checkpointed(self.blocks(), x)


def deep_stem(cfg: ResNetConfig) -> nn.Sequential:
    """ResNet-C's stem (He T. et al. 2019): three 3x3 convs, the first strided, BN-ReLU between them; the
    last conv's BN-ReLU is bn1/relu. Indices as timm's (conv1.0 / .1 / .3 / .4 / .6) so its weights load."""
    half = cfg.stem_width // 2
    first = 3 * (half // 4) if cfg.stem_type == "deep_tiered" else half
    return nn.Sequential(
        nn.Conv2d(cfg.in_chans, first, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(first), nn.ReLU(inplace=True),
        nn.Conv2d(first, half, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        nn.Conv2d(half, cfg.stem_width, 3, stride=1, padding=1, bias=False))


def _replace(cfg: ResNetConfig, **changes) -> ResNetConfig:
    return dataclasses.replace(cfg, **changes)


def _checkpointed(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Run `blocks` in ~sqrt(n) checkpointed segments.

    The recomputation in the backward pass would update the BatchNorm running statistics a second
    time (timm and torchvision do); here it runs with those updates switched off, so a checkpointed
    step leaves exactly the same model state as a normal one.
    """
    n = len(blocks)
    size = max(1, math.isqrt(n))
    for start in range(0, n, size):
        segment = blocks[start:start + size]
        if torch.compiler.is_compiling():
            # Compiled, the recomputation is part of the traced backward graph and the statistics are
            # updated once by the forward graph: the plain function is all that is needed.
            x = checkpoint(functools.partial(_run_blocks, segment), x, use_reentrant=False)
        else:
            x = checkpoint(_RunOnceWithStats(segment), x, use_reentrant=False)
    return x


def _run_blocks(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


class _RunOnceWithStats:
    """Callable for checkpoint(): the first call (forward) updates BN statistics, later calls
    (the recomputation) do not."""

    def __init__(self, segment: list[nn.Module]) -> None:
        self.segment, self.calls = segment, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            return _run_blocks(self.segment, x)
        bns = [m for b in self.segment for m in b.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
        saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
        try:
            for m in bns:
                m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
            return _run_blocks(self.segment, x)
        finally:
            for m, (momentum, tracked) in zip(bns, saved):
                m.momentum = momentum
                m.num_batches_tracked.copy_(tracked)
