"""Decisions, kept apart from the measuring so that tests can check them without a GPU: sizes (full or tiny),
each stage's share of the budget, which precision / compile mode / CUDA-graph path each measurement uses,
the tolerances of the correctness checks, and how the time-to-accuracy run fits the time that is left."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STAGES = ("env", "correctness", "throughput", "accuracy", "e2e")
CIFAR_PAPER_STEPS, CIFAR_PAPER_MILESTONES = 64_000, (0.5, 0.75)  # cifar-paper: lr / 10 at 32k and 48k of 64k
CPU_R20_FIGURE = {"test_err_pct": 12.91, "wall_h": 3.1}  # docs/RESULTS.md, CPU-2, same recipe and data
ANCHOR = ("NVIDIA DeepLearningExamples ResNet-50 v1.5, AMP, batch 256, one A100 80GB: 2,470 img/s training "
          "(their README; another GPU and another code base: context, not a measurement of this run)")
ANCHOR_IMG_S = 2470.0


@dataclass(frozen=True)
class Sizes:
    """Everything whose size differs between the real proof and --tiny (seconds on a CPU)."""

    presets: tuple[str, ...] | None  # None: every preset
    fwd_batch: int
    imagenet_input: int              # preset forwards: ImageNet nets at this size, CIFAR nets at 32
    resume_model: str
    resume_steps: int                # resumed at half of it
    compile_model: str               # compiled vs eager: a small net (compilation time grows with the graph)
    ecosystem_model: str             # reslab's against torchvision's and timm's (the same name in all three)
    ecosystem_input: int
    big_model: str                   # stage 3's ImageNet net (and its torchvision twin)
    big_input: int
    big_batch: int
    big_steps: int                   # timed steps per repetition
    big_warmup: int
    big_reps: int
    cifar_models: tuple[str, ...]
    cifar_batch: int
    cifar_steps: int
    cifar_log: int
    tta_models: tuple[str, ...]
    tta_steps: int                   # 0: the recipe's 64k
    e2e_model: str
    e2e_batch: int
    e2e_crop: int
    e2e_steps: int                   # at most one epoch of the images (workers restart between epochs)
    e2e_log: int
    e2e_images: int                  # generated: one epoch covers e2e_steps batches
    e2e_image_size: tuple[int, int]  # width, height of generated images


FULL = Sizes(presets=None, fwd_batch=2, imagenet_input=64, resume_model="resnet20", resume_steps=50,
             compile_model="resnet8", ecosystem_model="resnet50", ecosystem_input=224,
             big_model="resnet50", big_input=224, big_batch=256, big_steps=15, big_warmup=5, big_reps=3,
             cifar_models=("resnet20", "resnet56"), cifar_batch=128, cifar_steps=400, cifar_log=50,
             tta_models=("resnet20", "resnet56", "plain56"), tta_steps=0,
             e2e_model="resnet50", e2e_batch=256, e2e_crop=224, e2e_steps=60, e2e_log=10, e2e_images=16_000,
             e2e_image_size=(500, 375))
TINY = Sizes(presets=("resnet20", "plain20", "resnet18", "preact_resnet18"), fwd_batch=2, imagenet_input=32,
             resume_model="resnet8", resume_steps=6, compile_model="resnet8", ecosystem_model="resnet18",
             ecosystem_input=64, big_model="resnet18", big_input=32, big_batch=4, big_steps=2, big_warmup=1,
             big_reps=1, cifar_models=("resnet8",), cifar_batch=16, cifar_steps=6, cifar_log=2,
             tta_models=("resnet8",), tta_steps=6, e2e_model="resnet18", e2e_batch=8, e2e_crop=32, e2e_steps=3,
             e2e_log=1, e2e_images=40, e2e_image_size=(48, 40))


SLACK_S = {"correctness": 10.0, "default": 20.0, "tiny": 5.0}  # past a part's deadline, to stop it gracefully
E2E_RESERVE_S = 50.0  # stage 5 (eager, one epoch of JPEG files): workers, cuDNN's first calls, ~60 steps


def stage_caps(budget_s: float) -> dict[str, float]:
    """Most seconds each of the first three stages may use (while a later stage is selected), and the time
    stage 4 leaves to stage 5 when both are selected; stage 4 takes the rest."""
    # at 540 s: env 20, correctness 75, throughput 200, e2e 50, accuracy what is left (~190 s)
    return {"env": min(20.0, 0.1 * budget_s), "correctness": min(75.0, 0.14 * budget_s),
            "throughput": min(200.0, 0.375 * budget_s), "e2e_reserve": min(E2E_RESERVE_S, 0.1 * budget_s)}


def stage_until(key: str, stages: list[str], caps: dict[str, float], now: float, budget_end: float,
                tiny: bool = False) -> float:
    """A stage's deadline: its cap while a later stage is selected, else all that is left (the last selected
    stage, e.g. one run alone, gets the whole rest of the budget); never past the budget's end less the time to
    write the last results; stage 4 leaves stage 5 its reserve when stage 5 follows."""
    end = budget_end - (2 if tiny else 10)
    later = stages[stages.index(key) + 1:]
    if key in caps and later:
        return min(now + caps[key], end)
    if key == "accuracy" and "e2e" in later:
        return end - caps["e2e_reserve"]
    return end


def e2e_steps(images: int, batch: int, max_steps: int, log: int, fit: int | None = None) -> tuple[int, int]:
    """(steps, log_every) of stage 5: within one epoch of the images (DataLoader workers restart between epochs,
    which would put their start inside the timed windows), at most `fit` (what the time left allows at the
    synthetic speed), with at least 4 logged windows where the epoch allows (steady_speed skips the first 2)."""
    epoch = images // batch
    steps = min(max_steps, epoch) if fit is None else min(max_steps, epoch, fit)
    log = log if steps >= 4 * log else max(1, steps // 4)
    return max(steps, min(epoch, 3 * log)), log


def parse_stages(text: str) -> list[str]:
    """'all', names or numbers 1-5, comma-separated, kept in the proof's order."""
    if text.strip() in ("", "all"):
        return list(STAGES)
    chosen = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name = STAGES[int(part) - 1] if part.isdigit() and 1 <= int(part) <= len(STAGES) else part
        if name not in STAGES:
            raise ValueError(f"unknown stage {part!r}: choose from {', '.join(STAGES)} or 1-{len(STAGES)}")
        chosen.add(name)
    return [s for s in STAGES if s in chosen]


