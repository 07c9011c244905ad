"""Streaming path, repeats over seeds, EMA, 10-crop, the ImageNet recipe, and `reslab eval`."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from reslab import ReslabError, create_model, save_weights
from reslab.cli.main import main
from reslab.training import build_config, train

FAST = {"model": "resnet20", "model_args.depth": 8, "run.progress": False, "run.tensorboard": False}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A small folder-per-class tree of 24x24 PNGs whose class is visible (a bright quadrant)."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for split, per in (("train", 24), ("val", 8)):
        for c in range(4):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(per):
                arr = rng.integers(0, 80, (24, 24, 3), dtype=np.uint8)
                y, x = divmod(c, 2)
                arr[y * 12:(y + 1) * 12, x * 12:(x + 1) * 12] += 150
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def run(tmp_path, name, **over):
    return train(build_config("default", {**FAST, "run.out": str(tmp_path), "run.name": name, **over}))


def test_streaming_path_trains_exactly_like_the_in_memory_path(tmp_path, folder):
    common = {"data.source": str(folder), "batch_size": 16, "schedule.steps": 6, "data.cache_dir": str(tmp_path / "c")}
    a = run(tmp_path, "mem", **common)
    b = run(tmp_path, "stream", **common, **{"data.stream": True, "data.workers": 0})
    wa = load_file(str(a.dir / "checkpoints/last/model.safetensors"))
    wb = load_file(str(b.dir / "checkpoints/last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.final == b.final


def test_seeds_report_mean_and_std(tmp_path, capsys):
    rc = main(["train", "--model-arg", "depth=8", "--steps", "8", "--seeds", "0,1", "--out", str(tmp_path),
               "--name", "rep", "--run.progress", "false", "--run.tensorboard", "false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test/top1_err (%)" in out and "± std" in out
    assert (tmp_path / "rep" / "seed-0" / "summary.json").is_file() and (tmp_path / "rep" / "seed-1").is_dir()
    w0 = load_file(str(tmp_path / "rep/seed-0/checkpoints/last/model.safetensors"))
    w1 = load_file(str(tmp_path / "rep/seed-1/checkpoints/last/model.safetensors"))
    assert not torch.equal(w0["conv1.weight"], w1["conv1.weight"])


def test_ema_and_modern_options(tmp_path):
    r = run(tmp_path, "ema", **{"schedule.steps": 10, "optim.ema_decay": 0.9, "optim.nesterov": True,
                                "optim.label_smoothing": 0.1, "optim.decay_norm_and_bias": False})
    state = torch.load(r.dir / "checkpoints/last/state.pt", weights_only=True)
    ema = load_file(str(r.dir / "checkpoints/last/model.safetensors"))  # the evaluated (EMA) weights
    assert state["raw_model"] is not None and not torch.equal(state["raw_model"]["conv1.weight"], ema["conv1.weight"])
    groups = state["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0] and groups[0]["nesterov"]


def test_imagenet_recipe_with_scale_augmentation_and_ten_crop(tmp_path, folder):
    cfg = build_config("imagenet-paper", {**FAST, "data.source": str(folder), "data.cache_size": 24, "data.crop": 16,
                                          "batch_size": 16, "schedule.epochs": 2, "schedule.milestones": [1],
                                          "run.ten_crop": True, "run.out": str(tmp_path), "run.name": "inet",
                                          "data.cache_dir": str(tmp_path / "c")})
    assert cfg.data.augment == "scale"
    r = train(cfg)
    assert r.steps == 12 and "val/top1_err" in r.final


def test_eval_command_on_a_run_and_on_a_zoo_checkpoint(tmp_path, folder, capsys):
    r = run(tmp_path, "ev", **{"data.source": str(folder), "batch_size": 16, "schedule.epochs": 8,
                               "data.cache_dir": str(tmp_path / "c")})
    assert main(["eval", "--weights", str(r.dir / "checkpoints" / "last"), "--data", str(folder), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["images"] == 32 and set(rep["per_class_acc"]) == {f"class{c}" for c in range(4)}
    assert abs(rep["top1_err"] - r.final["val/top1_err"]) < 1e-9  # same preprocessing as training's evaluation
    assert list((r.dir / "eval").glob("step-*/confusion_val.png")) and not list((r.dir / "checkpoints").glob("*/eval"))
    assert main(["eval", "--weights", str(r.dir), "--data", str(folder), "--amp", "off"]) == 0  # run folder: best
    # a checkpoint without reslab metadata needs --model
    plain = tmp_path / "plain.pth"
    torch.save(create_model("resnet20", num_classes=4).state_dict(), plain)
    assert main(["eval", "--weights", str(plain), "--data", str(folder)]) == 2
    assert "pass --model" in capsys.readouterr().err
    assert main(["eval", "--weights", str(plain), "--model", "resnet20", "--data", str(folder), "--ten-crop",
                 "--crop", "20"]) == 0
    assert "top-1 error" in capsys.readouterr().out


def test_eval_refuses_mismatched_classes(tmp_path, folder):
    w = tmp_path / "m.safetensors"
    save_weights(create_model("resnet20"), w, name="resnet20")
    with pytest.raises(ReslabError, match="10 classes but --data .* has 4"):
        from reslab.training.eval_run import evaluate_checkpoint
        evaluate_checkpoint(str(w), str(folder))
