"""Stage 1: what machine this is (seconds)."""
from __future__ import annotations

import inspect
import os
import platform
import shutil
import subprocess
from importlib import metadata

import torch
from reslab.training import build_config
from reslab.training.device import resolve_speed

from .core import Stage
from .data import DATA_DIR, ROOT
from .plan import dtype_name


def run(ctx, stage: Stage) -> None:
    f = stage.facts
    dev = ctx.device
    f["device"] = str(dev)
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        f["GPU"] = p.name
        f["GPU memory (GiB)"] = round(p.total_memory / 2**30, 1)
        f["compute capability"] = f"{p.major}.{p.minor}"
        f["multiprocessors"] = p.multi_processor_count
        f["bf16 supported"] = torch.cuda.is_bf16_supported()
        f["driver"] = _shell(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    else:
        f["CPU"] = _cpu_name()
    f["torch"] = torch.__version__
    f["CUDA (torch built with)"] = torch.version.cuda or "none"
    f["cuDNN"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
    f["CPU cores (os.cpu_count / usable)"] = f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}"
    f["/dev/shm (DataLoader workers' batches)"] = _disk("/dev/shm")
    f["python"] = platform.python_version()
    for pkg in ("torchvision", "timm", "triton", "numpy", "pillow", "simplejpeg"):
        f[pkg] = _version(pkg)
    speed = resolve_speed(build_config("cifar-paper", {"run.device": str(dev)}).run)
    f["reslab auto switches here"] = (f"amp {dtype_name(speed.amp_dtype)}, channels_last {speed.channels_last}, "
                                      f"compile {speed.compile_mode or 'off'}")
    if dev.type == "cuda":
        f["TF32 (cuDNN conv / matmul)"] = f"{torch.backends.cudnn.allow_tf32} / {torch.backends.cuda.matmul.allow_tf32}"
        f["cudnn.benchmark (at start / in reslab's training here)"] = (
            f"{torch.backends.cudnn.benchmark} / {_reslab_benchmark()}")
    f["reslab commit"] = _commit()
    stage.status = "done"


def _reslab_benchmark() -> str:
    """What reslab's training sets cudnn.benchmark to on CUDA, read from the code that sets it."""
    try:
        from reslab.training import setup
        src = inspect.getsource(setup.build_run)
    except (ImportError, AttributeError, OSError, TypeError):
        return "unknown"
    if "cudnn.benchmark = True" in src:
        return "True (reslab.training.setup.build_run, CUDA runs)"
    return "not set by reslab (PyTorch's default, False)"


def _commit() -> str:
    """git describe where .git travelled; else gpu-data/COMMIT, written before the device call (see the docs)."""
    described = _shell(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    if described:
        return described
    try:
        return (DATA_DIR / "COMMIT").read_text().strip().splitlines()[0] + " (gpu-data/COMMIT)"
    except (OSError, IndexError):
        return "unknown (no .git, no gpu-data/COMMIT)"


def _disk(path: str) -> str:
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return "absent"
    return f"{u.total / 2**30:.1f} GiB, {u.free / 2**30:.1f} free"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "absent"


def _shell(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
