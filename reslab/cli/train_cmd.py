"""`reslab train`: a recipe, overridden by flags; `--seeds` repeats; `--resume` continues exactly."""
from __future__ import annotations

import argparse
import statistics
import sys

from ..errors import ReslabError
from ..training import config as C
from ..utils.table import format_table
from .arguments import parse_assignments, parse_seeds

HELP = {  # what the short flags mean (the config key follows in the help)
    "model": "network, e.g. resnet56 (`reslab models` lists them)",
    "data": "digits | cifar10[:DIR] | cifar100[:DIR] | an image-folder tree | tar archive(s)",
    "epochs": "training length in epochs", "steps": "training length in iterations (wins over --epochs)",
    "batch_size": "global batch size (split across DDP processes)", "lr": "base learning rate",
    "seed": "seed of the initial weights, data order and augmentation", "out": "folder the run folder goes in",
    "name": "run folder name (default: MODEL-DATA-TIME)", "device": "auto, cpu, cuda or cuda:N",
    "amp": "autocast precision: auto, off, bf16 or fp16", "compile": "torch.compile mode: auto, off, default, "
    "reduce-overhead or max-autotune", "val_split": "hold out this many training images for validation",
    "weights": "pretrained checkpoint: a file, checkpoint folder or run folder",
    "freeze_stages": "freeze the stem and the first K stages", "backbone_lr": "learning-rate multiplier of the trunk",
    "freeze_bn": "keep every BatchNorm's running statistics fixed (true/false)",
}
ALIASES = {  # short flag -> config key
    "model": "model", "data": "data.source", "epochs": "schedule.epochs", "steps": "schedule.steps",
    "batch_size": "batch_size", "lr": "optim.lr", "seed": "run.seed", "out": "run.out", "name": "run.name",
    "device": "run.device", "amp": "run.amp", "compile": "run.compile", "val_split": "data.val_split",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: ResNet-20 on the bundled digits, offline)",
                       description="Train with a recipe (YAML); any field can be overridden with --SECTION.FIELD VALUE. "
                                   f"Recipes: {', '.join(C.list_recipes())}.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(p, "default", ALIASES)
    p.set_defaults(func=run)


def add_run_options(p: argparse.ArgumentParser, recipe: str, aliases: dict[str, str]) -> None:
    """The options `reslab train` and `reslab finetune` share: recipe, aliases, every config field."""
    p.add_argument("--recipe", default=recipe, help="built-in recipe name or a .yaml path")
    for flag, key in aliases.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=f"o:{key}", default=None, metavar="V",
                       help=HELP.get(flag, "") + (f" (= --{key})" if key != flag else ""))
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V",
                   help="model override, e.g. shortcut=B, drop_path_rate=0.1 (repeatable)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds: repeat the run, report mean ± std")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a run folder from its last checkpoint")
    p.add_argument("--download", action="store_true", help="download CIFAR from the official address if missing")
    p.add_argument("--eval-test", action="store_true", help="with --val-split, also evaluate the test split at the end")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    g = p.add_argument_group("any config field")
    for key in C.all_keys():
        if key not in ("recipe", "model", "model_args", "batch_size"):
            g.add_argument(f"--{key}", dest=f"o:{key}", default=None, metavar="V", help=argparse.SUPPRESS)
    g.description = "--" + " --".join(k for k in C.all_keys() if "." in k)


def overrides_from(args: argparse.Namespace) -> dict:
    out = {k[2:]: v for k, v in vars(args).items() if k.startswith("o:") and v is not None}
    out.update({f"model_args.{k}": v for k, v in parse_assignments(args.model_arg, "--model-arg").items()})
    if args.download:
        out["data.download"] = True
    if args.eval_test:
        out["data.eval_test"] = True
    return out


def run(args: argparse.Namespace) -> int:
    return train_with(args, overrides_from(args))


def train_with(args: argparse.Namespace, overrides: dict) -> int:
    from ..training import Interrupted, resume_config, train
    from ..training.distributed import is_main
    recipe = args.recipe
    if args.resume and args.seeds:
        raise ReslabError("--resume continues one run; --seeds starts new ones: resume each seed's run folder instead")
    if args.resume:  # the config recorded in the checkpoint resumed from, plus whatever is given now
        cfg = resume_config(args.resume, overrides)
    else:
        cfg = C.build_config(recipe, overrides)
    if args.print_config:
        print(C.to_yaml(cfg), end="")
        return 0
    seeds = parse_seeds(args.seeds)
    try:
        if not seeds:
            train(cfg, resume=args.resume)
            return 0
        results = []
        base = cfg.run.name or f"{cfg.model}-seeds"
        for s in seeds:
            one = C.build_config(recipe, {**overrides, "run.seed": s, "run.name": f"{base}/seed-{s}"})
            results.append(train(one))
    except Interrupted as e:
        print(f"reslab: {e}", file=sys.stderr)
        return 130
    if is_main():
        print_seed_summary(results, seeds)
    return 0


def print_seed_summary(results, seeds) -> None:
    keys = sorted({k for r in results for k in r.final if k.endswith("err")})
    rows = []
    for k in keys:
        vals = [100 * r.final[k] for r in results if k in r.final]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        rows.append({"metric": k + " (%)", "mean": f"{statistics.mean(vals):.2f}", "std": f"{sd:.2f}",
                     "runs": ", ".join(f"{v:.2f}" for v in vals)})
    print(format_table(rows, [("metric", "metric"), ("mean", "mean"), ("std", "± std"), ("runs", f"seeds {seeds}")]))
