"""Release tool (not part of the installed package): ship weights reslab trained itself inside the
package, as fp16 safetensors (loaded back as fp32) and a model card; the card records the test error of
the fp32 weights and of the fp16 file, measured here. The file's metadata is made portable: the data
the run read is recorded by its file name only (a build machine's paths mean nothing elsewhere, and
`reslab eval --weights NAME` then asks for --data instead of reading whatever is at that path).

    python tools/ship_weights.py RUN_OR_CHECKPOINT --tag reslab [--data D] [--command "..."]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

import yaml

from reslab.errors import ReslabError
from reslab.hub.classes import class_names
from reslab.hub.download import sha256_of
from reslab.hub.open import checkpoint_input
from reslab.models.factory import model_from_checkpoint
from reslab.models.weights import read_checkpoint, resolve_weights
from reslab.training.eval_run import evaluate_checkpoint
from reslab.utils.io import atomic_write

SHIPPED = Path(__file__).resolve().parents[1] / "reslab" / "hub" / "shipped"


def ship_checkpoint(weights: str, tag: str = "reslab", data: str | None = None, command: str = "",
                    out_dir: Path = SHIPPED, notes: str = "", default: bool = False) -> Path:
    """Write OUT/<arch>.<tag>.safetensors (fp16) and OUT/<arch>.<tag>.json; returns the card's path."""
    from safetensors.torch import save_file

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
    train = ckpt.train_config or {}
    data = data or ((train.get("data") or {}).get("source"))
    meta = portable_metadata(ckpt)
    atomic_write(weights_file, lambda p: save_file(half, str(p), metadata=meta))
    vs = int((train.get("data") or {}).get("val_split") or 0)  # the same split for both (the fp16 file's
    full = evaluate_checkpoint(str(src), data, amp="off", out=None, val_split=vs)  # portable data name differs)
    stored = evaluate_checkpoint(str(weights_file), data, amp="off", out=None, val_split=vs)
    pre = checkpoint_input(ckpt, model_from_checkpoint(ckpt).cfg)
    card = {"arch": arch, "tag": tag, "file": weights_file.name, "sha256": sha256_of(weights_file),
            "top1": round(100 * stored.result.top1, 2), "top1_fp32": round(100 * full.result.top1, 2),
            "top5": round(100 * stored.result.top5, 2), "test_images": stored.result.n,
            "eval_data": f"{Path(str(data)).name} ({stored.result.split}, "
                         f"{stored.result.n:,} images), evaluated in fp32",
            "preprocess": {"resize": pre.resize, "crop": pre.input_size, "interpolation": pre.interpolation,
                           "mean": list(pre.mean), "std": list(pre.std)},
            "classes": "cifar10", "license": "mit",
            "aliases": [tag], "default": default, "recipe": train.get("recipe", ""), "seed": (train.get("run") or {}).get("seed"),
            "steps": int(ckpt.metadata.get("step", 0)), "command": command,
            "date": datetime.date.today().isoformat(), "notes": notes}
    card_file = out_dir / f"{stem}.json"
    atomic_write(card_file, lambda p: p.write_text(json.dumps(card, indent=1) + "\n"))
    return card_file


def _cifar10() -> list[str]:
    return class_names("cifar10")


def portable_metadata(ckpt) -> dict[str, str]:
    """The checkpoint's metadata with every path of this machine reduced to a file name; preprocessing in
    the current schema; fp16 noted."""
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in ckpt.metadata.items()}
    train = ckpt.train_config
    if train is not None:
        data = train.get("data") or {}
        if data.get("source"):
            data["source"] = ",".join(Path(p).name for p in str(data["source"]).split(","))
        for section, key in (("run", "out"), ("data", "cache_dir"), ("finetune", "weights")):
            value = (train.get(section) or {}).get(key)
            if value:
                train[section][key] = Path(str(value)).name
        meta["train_config"] = yaml.safe_dump(train, sort_keys=False)
    meta["preprocess"] = json.dumps(checkpoint_input(ckpt, model_from_checkpoint(ckpt).cfg).to_dict())
    meta["stored_dtype"] = "float16"
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/ship_weights.py", description=__doc__,
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
