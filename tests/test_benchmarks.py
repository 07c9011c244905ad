"""The benchmark scripts run end to end at tiny sizes (their real runs are in docs/RESULTS.md)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~35 s on 2 cores
@pytest.mark.timeout(600)
def test_train_throughput_tiny():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/train_throughput.py"), "--tiny"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith(("resnet20", "resnet50"))]
    assert len(rows) == 2
    for row in rows:  # reference img/s, reslab img/s, and a speed-up that is their ratio
        ref, ours = (float(v) for v in re.findall(r"([\d.]+)/s", row)[:2])
        speedup = float(re.search(r"([\d.]+)x", row).group(1))
        assert ref > 0 and ours > 0 and speedup == pytest.approx(ours / ref, rel=0.02), row


@pytest.mark.slow  # ~13 s on 2 cores
@pytest.mark.timeout(600)
def test_checkpoint_memory_tiny():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/checkpoint_memory.py"), "--models", "resnet20",
                          "--batch", "4"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    mib = [float(v) for v in re.findall(r"([\d.]+) MiB", out.stdout)]
    ratio = float(re.search(r"ratio\s+([\d.]+)x", out.stdout).group(1))
    assert len(mib) == 2 and all(m > 0 for m in mib) and ratio == pytest.approx(mib[0] / mib[1], abs=0.012)


@pytest.mark.slow  # ~20 s on 2 cores
@pytest.mark.timeout(600)
def test_inference_benchmark_tiny(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'reslab[onnx]')")
    paths = "eager fp32,folded+channels_last,bf16 autocast,onnxruntime fp32,onnxruntime int8"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/inference.py"), "--tiny", "--paths", paths,
                          "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    res = json.loads((tmp_path / "r.json").read_text())["results"]
    assert res[0]["path"] == "eager fp32" and res[0]["b1_speedup"] == 1.0
    assert {r["path"] for r in res} >= {"eager fp32", "onnxruntime fp32", "onnxruntime int8"}
    assert (tmp_path / "r.png").stat().st_size > 1000


@pytest.mark.timeout(600)
def test_input_pipeline_benchmark_tiny(tmp_path):
    import json
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/input_pipeline.py"), "--tiny", "--json",
                          str(tmp_path / "r.json"), "--png", str(tmp_path / "r.png")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["images"] for r in rows] == ["224 (shared)", "500x375", "2000x1500"]
    for r in rows:
        assert r["reference"] > 0 and r["stream"] > 0 and r["cache"] > 0 and r["stream_sj"] > 0
        for k in ("stream", "stream_sj", "cache"):
            assert r[f"{k}_x"] == pytest.approx(r[k] / r["reference"], rel=0.02)
        assert r["cache_mib"] > 0 and r["cache_build_s"] >= 0


def test_imagenette_leaderboard_report_from_runs(tmp_path):
    """The leaderboard table from run folders (what `reslab train` writes): mean ± std beside the board's row."""
    import json as _json
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import imagenette_leaderboard as lb
    runs = []
    for seed, err in ((0, 0.15), (1, 0.13)):
        run = tmp_path / f"seed-{seed}"
        run.mkdir()
        (run / "summary.json").write_text(_json.dumps({"val/top1_err": err, "wall_s_total": 1200.0,
                                                        "train_img_s": 20.0, "model": "resnet18d"}))
        (run / "metrics.jsonl").write_text("".join(_json.dumps({"kind": "eval", "step": s, "val/top1_err": err + 0.1 / s})
                                                   + "\n" for s in (1, 2, 3)))
        (run / "config.yaml").write_text("data: {crop: 128}\n")
        runs.append(str(run))
    assert lb.main(["--collect", *runs, "--epochs", "5", "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "leaderboard.md").read_text()
    assert "**86.00 ± 1.41**" in table and "85.77" in table and (tmp_path / "rep" / "leaderboard.png").is_file()
    assert lb.main(["--collect", runs[0], "--epochs", "5", "--out", str(tmp_path / "one")]) == 0
    one = (tmp_path / "one" / "leaderboard.md").read_text()
    assert "**85.00** | 1 |" in one and "±" not in one  # one run has no spread to report


def test_imagenette_ablation_names_what_each_run_changed(tmp_path):
    """--ablation: one row per run with the keys its config.yaml sets differently from the recipe; where it ran,
    its name, data paths and seed are not changes."""
    import json as _json

    import yaml
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import imagenette_leaderboard as lb
    from reslab.training.config import build_config, to_yaml
    recipe = yaml.safe_load((ROOT / "reslab" / "training" / "recipes" / "imagenette.yaml").read_text())
    assert recipe["data"]["min_scale"] != 1.0 and recipe["optim"]["weight_decay"] != 1e-4  # else the test proves nothing
    runs = []
    for name, seed, overrides in (("recipe", 3, {}),
                                  ("variant", 0, {"data.min_scale": 1.0, "optim.weight_decay": 1e-4,
                                                  "model_args": {"zero_init_residual": True, "aa": "blur"},
                                                  "optim.betas": [0.9, 0.99]})):
        cfg = build_config("imagenette", {"data.source": f"/somewhere/{name}.tar", "run.out": "/elsewhere",
                                          "run.name": name, "run.seed": seed, **overrides})
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(to_yaml(cfg))
        (run / "summary.json").write_text(_json.dumps({"val/top1_err": 0.2, "wall_s_total": 600.0, "train_img_s": 20.0,
                                                        "model": "resnet18d"}))
        (run / "metrics.jsonl").write_text(_json.dumps({"kind": "eval", "step": 5, "val/top1_err": 0.2}) + "\n")
        runs.append(str(run))
    assert lb.main(["--ablation", "--collect", *runs, "--out", str(tmp_path / "abl")]) == 0
    rows = (tmp_path / "abl" / "ablation.md").read_text().splitlines()
    assert rows[2] == "| recipe | none | 3 | 80.00 % | 10.0 min | 20.0 |"
    assert rows[3] == ("| variant | `data.min_scale=1.0`, `model_args.aa=blur`, `optim.betas=0.9,0.99`, "
                       "`optim.weight_decay=0.0001` | 0 | 80.00 % | 10.0 min | 20.0 |")
    assert (tmp_path / "abl" / "ablation.png").is_file()
    # an older run's config: a section field it lacks (added since) is no change; the recipe's model argument it
    # lacks (its model_args replaced the recipe's) is one
    old = yaml.safe_load((tmp_path / "recipe" / "config.yaml").read_text())
    del old["optim"]["lookahead_k"]
    old["model_args"] = {"aa": "blur"}
    assert lb.changes(yaml.safe_dump(old)) == ["model_args.aa=blur", "model_args.zero_init_residual=<unset>"]
