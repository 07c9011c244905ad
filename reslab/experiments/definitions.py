"""Each experiment is a list of arms (a label, a model, its options) trained with one recipe, and the
papers' figures to put beside the results. Budgets scale the cifar-paper schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arm:
    label: str
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    paper_err: float | None = None  # CIFAR-10 test error (%) the papers report for this net


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    claim: str
    arms: tuple[Arm, ...]
    quick_depth: dict[str, int] = field(default_factory=dict)  # label -> depth used by the quick budget
    isolate: bool = False           # run each arm in its own process (so peak memory is its own)
    run: dict[str, Any] = field(default_factory=dict)  # extra config overrides


@dataclass(frozen=True)
class Budget:
    steps: int
    train_subset: int
    eval_subset: int
    eval_every: int
    ckpt_every: int


BUDGETS = {
    # ~15 minutes on 2 CPU cores for the degradation experiment; the paper's schedule shape, 1/64 of its length
    "quick": Budget(steps=1000, train_subset=0, eval_subset=2000, eval_every=100, ckpt_every=250),
    "paper": Budget(steps=64000, train_subset=0, eval_subset=0, eval_every=2000, ckpt_every=8000),
}

UNIT_LABELS = {"original": "original", "bn_after_add": "BN after addition", "relu_before_add": "ReLU before addition",
               "relu_preact": "ReLU-only pre-activation", "full_preact": "full pre-activation"}
PAPER_2016_T2 = {"original": 6.61, "bn_after_add": 8.17, "relu_before_add": 7.84, "relu_preact": 6.71,
                 "full_preact": 6.37}  # ResNet-110 on CIFAR-10, 2016 paper Table 2

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        "degradation", "Plain vs residual nets at two depths (2015 paper, Fig. 6)",
        "the deeper plain net has higher training error than the shallower one, the deeper ResNet lower",
        (Arm("plain-20", "plain20"), Arm("plain-56", "plain56"),
         Arm("ResNet-20", "resnet20", paper_err=8.75), Arm("ResNet-56", "resnet56", paper_err=6.97))),
    Experiment(
        "shortcuts", "Shortcut options A / B / C (2015 paper, section 4.1 and Table 3)",
        "projections help a little (B slightly better than A, C slightly better than B); none is essential",
        (Arm("option A", "resnet32", {"shortcut": "A"}, 7.51), Arm("option B", "resnet32", {"shortcut": "B"}),
         Arm("option C", "resnet32", {"shortcut": "C"}))),
    Experiment(
        "preact", "Residual-unit variants of ResNet-110 (2016 paper, Fig. 4 and Table 2)",
        "full pre-activation is best; BN after addition and ReLU before addition are worse than the original",
        tuple(Arm(UNIT_LABELS[u], "resnet110", {"unit": u, "preact": u == "full_preact"}, PAPER_2016_T2[u])
              for u in UNIT_LABELS),
        quick_depth={UNIT_LABELS[u]: 20 for u in UNIT_LABELS}),
    Experiment(
        "depth", "Extreme depth with activation checkpointing (ResNet-1202, pre-activation ResNet-1001)",
        "over-deep nets still train; checkpointing makes them fit in little memory",
        (Arm("ResNet-1202", "resnet1202", paper_err=7.93), Arm("pre-act ResNet-1001", "preact_resnet1001", paper_err=4.92)),
        isolate=True, run={"run.grad_checkpointing": True}),
]}

# The quick budget of the depth experiment trains only a few steps: enough to show they train and to measure memory.
DEPTH_QUICK_STEPS = 20
