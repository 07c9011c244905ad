"""What a first-time user hit, each reproduced and fixed: one name resolver everywhere, analyses that never
evaluate the wrong data, shipped weights that do not point at a build machine, contradictions refused,
one-class data refused, outputs that never overwrite each other, ImageNet names for WordNet-id folders."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import ReslabError, create_model, save_weights
from reslab.cli.main import main
from reslab.training import build_config, train
from tests.conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FAST = {"model": "resnet20", "model_args.depth": 8, "batch_size": 32, "schedule.steps": 20, "run.progress": False,
        "run.tensorboard": False}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reslab", *map(str, args)], env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _images(folder, n=2, size=(40, 32), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"x{i}.png")


def test_cam_images_of_the_same_name_in_different_folders_do_not_overwrite_each_other(tmp_path):
    _images(tmp_path / "a", 1)
    _images(tmp_path / "b", 1, seed=1)
    out = tmp_path / "cams"
    assert main(["predict", str(tmp_path / "a" / "x0.png"), str(tmp_path / "b" / "x0.png"), "--weights", "reslab",
                 "--cam", "--cam-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x0.cam.png", "b_x0.cam.png"]


def test_the_shipped_weights_record_no_path_of_a_build_machine_and_eval_asks_for_data():
    from reslab.hub import find_weights
    from reslab.hub.open import fetch
    blob = fetch(find_weights("resnet20.reslab")).read_bytes()
    for root in (b"/work/", b"/root/", b"/home/", b"/tmp/"):
        assert root not in blob
    with pytest.raises(ReslabError, match="resnet20.reslab was trained on .*: pass --data"):
        from reslab.training.eval_run import evaluate_checkpoint
        evaluate_checkpoint("reslab", model="resnet20")


def test_a_weights_name_wins_over_a_folder_of_that_name_in_every_command(tmp_path):
    """`reslab analyze lesion reslab` inside a reslab checkout: the package folder holds no weights."""
    data = tmp_path / "cifar"
    for cls in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
        _images(data / "test" / cls, 2, (32, 32), seed=len(cls))
    out = _cli("analyze", "lesion", "reslab", "--data", data, "--images", "20", "--draws", "1", "--path-draws", "0",
               "--out", tmp_path / "les", cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "les" / "lesion.csv").is_file()


def test_analyses_never_guess_the_data(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_weights(create_model("resnet20", depth=8), weights, name="resnet20",
                 extra={"classes": [f"c{i}" for i in range(10)]})
    out = _cli("analyze", "lesion", weights, "--out", tmp_path / "o")  # no training config, no --data
    assert_one_line_error(out, "does not record the data it was trained on: pass --data")
    out = _cli("analyze", "landscape", weights, "--data", "digits", "--out", tmp_path / "o")  # other class names
    assert_one_line_error(out, "has other classes than")


def test_one_class_data_is_refused_and_an_empty_class_folder_is_named(tmp_path):
    _images(tmp_path / "one" / "train" / "cat", 4)
    out = _cli("train", "--data", tmp_path / "one", "--steps", "2", "--out", tmp_path / "runs")
    assert_one_line_error(out, "a classifier needs at least two")
    assert "Warning" not in out.stderr
    _images(tmp_path / "two" / "train" / "cat", 4)
    (tmp_path / "two" / "train" / "dog").mkdir()
    out = _cli("train", "--data", tmp_path / "two", "--steps", "2", "--out", tmp_path / "runs")
    assert_one_line_error(out, "class folder")
    assert "train/dog holds no images" in out.stderr


def test_a_model_that_contradicts_the_checkpoint_is_refused(tmp_path):
    r = train(build_config("default", {**FAST, "run.out": str(tmp_path), "run.name": "r"}))
    out = _cli("eval", "--weights", r.dir, "--model", "resnet56")
    assert_one_line_error(out, "--model resnet56 contradicts the checkpoint, which is a resnet20")


def test_best_breaks_ties_by_loss():
    from reslab.training.evaluate import EvalResult
    from reslab.training.trainer import _better
    res = EvalResult("val", 10, 2.35, 0.5, 0.9, torch.zeros(2, 2))
    assert _better(res, 0.5, 182.0) and not _better(res, 0.5, 1.0) and _better(res, 0.6, 0.1)


def test_predictions_on_wordnet_id_folders_show_imagenet_names(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_weights(create_model("resnet20", depth=8, num_classes=2), weights, name="resnet20",
                 extra={"classes": ["n01440764", "n02102040"]})
    _images(tmp_path / "img", 1)
    assert main(["predict", str(tmp_path / "img"), "--weights", str(weights), "--json"]) == 0
    names = {t["class"] for t in json.loads(capsys.readouterr().out)["predictions"][0]["top"]}
    assert names == {"tench (n01440764)", "English springer (n02102040)"}
