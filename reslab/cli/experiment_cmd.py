"""`reslab experiment NAME`: rerun one of the papers' experiments with a budget."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..experiments import BUDGETS, EXPERIMENTS
    p = sub.add_parser("experiment", help="rerun a paper experiment (degradation, shortcuts, preact, depth)",
                       description="; ".join(f"{e.name}: {e.title}" for e in EXPERIMENTS.values()))
    p.add_argument("name", help=", ".join(EXPERIMENTS))
    p.add_argument("--budget", default="quick", choices=list(BUDGETS),
                   help="quick: ~15 min on 2 CPU cores (1/64 of the schedule); paper: the full 64k iterations (GPU)")
    p.add_argument("--data", default=None, help="as `reslab train --data` (default: cifar10, the official format in the cache)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (mean ± std in the table)")
    p.add_argument("--out", default="runs", help="folder the experiment folder goes in")
    p.add_argument("--only", nargs="*", default=None, help="run only these arms (labels or model names)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=V", help="extra config overrides, e.g. run.device=cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import run_experiment
    from .arguments import parse_assignments, parse_seeds
    extra = parse_assignments(args.set, "--set")
    seeds = parse_seeds(args.seeds)
    root = run_experiment(args.name, args.budget, args.data, seeds, args.out, extra, args.only)
    print(f"results: {root}/summary.md, {root}/curves.png, {root}/results.csv")
    return 0
