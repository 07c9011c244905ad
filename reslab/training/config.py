"""Training configuration: typed sections, YAML recipes, `--section.field VALUE` overrides.

Resolution order: dataclass defaults < recipe YAML < command-line flags. The resolved config is
written next to every run (config.yaml) and travels inside its checkpoints.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ReslabError, choices_hint


@dataclass
class DataConfig:
    source: str = "digits"          # digits | cifar10[:DIR] | cifar100[:DIR] | image folder | tar archive(s)
    augment: str = "auto"           # auto | cifar | scale | rrc | none
    crop: int = 0                   # network input size; 0: the image size (square path), 224 (whole images)
    crop_pct: float = 0.0           # evaluation: resize the shorter side to crop / crop_pct, then the centre crop;
                                    # 0: 0.875 (torchvision's 256->224) when training crops at random scales
                                    # (rrc, scale), else no resize (CIFAR's pad-and-crop, none)
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest: every resize (Pillow's filters)
    min_scale: float = 0.08         # rrc: the smallest share of the image a random crop covers (torchvision's
                                    # 0.08; short schedules do better with less, e.g. fastai's Imagenette 0.35)
    cache_size: int = 0             # decode size for image folders (shorter side + centre crop); 0: native
    val_split: int = 0              # hold this many training images out for validation (paper: 5000)
    train_subset: int = 0           # use only this many training images (fixed by data.seed); 0: all
    eval_subset: int = 0            # evaluate on only this many images of each evaluation split; 0: all
    eval_test: bool = False         # with val_split, also evaluate the test split at the end
    download: bool = False          # fetch CIFAR from the official address if missing
    skip_bad: bool = False          # skip (and count) unreadable images instead of failing
    stream: bool = False            # decode per batch with DataLoader workers (folders too big for memory)
    input: str = "square"           # square: decode once to cache_size squares, augment on the device |
                                    # whole: crop each sample on the whole original image (ImageNet protocol)
    cache_shorter: int = 0          # whole: 0 decodes the files every epoch; N keeps a decode-once uint8 cache
                                    # at shorter side <= N (aspect kept, memory-mapped)
    workers: int = 2                # DataLoader workers of the streaming path
    cache_dir: str = ""             # default: $RESLAB_CACHE or ~/.cache/reslab
    seed: int = 0                   # picks the val_split images and the subsets; apart from run.seed, so that
                                    # runs repeated over seeds share one split (the papers' protocol)
    mixup: float = 0.0              # mixup Beta alpha (timm: 0.8); 0: off. Mixing acts in the training step
    cutmix: float = 0.0             # CutMix Beta alpha (timm: 1.0); 0: off
    mix_prob: float = 1.0           # probability that a batch is mixed (one lambda per batch, timm's default)
    mix_switch_prob: float = 0.5    # with mixup and CutMix both on: probability of CutMix for a batch
    auto_augment: str = "none"      # none | trivial (TrivialAugmentWide) | randaugment, per sample on uint8 crops
    randaugment_n: int = 2          # RandAugment: ops per sample
    randaugment_m: int = 9          # RandAugment: magnitude bin, 0..30
    random_erasing: float = 0.0     # probability of erasing a random box per sample (timm's rule)
    erasing_mode: str = "pixel"     # pixel: per-pixel normal noise | const: 0 | rand: one normal value per channel
    progressive: int = 0            # progressive resizing (FFCV): the start resolution; 0: off
    progressive_start: int = 0      # epoch up to which `progressive` is used, then a ramp (multiples of 32)
    progressive_end: int = 0        # epoch from which the full crop size is used


@dataclass
class OptimConfig:
    name: str = "sgd"               # sgd (momentum, nesterov) | adamw (decoupled decay; e.g. lr 1e-3, decay 0.05) |
                                    # radam | ranger (RAdam + Lookahead: fastai's Imagenette optimiser)
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = True  # False: no weight decay on BN parameters and biases
    label_smoothing: float = 0.0
    ema_decay: float = 0.0          # > 0: keep an exponential moving average of the weights
    grad_clip: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw, radam, ranger
    eps: float = 1e-8               # adamw, radam, ranger
    lookahead_k: int = 6            # ranger: the slow weights catch up every k steps ...
    lookahead_alpha: float = 0.5    # ... by this share of the way


@dataclass
class ScheduleConfig:
    name: str = "multistep"         # multistep | cosine | constant | onecycle | flat_cos
    steps: int = 0                  # total iterations (wins over epochs when > 0)
    epochs: float = 0.0
    milestones: list[float] = field(default_factory=list)  # in `unit`s
    unit: str = "step"              # step | epoch: what milestones count
    gamma: float = 0.1
    warmup_steps: Any = 0           # int, or "auto": 400 for ResNet-110/1202 and pre-activation nets
    warmup_lr: float = 0.01         # constant warm-up lr (the papers'); warmup_mode linear ramps instead
    warmup_mode: str = "constant"   # constant | linear
    min_lr: float = 0.0             # cosine floor
    # onecycle: torch's OneCycleLR (from lr / div_factor up to lr over pct_start of the steps, then down to
    # lr / div_factor / final_div_factor); flat_cos: fastai's fit_flat_cos (lr for flat_pct, then cosine to min_lr)
    pct_start: float = 0.3          # onecycle
    div_factor: float = 25.0        # onecycle
    final_div_factor: float = 1e4   # onecycle
    anneal: str = "cos"             # onecycle: cos | linear (OneCycleLR's anneal_strategy, both phases)
    flat_pct: float = 0.72          # flat_cos


@dataclass
class RunConfig:
    out: str = "runs"               # runs are written to OUT/NAME
    name: str = ""                  # default: <model>-<data>-<time>
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    amp: str = "auto"               # auto | off | bf16 | fp16
    channels_last: str = "auto"     # auto | on | off
    compile: str = "auto"           # auto | off | default | reduce-overhead | max-autotune
    log_every: int = 50             # steps between (host-synchronising) metric logs
    eval_every: int = 0             # steps between evaluations; 0: once per epoch
    ckpt_every: int = 0             # steps between numbered checkpoints; 0: at each evaluation
    keep_ckpts: int = 3             # numbered checkpoints kept (plus last and best)
    eval_batch: int = 512
    ten_crop: bool = False          # evaluate with 10 crops (4 corners + centre, mirrored)
    sync_bn: bool = False           # SyncBatchNorm under DDP
    grad_checkpointing: bool = False  # recompute activations in the backward pass (deep nets, little memory)
    progress: bool = True
    tensorboard: bool = True


@dataclass
class FinetuneConfig:
    weights: str = ""               # start from this checkpoint (file, checkpoint or run folder); "": from scratch
    freeze_stages: int = 0          # freeze the stem and the first K stages (weights and BN statistics)
    backbone_lr: float = 1.0        # learning-rate multiplier for everything but the classifier
    freeze_bn: bool = False         # keep every BatchNorm's running statistics fixed
    norm: str = "auto"              # auto: the checkpoint's normalisation (ImageNet statistics for torchvision/
                                    # timm/community checkpoints) | data: the data set's own


@dataclass
class TrainConfig:
    recipe: str = ""
    model: str = "resnet20"
    model_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128           # global batch (split across DDP ranks)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig, "run": RunConfig, "finetune": FinetuneConfig}
CHOICES = {
    "data.augment": ("auto", "cifar", "scale", "rrc", "none"), "optim.name": ("sgd", "adamw", "radam", "ranger"),
    "schedule.name": ("multistep", "cosine", "constant", "onecycle", "flat_cos"), "schedule.unit": ("step", "epoch"),
    "schedule.warmup_mode": ("constant", "linear"), "run.amp": ("auto", "off", "bf16", "fp16"),
    "run.channels_last": ("auto", "on", "off"),
    "run.compile": ("auto", "off", "default", "reduce-overhead", "max-autotune"),
    "finetune.norm": ("auto", "data"), "data.input": ("square", "whole"),
    "data.interpolation": ("bilinear", "bicubic", "nearest"),
    "data.auto_augment": ("none", "trivial", "randaugment"), "data.erasing_mode": ("pixel", "const", "rand"),
    "schedule.anneal": ("cos", "linear"),
}


def list_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("reslab.training.recipes").iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.read_text()
    if name not in list_recipes():
        raise ReslabError(f"unknown recipe {name!r}; {choices_hint(name, list_recipes())} (or a path to a .yaml file)")
    return resources.files("reslab.training.recipes").joinpath(f"{name}.yaml").read_text()


def build_config(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """defaults < recipe < overrides (flat dotted keys: {"optim.lr": 0.05, "model": "resnet56"})."""
    if not recipe:
        return from_flat(dict(overrides or {}))
    return config_from_yaml(recipe_text(recipe), overrides, f"recipe {recipe}", recipe)


def config_from_yaml(text: str, overrides: dict[str, Any] | None = None, what: str = "config",
                     recipe: str = "") -> TrainConfig:
    """A config from YAML text (a recipe, a run's config.yaml, a checkpoint's train_config), then `overrides`."""
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ReslabError(f"{what}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ReslabError(f"{what}: expected a mapping at the top level")
    loaded.pop("version", None)
    values = flatten_config(loaded)
    if recipe:
        values.setdefault("recipe", recipe)  # a saved run config keeps naming its original recipe
    values.update(overrides or {})
    return from_flat(values)


def from_flat(values: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    valid = all_keys()
    for key, value in values.items():
        if key.startswith("model_args."):
            cfg.model_args[key.split(".", 1)[1]] = value
            continue
        if key not in valid:
            raise ReslabError(f"unknown config field {key!r}; {choices_hint(key, valid)}")
        section, _, name = key.rpartition(".")
        target = getattr(cfg, section) if section else cfg
        setattr(target, name, _coerce(key, getattr(target, name), value))
    validate(cfg)
    return cfg


def all_keys() -> list[str]:
    keys = ["recipe", "model", "model_args", "batch_size"]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config mapping (a recipe's or a run's config.yaml) as flat dotted keys: {"optim.lr": 0.1, ...};
    model_args become "model_args.NAME"."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in SECTIONS:
            out.update(flatten_config(v, f"{key}."))
        elif k == "model_args" and isinstance(v, dict):
            out.update({f"model_args.{a}": b for a, b in v.items()})
        else:
            out[key] = v
    return out


def _coerce(key: str, default: Any, value: Any) -> Any:
    if key == "schedule.warmup_steps" and value == "auto":
        return value
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ReslabError(f"{key}: cannot parse {value!r}") from None
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            return [float(v) for v in (value if isinstance(value, list) else [value])]
        if isinstance(default, str):
            return str(value)
    except (TypeError, ValueError):
        raise ReslabError(f"{key}: expected {type(default).__name__}, got {value!r}") from None
    return value


def validate(cfg: TrainConfig) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ReslabError(f"{key}={value!r} is invalid; choose one of {', '.join(choices)}")
    checks = [("batch_size", cfg.batch_size > 0, "must be > 0"), ("optim.lr", cfg.optim.lr > 0, "must be > 0"),
              ("optim.momentum", 0 <= cfg.optim.momentum < 1, "must be in [0, 1)"),
              ("optim.weight_decay", cfg.optim.weight_decay >= 0, "must be >= 0"),
              ("optim.label_smoothing", 0 <= cfg.optim.label_smoothing < 1, "must be in [0, 1)"),
              ("optim.ema_decay", 0 <= cfg.optim.ema_decay < 1, "must be in [0, 1)"),
              ("schedule.steps", cfg.schedule.steps >= 0, "must be >= 0"),
              ("schedule.epochs", cfg.schedule.epochs >= 0, "must be >= 0"),
              ("schedule.gamma", 0 < cfg.schedule.gamma <= 1, "must be in (0, 1]"),
              ("schedule.warmup_lr", cfg.schedule.warmup_lr > 0, "must be > 0"),
              ("schedule.min_lr", cfg.schedule.min_lr >= 0, "must be >= 0"),
              ("optim.grad_clip", cfg.optim.grad_clip >= 0, "must be >= 0 (0: no clipping)"),
              ("optim.lookahead_k", cfg.optim.lookahead_k >= 1, "must be >= 1"),
              ("optim.lookahead_alpha", 0 < cfg.optim.lookahead_alpha <= 1, "must be in (0, 1]"),
              ("run.log_every", cfg.run.log_every > 0, "must be > 0"),
              ("run.eval_every", cfg.run.eval_every >= 0, "must be >= 0 (0: once per epoch)"),
              ("run.ckpt_every", cfg.run.ckpt_every >= 0, "must be >= 0 (0: at each evaluation)"),
              ("run.eval_batch", cfg.run.eval_batch > 0, "must be > 0"),
              ("run.keep_ckpts", cfg.run.keep_ckpts >= 1, "must be >= 1"),
              ("data.crop", cfg.data.crop >= 0, "must be >= 0 (0: the image size)"),
              ("data.crop_pct", 0 <= cfg.data.crop_pct <= 1, "must be in (0, 1] (0: the default rule)"),
              ("data.min_scale", 0 < cfg.data.min_scale <= 1, "must be in (0, 1]"),
              ("data.cache_size", cfg.data.cache_size >= 0, "must be >= 0 (0: native)"),
              ("data.workers", cfg.data.workers >= 0, "must be >= 0"),
              ("data.cache_shorter", cfg.data.cache_shorter >= 0, "must be >= 0 (0: no cache)"),
              ("data.seed", cfg.data.seed >= 0, "must be >= 0"),
              ("run.seed", cfg.run.seed >= 0, "must be >= 0"),
              ("data.val_split", cfg.data.val_split >= 0, "must be >= 0"),
              ("data.train_subset", cfg.data.train_subset >= 0, "must be >= 0"),
              ("data.eval_subset", cfg.data.eval_subset >= 0, "must be >= 0"),
              ("finetune.freeze_stages", cfg.finetune.freeze_stages >= 0, "must be >= 0"),
              ("finetune.backbone_lr", cfg.finetune.backbone_lr >= 0, "must be >= 0 (0 trains only the classifier)")]
    for key, ok, rule in checks:
        if not ok:
            section, _, name = key.rpartition(".")
            raise ReslabError(f"{key}={getattr(getattr(cfg, section) if section else cfg, name)!r} {rule}")
    if cfg.schedule.steps == 0 and cfg.schedule.epochs == 0:
        raise ReslabError("set a training length: schedule.steps (iterations) or schedule.epochs")
    if any(m < 0 for m in cfg.schedule.milestones):
        raise ReslabError(f"schedule.milestones={cfg.schedule.milestones} must be >= 0")
    w = cfg.schedule.warmup_steps
    if not (w == "auto" or (isinstance(w, int) and w >= 0)):
        raise ReslabError(f"schedule.warmup_steps={w!r} must be a number of steps >= 0 or 'auto'")
    _validate_toolbox(cfg)


def _validate_toolbox(cfg: TrainConfig) -> None:
    """The modern-recipe fields: mixing, auto-augment, erasing, progressive resizing, adamw, onecycle/flat_cos."""
    d, o, s = cfg.data, cfg.optim, cfg.schedule
    checks = [("data.mixup", d.mixup >= 0, "must be >= 0 (0: off)"), ("data.cutmix", d.cutmix >= 0, "must be >= 0 (0: off)"),
              ("data.mix_prob", 0 <= d.mix_prob <= 1, "must be in [0, 1]"),
              ("data.mix_switch_prob", 0 <= d.mix_switch_prob <= 1, "must be in [0, 1]"),
              ("data.randaugment_n", 0 <= d.randaugment_n <= 10, "must be in [0, 10]"),
              ("data.randaugment_m", 0 <= d.randaugment_m <= 30, "must be in [0, 30] (torchvision's 31 bins)"),
              ("data.random_erasing", 0 <= d.random_erasing <= 1, "must be in [0, 1]"),
              ("data.progressive", d.progressive >= 0, "must be >= 0 (0: off)"),
              ("data.progressive_start", d.progressive_start >= 0, "must be >= 0"),
              ("data.progressive_end", not d.progressive or d.progressive_end > d.progressive_start,
               f"must be > data.progressive_start ({d.progressive_start}) with data.progressive on"),
              ("optim.eps", o.eps > 0, "must be > 0"),
              ("optim.betas", len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "must be two numbers in [0, 1)"),
              ("schedule.pct_start", 0 < s.pct_start < 1, "must be in (0, 1)"),
              ("schedule.div_factor", s.div_factor > 0, "must be > 0"),
              ("schedule.final_div_factor", s.final_div_factor > 0, "must be > 0"),
              ("schedule.flat_pct", 0 <= s.flat_pct <= 1, "must be in [0, 1]"),
              ("schedule.warmup_steps", s.name != "onecycle" or s.warmup_steps in (0, "auto"),
               "but schedule.name onecycle warms up over schedule.pct_start: set schedule.warmup_steps 0")]
    for key, ok, rule in checks:
        if not ok:
            section, _, name = key.rpartition(".")
            raise ReslabError(f"{key}={getattr(getattr(cfg, section), name)!r} {rule}")


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
