"""DistributedDataParallel through torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

Nothing is home-made: torch.distributed with gloo (CPU) or nccl (GPU). A collective that waits longer
than RESLAB_DIST_TIMEOUT seconds (default 300) raises instead of hanging, and torchrun stops the
remaining workers when one exits with an error.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as td


def is_distributed() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if is_distributed() else 0


def world_size() -> int:
    return td.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init(device: torch.device) -> None:
    if not launched_by_torchrun() or is_distributed():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=float(os.environ.get("RESLAB_DIST_TIMEOUT", 300)))
    td.init_process_group(backend=backend, timeout=timeout)


def shutdown() -> None:
    if is_distributed():
        td.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def broadcast_object(obj):
    if not is_distributed():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        td.barrier()
