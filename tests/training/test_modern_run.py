"""The modern-recipe toolbox end to end on the bundled digits: it trains, and a resumed run is exact."""
import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from reslab.training import build_config, train

FAST = {"model": "resnet20", "model_args.depth": 8, "batch_size": 32, "run.progress": False,
        "run.tensorboard": False, "run.log_every": 10}
MODERN = {"optim.name": "adamw", "optim.lr": 3e-3, "optim.weight_decay": 0.05, "optim.decay_norm_and_bias": False,
          "optim.label_smoothing": 0.1, "schedule.name": "onecycle", "schedule.warmup_steps": 0,
          "data.mixup": 0.2, "data.cutmix": 1.0, "data.auto_augment": "trivial", "data.random_erasing": 0.25,
          "data.progressive": 8, "data.progressive_end": 2}


def _cfg(tmp_path, name, **over):
    return build_config("default", {**FAST, **MODERN, "run.out": str(tmp_path), "run.name": name, **over})


def test_modern_toolbox_trains_and_logs_a_meaningful_train_error(tmp_path, monkeypatch):
    from reslab.data.pipeline import Pipeline
    sizes = []
    augment = Pipeline.train_augment

    def recording(self, x, gen):
        out = augment(self, x, gen)
        sizes.append(out.shape[-1])
        return out
    monkeypatch.setattr(Pipeline, "train_augment", recording)
    r = train(_cfg(tmp_path, "modern", **{"schedule.steps": 100, "run.eval_every": 100}))
    assert sizes[0] == 8 and sizes[-1] == 16  # progressive resizing follows the epoch (44 steps each)
    assert r.steps == 100 and math.isfinite(r.final["test/top1_err"])
    import json
    recs = [json.loads(line) for line in (r.dir / "metrics.jsonl").read_text().splitlines()]
    train_recs = [x for x in recs if x["kind"] == "train"]
    assert all(0 <= x["err"] <= 1 and math.isfinite(x["loss"]) for x in train_recs)
    assert train_recs[-1]["err"] < 0.9  # counted against the dominant label: it learns


@pytest.mark.slow
def test_resume_with_every_addition_is_bit_identical(tmp_path):
    # 44 steps per epoch: the cut at step 100 falls in epoch 2, where progressive resizing is at full size
    over = {"schedule.steps": 140, "run.ckpt_every": 20, "run.eval_every": 70, "run.keep_ckpts": 10}
    straight = train(_cfg(tmp_path, "straight", **over)).dir
    cut = tmp_path / "cut"
    shutil.copytree(straight, cut, symlinks=True)
    ckpts = cut / "checkpoints"
    for d in ckpts.iterdir():  # as if the run had died right after its step-100 checkpoint
        if d.name.startswith("step-") and int(d.name.split("-")[1]) > 100:
            shutil.rmtree(d)
    for link in ("last", "best"):
        (ckpts / link).unlink(missing_ok=True)
    os.symlink("step-00000100", ckpts / "last")
    (cut / ".lock").unlink(missing_ok=True)
    train(_cfg(tmp_path, "cut", **over), resume=str(cut))
    a = load_file(str(straight / "checkpoints/last/model.safetensors"))
    b = load_file(str(cut / "checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
