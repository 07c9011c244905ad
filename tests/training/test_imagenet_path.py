"""The ImageNet path end to end, as a first real job would use it: resume keeps the run's own config,
`reslab eval` reads only the split it evaluates (bounded memory, flat val folders, the split's own name),
and the square path evaluates as torchvision does."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from reslab import ReslabError
from reslab.training import build_config, train
from reslab.training.eval_run import evaluate_checkpoint
from tests.conftest import assert_one_line_error
from tests.data.test_preprocessing import reference_transform

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--model", "resnet18", "--model-arg", "widths=[8,8,16,16]", "--model-arg", "stem_width=8"]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "reslab", *map(str, args)], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def test_resume_from_a_step_from_last_and_from_the_run_folder_gives_the_same_run(tmp_path):
    base = ["train", "--model-arg", "depth=8", "--batch-size", "32", "--steps", "60", "--lr", "0.0123",
            "--run.ckpt_every", "20", "--run.eval_every", "60", "--run.keep_ckpts", "5", "--run.progress", "false",
            "--out", tmp_path]
    out = _cli(*base, "--name", "full")
    assert out.returncode == 0, out.stderr[-2000:]
    full = _weights(tmp_path / "full")
    for form in ("step", "last", "run"):
        run = tmp_path / form
        shutil.copytree(tmp_path / "full", run, symlinks=True)
        ck = run / "checkpoints"
        (run / "config.yaml").write_text("optim: {lr: 0.5}\n")  # not what the run used: must not be read
        if form != "step":  # as if the run had died after step 20
            for d in ("step-00000040", "step-00000060"):
                shutil.rmtree(ck / d)
            (ck / "last").unlink()
            (ck / "last").symlink_to("step-00000020")
            (ck / "best").unlink(missing_ok=True)
        target = {"step": ck / "step-00000020", "last": ck / "last", "run": run}[form]
        out = _cli("train", "--resume", target)
        assert out.returncode == 0, (form, out.stderr[-2000:])
        got = _weights(run)
        assert all(torch.equal(full[k], got[k]) for k in full), f"resume from {form} differs from the full run"
        assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.0123  # the checkpoint's own


def test_a_resume_that_cannot_load_leaves_the_runs_config_alone(tmp_path):
    out = _cli("train", "--model-arg", "depth=8", "--batch-size", "32", "--steps", "20", "--run.progress", "false",
               "--out", tmp_path, "--name", "r", "--lr", "0.0123")
    assert out.returncode == 0, out.stderr[-2000:]
    before = (tmp_path / "r" / "config.yaml").read_text()
    out = _cli("train", "--resume", tmp_path / "r", "--model-arg", "depth=14", "--steps", "40")
    assert_one_line_error(out, "do not fit")
    assert (tmp_path / "r" / "config.yaml").read_text() == before


def _tree(root, n_train=8, train_size=(40, 36), val_size=(40, 36), flat_val=False, classes=("n01440764", "n02102040")):
    rng = np.random.default_rng(0)
    for j, c in enumerate(classes):
        (root / "train" / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_train):
            Image.fromarray(rng.integers(0, 256, (*train_size[::-1], 3), dtype=np.uint8)).save(
                root / "train" / c / f"{i}.JPEG", quality=90)
    rows = ["ImageId,PredictionString"]
    for i in range(6):
        c = classes[i % 2]
        name = f"ILSVRC2012_val_{i + 1:08d}"
        target = root / "val" / (f"{name}.JPEG" if flat_val else f"{c}/{name}.JPEG")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*val_size[::-1], 3), dtype=np.uint8)).save(target, quality=90)
        rows.append(f"{name},{c} 1 2 30 40")
    if flat_val:
        (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return root


def _run(tmp_path, name, data, **over):
    cfg = {"model": "resnet18", "model_args.widths": [8, 8, 16, 16], "model_args.stem_width": 8, "batch_size": 8,
           "schedule.steps": 4, "run.progress": False, "run.tensorboard": False, "data.source": str(data),
           "run.out": str(tmp_path), "run.name": name, "data.cache_dir": str(tmp_path / "cache"), **over}
    return train(build_config("default", cfg))


@pytest.mark.parametrize("flat", [False, True], ids=["class-folders", "kaggle-flat"])
def test_eval_reads_only_its_split_names_it_and_reads_flat_val_folders(tmp_path, monkeypatch, flat):
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    data = _tree(tmp_path / "d", flat_val=flat)
    r = _run(tmp_path, "r", data, **{"data.input": "whole", "data.crop": 32})
    assert "val/top1_err" in r.final
    (data / "train" / "n01440764" / "broken.JPEG").write_bytes(b"not a jpeg")  # train/ is not read by eval
    rep = evaluate_checkpoint(str(r.dir / "checkpoints" / "last"))
    assert rep.result.split == "val" and rep.result.n == 6
    assert rep.result.top1_err == pytest.approx(r.final["val/top1_err"], abs=1e-12)  # the run's own evaluation
    assert (rep.out / "confusion_val.png").is_file() and json.loads((rep.out / "metrics_val.json").read_text())["split"] == "val"
    assert evaluate_checkpoint(str(r.dir / "checkpoints" / "last"), split="val").result.n == 6
    with pytest.raises(ReslabError, match=r"has no test split \(it has: train, val\)"):
        evaluate_checkpoint(str(r.dir / "checkpoints" / "last"), split="test")


PEAK = """
import resource, sys
from reslab.cli.main import main
code = main(sys.argv[1:])
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
sys.exit(code)
"""


def test_evaluating_a_split_does_not_read_the_other_one_into_memory(tmp_path):
    """Peak memory of `reslab eval` with 16 vs 800 training images of 256 x 256 (150 MB decoded): the same."""
    small = _tree(tmp_path / "small", n_train=8, train_size=(256, 256))
    r = _run(tmp_path, "r", small, **{"data.input": "whole", "data.crop": 32})
    big = _tree(tmp_path / "big", n_train=400, train_size=(256, 256))
    peaks = []
    for data in (small, big):
        out = subprocess.run([sys.executable, "-c", PEAK, "eval", "--weights", str(r.dir), "--data", str(data),
                              "--out", str(tmp_path / "e")], env={**ENV, "RESLAB_CACHE": str(tmp_path / "c")},
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks.append(int(out.stdout.split("peak_kib")[1].split()[0]) / 1024)
    assert peaks[1] - peaks[0] < 40, peaks  # MiB; decoding the 800 training images would add 150


def test_the_square_path_evaluates_as_torchvision_does(tmp_path, monkeypatch):
    """A crop below the images' size is evaluated at crop / 0.875 (torchvision's rule), not as the centre of the
    training-size image; what evaluation decodes is torchvision's transform to the pixel."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    data = _tree(tmp_path / "d", train_size=(100, 90), val_size=(100, 90))
    r = _run(tmp_path, "sq", data, **{"data.crop": 32})
    from reslab import read_checkpoint
    pre = read_checkpoint(r.dir / "checkpoints" / "last" / "model.safetensors").preprocess
    assert (pre["input_size"], pre["resize"]) == (32, 36)
    from reslab.data.sources import load_data
    bundle = load_data(str(data), crop=32, cache_dir=str(tmp_path / "cache"))
    files = sorted((data / "val").rglob("*.JPEG"))
    ref = torch.stack([reference_transform(Image.open(f).convert("RGB"), 36, 32, "bilinear") for f in files])
    assert torch.equal(bundle.val.images, ref)
    assert evaluate_checkpoint(str(r.dir / "checkpoints" / "last")).result.top1_err == r.final["val/top1_err"]