# ---- precision and compilation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One way of running a network in a timing."""

    label: str
    source: str                 # reslab | torchvision
    amp: torch.dtype | None
    channels_last: bool
    compile_mode: str | None    # None: eager


def big_variants(speed) -> list[Variant]:
    """The ResNet-50 timings: reslab's auto switches, reslab eager, torchvision with AMP + channels_last."""
    # auto on CUDA: bf16 autocast, channels_last, torch.compile default (reslab.training.device.resolve_speed);
    # torchvision as a user runs it: AMP in the same dtype, channels_last, eager. On a CPU auto does not
    # compile: the eager twin would measure the same thing twice
    amp, cl = speed.amp_dtype, speed.channels_last
    out = [Variant("reslab (auto switches)", "reslab", amp, cl, speed.compile_mode)]
    if speed.compile_mode is not None:
        out.append(Variant("reslab eager", "reslab", amp, cl, None))
    out.append(Variant(f"torchvision {'AMP ' + dtype_name(amp) if amp else 'fp32'} + channels_last", "torchvision",
                       amp, cl, None))
    return out


def cifar_variants(device: torch.device) -> list[tuple[str, str]]:
    """(label, run.compile) of the CIFAR runs: eager; on CUDA also CUDA graphs and reslab's auto choice."""
    # reduce-overhead replays one CUDA graph per step instead of hundreds of small kernel launches, which is
    # what bounds a ResNet-20 step on a large GPU
    out = [("eager", "off")]
    if device.type == "cuda":
        out += [("CUDA graphs (reduce-overhead)", "reduce-overhead"), ("auto (compile default)", "auto")]
    return out


def compile_backend(device: torch.device, tiny: bool) -> str:
    """inductor, except in a tiny CPU run: aot_eager (the same capture, no C++ code generation: seconds)."""
    return "aot_eager" if device.type == "cpu" and tiny else "inductor"


def dtype_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}.get(dtype, str(dtype))


# ---- tolerances -------------------------------------------------------------------------------------------------

