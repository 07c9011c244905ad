"""An independent CIFAR-10 ResNet-20 training, to check reslab's engine against at an equal budget.

Nothing here comes from reslab: the network is written out (the 2015 paper's 6n+2 net with option-A
shortcuts, akamaster's both-sides zero padding), the JPEG tar is decoded with Pillow, the
augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip) is numpy per batch, and the
loop is plain fp32 PyTorch: SGD momentum 0.9, weight decay 1e-4 on every parameter, batch 128,
lr 0.1 divided by 10 at 50 % and 75 % of the steps (the cifar-paper recipe's shape). Normalisation
with ImageNet statistics, as reslab uses for image folders.

    python benchmarks/reference_cifar.py ../shared/data/cifar10-jpeg.tar.gz --steps 3000 --seed 0
    reslab train --model resnet20 --data ../shared/data/cifar10-jpeg.tar.gz --recipe cifar-paper \\
        --steps 3000 --schedule.milestones "[1500, 2250]" --seed 0       # the same budget in reslab
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if cin != cout else 0
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            short = F.pad(short, (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class ResNet20(nn.Module):
    def __init__(self, n=3, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def read_split(archive: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels, classes = [], [], {}
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.lstrip("./").startswith(f"{split}/")),
                         key=lambda m: m.name)
        for m in members:
            cls = m.name.lstrip("./").split("/")[1]
            classes.setdefault(cls, None)
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            images.append(np.asarray(img, dtype=np.uint8))
            labels.append(cls)
    names = sorted(classes)
    return np.stack(images).transpose(0, 3, 1, 2), np.array([names.index(c) for c in labels])


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(batch)
    padded = np.pad(batch, ((0, 0), (0, 0), (4, 4), (4, 4)))
    out = np.empty_like(batch)
    dy, dx, flip = rng.integers(0, 9, n), rng.integers(0, 9, n), rng.random(n) < 0.5
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


def normalise(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((batch.astype(np.float32) / 255 - MEAN) / STD)


@torch.no_grad()
def test_error(model, x, y) -> float:
    model.eval()
    wrong = sum(int((model(normalise(x[i:i + 1000])).argmax(1).numpy() != y[i:i + 1000]).sum())
                for i in range(0, len(x), 1000))
    model.train()
    return wrong / len(x)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archive")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    xtr, ytr = read_split(args.archive, "train")
    xte, yte = read_split(args.archive, "test")
    model = ResNet20()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    milestones = (args.steps // 2, args.steps * 3 // 4)
    t0, step, order = time.time(), 0, rng.permutation(len(xtr))
    pos, log = 0, []
    while step < args.steps:
        if pos + 128 > len(order):
            order, pos = rng.permutation(len(xtr)), 0
        idx = order[pos:pos + 128]
        pos += 128
        lr = 0.1 * 0.1 ** sum(step >= m for m in milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(normalise(augment(xtr[idx], rng))), torch.from_numpy(ytr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % (args.steps // 4) == 0 or step == args.steps:
            err = test_error(model, xte, yte)
            log.append({"step": step, "test_err": err, "loss": loss.item(), "elapsed_s": time.time() - t0})
            print(f"step {step}: lr {lr:g} loss {loss.item():.3f} test error {100 * err:.2f}% "
                  f"({time.time() - t0:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "seed": args.seed, "log": log}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
