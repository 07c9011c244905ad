"""Ship weights reslab trained itself inside the package: fp16 safetensors (loaded back as fp32) and a
model card; the card records the test error of the fp32 weights and of the fp16 file, measured here.

    python -m reslab.hub.ship RUN_OR_CHECKPOINT --tag reslab [--data D] [--command "..."]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

from ..errors import ReslabError
from ..models.weights import read_checkpoint, resolve_weights
from ..utils.io import atomic_write
from .download import sha256_of

SHIPPED = Path(__file__).resolve().parent / "shipped"


def ship_checkpoint(weights: str, tag: str = "reslab", data: str | None = None, command: str = "",
                    out_dir: Path = SHIPPED, notes: str = "", default: bool = False) -> Path:
    """Write OUT/<arch>.<tag>.safetensors (fp16) and OUT/<arch>.<tag>.json; returns the card's path."""
    from safetensors.torch import save_file

    from ..training.eval_run import evaluate_checkpoint
    src = resolve_weights(weights)
    ckpt = read_checkpoint(src)
    if ckpt.config is None or not ckpt.model_name:
        raise ReslabError(f"{src} is not a reslab checkpoint: only weights reslab trained are shipped")
    if ckpt.classes != _cifar10():
        raise ReslabError("only CIFAR-10 nets are shipped so far (their class names are a registry list)")
    arch = ckpt.model_name
    stem = f"{arch}.{tag}"
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_file = out_dir / f"{stem}.safetensors"
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in ckpt.state_dict.items()}
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in ckpt.metadata.items()}
    meta["stored_dtype"] = "float16"
    atomic_write(weights_file, lambda p: save_file(half, str(p), metadata=meta))
    full = evaluate_checkpoint(str(src), data, amp="off", out=None)
    stored = evaluate_checkpoint(str(weights_file), data, amp="off", out=None)
    train = ckpt.train_config or {}
    card = {"arch": arch, "tag": tag, "file": weights_file.name, "sha256": sha256_of(weights_file),
            "top1": round(100 * stored.result.top1, 2), "top1_fp32": round(100 * full.result.top1, 2),
            "top5": round(100 * stored.result.top5, 2), "test_images": stored.result.n,
            "eval_data": f"{Path(str((train.get('data') or {}).get('source', data))).name} ({stored.result.split}, "
                         f"{stored.result.n:,} images), evaluated in fp32",
            "preprocess": {"resize": ckpt.preprocess["image_size"], "crop": ckpt.preprocess["crop"],
                           "interpolation": ckpt.preprocess.get("interpolation", "bilinear"),
                           "mean": ckpt.preprocess["mean"], "std": ckpt.preprocess["std"]},
            "classes": "cifar10", "license": "mit",
            "aliases": [tag], "default": default, "recipe": train.get("recipe", ""), "seed": (train.get("run") or {}).get("seed"),
            "steps": int(ckpt.metadata.get("step", 0)), "command": command,
            "date": datetime.date.today().isoformat(), "notes": notes}
    card_file = out_dir / f"{stem}.json"
    atomic_write(card_file, lambda p: p.write_text(json.dumps(card, indent=1) + "\n"))
    return card_file


def _cifar10() -> list[str]:
    from .classes import class_names
    return class_names("cifar10")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reslab.hub.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="a reslab run folder or checkpoint")
    p.add_argument("--tag", default="reslab")
    p.add_argument("--data", default=None, help="test data (default: what the run trained on)")
    p.add_argument("--command", default="", help="the command that trained it (for the card)")
    p.add_argument("--notes", default="")
    p.add_argument("--default", action="store_true", help="what pretrained=True loads for this architecture")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    card = ship_checkpoint(args.weights, args.tag, args.data, args.command, notes=args.notes, default=args.default)
    print(card.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
