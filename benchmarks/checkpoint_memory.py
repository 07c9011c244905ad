"""Peak memory of one training step with and without activation checkpointing.

Each measurement runs in a fresh subprocess. On CPU it reports the growth of the peak resident set
(ru_maxrss) over the process's footprint after building the model; on CUDA, torch's peak allocation.

    python benchmarks/checkpoint_memory.py                      # resnet1202, preact_resnet1001, batch 32
    python benchmarks/checkpoint_memory.py --models resnet110 --batch 64 --device cuda
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(name: str, ckpt: bool, batch: int, device: str) -> dict:
    import torch
    from reslab import create_model
    torch.manual_seed(0)
    model = create_model(name).to(device).train().set_grad_checkpointing(ckpt)
    size = 32 if model.cfg.stem == "cifar" else 224
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, model.cfg.num_classes, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"model": name, "checkpointing": ckpt, "batch": batch, "device": device,
            "step_mib": round((peak - base) / 2**20, 1), "seconds": round(time.perf_counter() - t, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet1202", "preact_resnet1001"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=2, metavar=("NAME", "CKPT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] == "1", args.batch, args.device)))
        return
    import torch
    print(f"torch {torch.__version__}, device {args.device}, batch {args.batch}, one SGD step")
    print(f"{'model':<20} {'checkpointing':>13} {'step memory':>12} {'time':>8}")
    for name in args.models:
        rows = []
        for ckpt in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", name, str(int(ckpt)), "--batch", str(args.batch),
                                  "--device", args.device], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{name:<20} {('on' if ckpt else 'off'):>13} {r['step_mib']:>9.1f} MiB {r['seconds']:>7.1f}s")
        print(f"{'':<20} {'ratio':>13} {rows[0]['step_mib'] / max(rows[1]['step_mib'], 1e-9):>11.2f}x")


if __name__ == "__main__":
    main()
