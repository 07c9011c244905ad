"""End-to-end training throughput (data + step): reslab's pipeline against a straightforward reference
measured in the same run.

reference: uint8 images -> per-sample PIL transforms (pad-crop / random-resized-crop, flip, to-tensor,
           normalise) in a torch DataLoader with workers -> eager NCHW fp32 model.
reslab:    the whole uint8 set on the device, one batched crop/flip/normalise call per batch,
           channels_last, and the speed switches `reslab train` picks for the device ("auto").

    python benchmarks/train_throughput.py                        # CPU: resnet20 @32 b128, resnet50 @224 b32
    python benchmarks/train_throughput.py --device cuda --steps 50
    python benchmarks/train_throughput.py --tiny                 # seconds; what CI runs
    python benchmarks/train_throughput.py --only resnet20 --compile-modes off,default,max-autotune
        # also: reslab's model-only step under each torch.compile mode, compile time apart, eager = 1.00x
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reslab import create_model  # noqa: E402
from reslab.data.loader import DeviceLoader  # noqa: E402
from reslab.data.pipeline import Pipeline  # noqa: E402
from reslab.data.preprocessing import InputConfig  # noqa: E402
from reslab.data.types import DataBundle, Split  # noqa: E402
from reslab.training.config import RunConfig  # noqa: E402
from reslab.training.device import resolve_speed  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class PilDataset(torch.utils.data.Dataset):
    """torchvision-style: uint8 array -> PIL -> per-sample transforms, as most training scripts do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, crop: int, kind: str) -> None:
        self.images, self.labels, self.crop, self.kind = images, labels, crop, kind

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image, ImageOps
        img = Image.fromarray(self.images[i].transpose(1, 2, 0))
        rng = np.random.default_rng()
        if self.kind == "cifar":
            img = ImageOps.expand(img, border=4, fill=0)
            x, y = rng.integers(0, 9, 2)
            img = img.crop((x, y, x + self.crop, y + self.crop))
        else:  # random-resized-crop
            w, h = img.size
            area = rng.uniform(0.08, 1.0) * w * h
            r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = min(w, int(round((area * r) ** 0.5))), min(h, int(round((area / r) ** 0.5)))
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            img = img.resize((self.crop, self.crop), Image.BILINEAR, box=(x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        t = (t - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
        return t, int(self.labels[i])


def load_images(size: int, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Real images when ../shared is here (CIFAR-10 at 32, Imagenette at 224), random ones otherwise."""
    try:
        from reslab.data.sources import sample_split
        for want, name, split, what in ((32, "cifar10-jpeg.tar.gz", "train", "shared CIFAR-10"),
                                        (224, "imagenette-224-val.tar", "val", "shared Imagenette")):
            if size == want and (SHARED / name).exists():
                _, s = sample_split(str(SHARED / name), split, InputConfig(size, size), n)  # the first n, decoded
                return s.images.numpy(), s.labels.numpy(), what
    except Exception as e:  # noqa: BLE001 - fall back to synthetic data, say so
        print(f"(real data unavailable: {e}; using random images)", file=sys.stderr)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, 10, n), "random"


def timed_steps(step, batches, warmup: int, steps: int, device: torch.device) -> float:
    it = iter(batches)
    for _ in range(warmup):
        step(*next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step(*next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def make_step(model: nn.Module, amp: torch.dtype | None, device: torch.device):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step(x, y):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench(name: str, size: int, batch: int, steps: int, warmup: int, workers: int, device_name: str,
          rounds: int = 1) -> dict:
    """Best of `rounds` alternating measurements of each pipeline (this machine is noisy)."""
    best: dict = {}
    for _ in range(rounds):
        r = bench_once(name, size, batch, steps, warmup, workers, device_name)
        best = r if not best else {k: max(v, best[k]) if isinstance(v, float) else v for k, v in r.items()}
    return best


def bench_once(name: str, size: int, batch: int, steps: int, warmup: int, workers: int, device_name: str) -> dict:
    n = batch * (steps + warmup + 2)
    images, labels, source = load_images(size, n)
    kind = "cifar" if size <= 64 else "rrc"
    crop = size
    # reference
    torch.manual_seed(0)
    device = torch.device(device_name if device_name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    ref_model = create_model(name, num_classes=10).to(device)
    loader = torch.utils.data.DataLoader(PilDataset(images, labels, crop, kind), batch_size=batch, shuffle=True,
                                         num_workers=workers, drop_last=True, persistent_workers=workers > 0,
                                         pin_memory=device.type == "cuda")
    ref_s = timed_steps(make_step(ref_model, None, device), iter(loader), warmup, steps, device)
    del loader
    # reslab
    speed = resolve_speed(RunConfig(device=device_name))
    bundle = DataBundle("bench", [str(i) for i in range(10)], Split(torch.from_numpy(images), torch.from_numpy(labels)),
                        None, mean=MEAN, std=STD, small=size <= 64)
    pipe = Pipeline(InputConfig(crop, crop, mean=MEAN, std=STD), kind, channels_last=speed.channels_last)
    model = create_model(name, num_classes=10).to(speed.device)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if speed.compile_mode:
        model = torch.compile(model, mode=speed.compile_mode)
    dl = DeviceLoader(bundle.train, batch, speed.device, pipe.train_augment)

    def batches():
        e = 0
        while True:
            yield from dl.epoch(e)
            e += 1
    ours_s = timed_steps(make_step(model, speed.amp_dtype, speed.device), batches(), warmup, steps, speed.device)
    # model only: the same reslab step on one fixed batch
    x, y = next(dl.epoch(0))
    model_s = timed_steps(make_step(model, speed.amp_dtype, speed.device), iter(lambda: (x, y), None), 1, steps, speed.device)
    return {"model": name, "input": size, "batch": batch, "data": source, "ref": steps * batch / ref_s,
            "ours": steps * batch / ours_s, "model_only": steps * batch / model_s,
            "switches": f"channels_last={speed.channels_last} amp={speed.amp_dtype} compile={speed.compile_mode}"}


def compile_modes(name: str, size: int, batch: int, steps: int, modes: list[str], device_name: str) -> list[dict]:
    """reslab's model-only training step under each torch.compile mode ("off" = eager), same batch,
    same switches otherwise; the first compiled step (the compile itself) is timed apart."""
    speed = resolve_speed(RunConfig(device=device_name))
    images, labels, _ = load_images(size, batch)
    bundle = DataBundle("bench", [str(i) for i in range(10)], Split(torch.from_numpy(images), torch.from_numpy(labels)),
                        None, mean=MEAN, std=STD, small=size <= 64)
    pipe = Pipeline(InputConfig(size, size, mean=MEAN, std=STD), "cifar" if size <= 64 else "rrc",
                    channels_last=speed.channels_last)
    x, y = next(DeviceLoader(bundle.train, batch, speed.device, pipe.train_augment).epoch(0))
    rows = []
    for mode in modes:
        torch.manual_seed(0)
        torch._dynamo.reset()
        model = create_model(name, num_classes=10).to(speed.device)
        if speed.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if mode != "off":
            model = torch.compile(model, mode=mode)
        step = make_step(model, speed.amp_dtype, speed.device)
        t0 = time.perf_counter()
        step(x, y)  # compiles
        first = time.perf_counter() - t0
        secs = timed_steps(step, iter(lambda: (x, y), None), 2, steps, speed.device)
        rows.append({"mode": mode, "compile_s": first, "img_s": steps * batch / secs})
    for r in rows:
        r["ratio"] = r["img_s"] / rows[0]["img_s"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=0, help="timed steps per case (default: 20 small, 3 large)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="reference DataLoader workers")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a seconds-long smoke run")
    p.add_argument("--only", choices=("resnet20", "resnet50"), default=None)
    p.add_argument("--rounds", type=int, default=2, help="alternating measurements per case; the best of each is kept")
    p.add_argument("--compile-modes", default=None, help="comma-separated torch.compile modes to compare (off = eager)")
    args = p.parse_args()
    cases = [("resnet20", 32, 128, args.steps or 20), ("resnet50", 224, 32, args.steps or 3)]
    if args.tiny:
        cases = [("resnet20", 32, 16, 2), ("resnet50", 64, 2, 1)]
    if args.only:
        cases = [c for c in cases if c[0] == args.only]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU threads, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""))
    rounds = 1 if args.tiny else args.rounds
    rows = [bench(n, s, b, st, 2 if not args.tiny else 1, args.workers, args.device, rounds) for n, s, b, st in cases]
    print(f"{'model':<9} {'input':>5} {'batch':>5} {'data':<18} {'reference':>10} {'reslab':>10} {'speed-up':>9} "
          f"{'model-only':>11} {'e2e/model':>10}")
    for r in rows:
        print(f"{r['model']:<9} {r['input']:>5} {r['batch']:>5} {r['data']:<18} {r['ref']:>8.1f}/s {r['ours']:>8.1f}/s "
              f"{r['ours'] / r['ref']:>8.2f}x {r['model_only']:>9.1f}/s {r['ours'] / r['model_only']:>9.0%}")
    print(f"images/s of training (best of {rounds} alternating rounds); reslab switches: {rows[0]['switches']}")
    if args.compile_modes:
        modes = args.compile_modes.split(",")
        for n, s, b, st in cases:
            table = compile_modes(n, s, b, st, modes, args.device)
            print(f"\n{n} @{s}, batch {b}: reslab model-only step by torch.compile mode")
            print(f"{'mode':<22} {'compile':>8} {'img/s':>9} {'vs eager':>9}")
            for r in table:
                print(f"{r['mode']:<22} {r['compile_s']:>7.1f}s {r['img_s']:>9.1f} {r['ratio']:>8.2f}x")


if __name__ == "__main__":
    main()