def _strict_json(path):
    """json.loads that refuses NaN / Infinity, as strict parsers (JavaScript, jq) do."""
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_run_without_evaluation_writes_strict_json_and_says_it_has_no_best(tmp_path, monkeypatch, capsys):
    """Data with a train split alone (as the GPU proof's generated JPEGs): summary.json must stay strict JSON (no
    Infinity for a best error never measured) and the summary table shows '-' rather than 'inf%'."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    data = _tree(tmp_path / "d")
    shutil.rmtree(data / "val")
    r = _run(tmp_path, "noeval", data, **{"data.input": "whole", "data.crop": 32})
    summary = _strict_json(r.dir / "summary.json")
    assert summary["best_top1_err"] is None and summary["steps"] == 4
    table = capsys.readouterr().err
    assert "inf%" not in table and any(line.split()[:2] == ["best_top1_err", "-"] for line in table.splitlines())


def test_summary_json_is_strict_whatever_the_values(tmp_path):
    """NaN and infinities (a diverged evaluation's loss, inside lists too, numpy scalars) are written as null."""
    from reslab.training.setup import write_json
    write_json(tmp_path / "s.json", {"a": float("nan"), "b": [1.5, float("-inf")], "c": np.float32("inf"),
                                     "d": {"e": float("inf")}, "f": 2})
    assert _strict_json(tmp_path / "s.json") == \
        {"a": None, "b": [1.5, None], "c": None, "d": {"e": None}, "f": 2}
