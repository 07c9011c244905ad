"""Each experiment and analysis command end to end on a tiny budget (real shared data when present)."""
import json

import pytest

from reslab import ReslabError
from reslab.cli.main import main
from reslab.experiments import EXPERIMENTS
from reslab.experiments.runner import _slug, run_experiment

TINY = {"schedule.steps": 4, "schedule.milestones": [2], "run.eval_every": 2, "run.ckpt_every": 2, "batch_size": 16,
        "data.train_subset": 64, "data.eval_subset": 32, "run.tensorboard": False}


@pytest.mark.parametrize("name", ["degradation", "shortcuts", "preact"])
def test_experiment_end_to_end_tiny(tmp_path, name):
    import csv
    extra = dict(TINY)
    if name != "degradation":
        extra["model_args.depth"] = 8
    root = run_experiment(name, "quick", "digits", [0], str(tmp_path), extra)
    rows = list(csv.DictReader(open(root / "results.csv")))
    assert [r["arm"] for r in rows] == [a.label for a in EXPERIMENTS[name].arms]
    text = (root / "summary.md").read_text()
    for r in rows:
        assert 0 <= float(r["test_err"]) <= 100 and f"| {r['arm']} |" in text and f"| {r['test_err']} |" in text
    # the table's test error is the arm's own final evaluation
    first = rows[0]
    final = json.loads((root / _slug(first["arm"]) / "seed-0" / "summary.json").read_text())
    assert float(first["test_err"]) == pytest.approx(100 * final["test/top1_err"], abs=0.006)
    if name == "degradation":  # the claim lines quote the measured training errors
        assert f"plain-56 {float(rows[1]['train_err']):.2f} %" in text
    assert (root / "curves.png").stat().st_size > 10_000
    if name == "preact":  # the table names the depth the nets were actually built at, not the paper's 110
        assert "resnet110 built at depth 8" in text


def test_bad_override_leaves_no_experiment_folder(tmp_path):
    with pytest.raises(ReslabError, match="unknown config field 'optim.lrr'"):
        run_experiment("degradation", "quick", "digits", [0], str(tmp_path), {"optim.lrr": 0.1})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # ~15 s: a process per arm (runner._train_in_subprocess)
def test_depth_experiment_runs_arms_in_their_own_process(tmp_path):
    extra = {**TINY, "model_args.depth": 20}  # tiny stand-ins for 1202 / 1001 layers
    root = run_experiment("depth", "quick", "digits", [0], str(tmp_path), extra)
    rows = (root / "results.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(float(r.split(",")[-2]) > 0 for r in rows)  # peak memory measured
    cfg = (root / "resnet-1202" / "seed-0" / "config.yaml").read_text()
    assert "grad_checkpointing: true" in cfg


def test_unknown_experiment_and_budget(tmp_path):
    with pytest.raises(ReslabError, match="closest first: degradation"):
        run_experiment("degradaton", out=str(tmp_path))
    with pytest.raises(ReslabError, match="quick, paper"):
        run_experiment("degradation", "huge", out=str(tmp_path))


def test_analyze_commands(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["analyze", "gradients", "resnet20", "--data", "digits", "--batch", "16", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plain20 (init)" in text and "resnet20 (init)" in text
    assert (out / "gradients.png").is_file() and len((out / "gradients.csv").read_text().splitlines()) == 1 + 2 * 10
    run = tmp_path / "run"
    assert main(["train", "--model-arg", "depth=8", "--steps", "4", "--run.ckpt_every", "2", "--out", str(tmp_path),
                 "--name", "run", "--run.progress", "false"]) == 0
    capsys.readouterr()
    assert main(["analyze", "gradients", "resnet20", "--weights", str(run), "--data", "digits", "--batch", "16",
                 "--no-twins", "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [r["model"] for r in rows] == ["resnet20 (init)", "resnet20 (step 2)", "resnet20 (step 4)"]
    assert main(["analyze", "responses", str(run), "--data", "digits", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "responses.png").is_file()
