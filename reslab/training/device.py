"""Resolve the speed switches ("auto") for the device at hand."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ReslabError
from ..utils.device import cpu_has_bf16, resolve_device


@dataclass(frozen=True)
class Speed:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile_mode: str | None


def resolve_speed(rc, local_rank: int = 0) -> Speed:
    device = resolve_device(rc.device, local_rank)
    cuda = device.type == "cuda"
    amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}.get(rc.amp)
    if rc.amp == "auto":  # bf16 where the hardware has it: measured 1.9x (resnet20) and 3.6x (resnet50) on an AVX512-BF16 CPU
        amp = torch.bfloat16 if (cuda and torch.cuda.is_bf16_supported()) or (not cuda and cpu_has_bf16()) else None
    if amp is not None and device.type == "cpu" and amp == torch.float16:
        raise ReslabError("run.amp=fp16 needs a CUDA device; use bf16 or off on CPU")
    # channels_last measured faster for ResNets on both this project's CPU (1.2-1.7x) and GPUs
    channels_last = rc.channels_last != "off"
    if rc.compile == "auto":  # on CPU inductor measured 0.98x of eager for the ResNet-20 step (docs/RESULTS.md)
        compile_mode = "default" if cuda else None
    else:
        compile_mode = None if rc.compile == "off" else rc.compile
    return Speed(device, amp, channels_last, compile_mode)