TOLERANCE = {  # relative L2 error of the logits against the CPU fp32 forward
    "fp32": 1e-4,   # strict fp32 (TF32 off): only summation order differs (unit roundoff 6e-8, thousands of terms)
    "tf32": 5e-3,   # TF32 (cuDNN's default for fp32 convolutions): operands rounded to 10 mantissa bits (4.9e-4)
    "bf16": 3e-2,   # bf16 autocast: conv operands and outputs rounded to 7 mantissa bits (3.9e-3), over many layers
}
TOLERANCE_WHY = ("relative L2 error of the logits; fp32 (TF32 off) <= 1e-4: only the summation order differs; "
                 "TF32 <= 5e-3: cuDNN rounds conv operands to 10 mantissa bits (unit roundoff 4.9e-4) and keeps fp32 "
                 "sums; bf16 autocast <= 3e-2: operands and activations rounded to 7 bits (3.9e-3) at every layer "
                 "(measured with CPU bf16 on 48 presets: at most 9e-3)")
COMPILE_TOL = 1e-4  # compiled vs eager, fp32 with TF32 off: inductor fuses and reorders fp32 reductions only
ECOSYSTEM_TOL = 1e-5  # reslab vs torchvision/timm, same weights, fp32: the same operations


# ---- time to accuracy -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TtaPlan:
    action: str            # full | scaled | stop | skip
    steps: int
    compile: str           # run.compile of the run
    estimate_s: float      # expected wall time (nan when nothing was measured)
    why: str


def choose_compile(measured: dict[str, dict], steps: int, batch: int) -> tuple[str, float, float]:
    """(run.compile, img/s, compile s) of the measured variant that finishes `steps` soonest, compiling included."""
    best = None
    for mode, m in measured.items():
        if not m.get("img_s"):
            continue
        total = m.get("compile_s", 0.0) + steps * batch / m["img_s"]
        if best is None or total < best[0]:
            best = (total, mode, m["img_s"], m.get("compile_s", 0.0))
    if best is None:
        return "auto", float("nan"), float("nan")
    return best[1], best[2], best[3]


def plan_tta(avail_s: float, measured: dict[str, dict], batch: int, first: bool, forced_steps: int = 0,
             overhead_s: float = 25.0, min_steps: int = 2000) -> TtaPlan:
    """How a time-to-accuracy run fits in avail_s: full, scaled (first model only), stop (nothing measured) or skip."""
    # scaled: as many iterations as the measured speed allows, lr steps at the recipe's fractions (50 %, 75 %);
    # overhead_s: data loading, an evaluation every 2,000 iterations, checkpoints
    if forced_steps:
        mode, img_s, comp = choose_compile(measured, forced_steps, batch)
        est = comp + forced_steps * batch / img_s + overhead_s if not math.isnan(img_s) else float("nan")
        return TtaPlan("scaled" if forced_steps != CIFAR_PAPER_STEPS else "full", forced_steps, mode, est,
                       f"--tta-steps {forced_steps}")
    mode, img_s, comp = choose_compile(measured, CIFAR_PAPER_STEPS, batch)
    if math.isnan(img_s):  # nothing measured
        if first:
            return TtaPlan("stop", CIFAR_PAPER_STEPS, "auto", float("nan"),
                           "no measured speed: the full recipe, stopped at the deadline if it comes first")
        return TtaPlan("skip", 0, "auto", float("nan"), "no measured speed for this network")
    full_s = comp + CIFAR_PAPER_STEPS * batch / img_s + overhead_s
    if full_s <= avail_s:
        return TtaPlan("full", CIFAR_PAPER_STEPS, mode, full_s,
                       f"the full recipe fits: ~{full_s:.0f} s of {avail_s:.0f} s")
    if not first:
        return TtaPlan("skip", 0, mode, full_s, f"the full recipe needs ~{full_s:.0f} s, {avail_s:.0f} s left")
    steps = int(0.9 * (avail_s - comp - overhead_s) * img_s / batch) // 100 * 100  # 10 % margin
    if steps < min_steps:
        return TtaPlan("skip", 0, mode, full_s, f"only {max(steps, 0)} iterations would fit (< {min_steps})")
    est = comp + steps * batch / img_s + overhead_s
    return TtaPlan("scaled", steps, mode, est, f"the full recipe needs ~{full_s:.0f} s, {avail_s:.0f} s left: "
                   f"{steps} iterations with the lr steps at 50 % and 75 %")


def scaled_milestones(steps: int) -> list[int]:
    return [int(math.floor(f * steps)) for f in CIFAR_PAPER_MILESTONES]
