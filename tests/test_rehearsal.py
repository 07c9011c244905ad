"""The ImageNet-shaped rehearsal (tools/imagenet_rehearsal.py): the user path on ImageNet's layouts, with
Imagenette's own images when ../shared has them (generated ones otherwise). The default run checks every
layout's data and runs the whole path on Kaggle's layout; `-m slow` runs it on all four."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import imagenet_rehearsal as rehearsal  # noqa: E402


@pytest.mark.timeout(900)
def test_rehearsal_on_kaggles_layout(tmp_path):
    code = rehearsal.main(["--out", str(tmp_path), "--per-class", "4", "--val-per-class", "2", "--steps", "8",
                           "--layouts", "kaggle"])
    report = json.loads((tmp_path / "rehearsal.json").read_text())
    assert code == 0 and not report["failures"], report["failures"]
    assert set(report["checks"]) >= {"folders", "kaggle", "devkit", "shards"}
    assert all(c["once_per_epoch"] and c["classes_ok"] for k, c in report["checks"].items() if isinstance(c, dict))
    assert report["checks"]["eval_transform_max_diff"] == 0 and report["runs"][0]["split"] == "val"
    assert (tmp_path / "rehearsal.md").is_file()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_rehearsal_on_every_layout(tmp_path):
    code = rehearsal.main(["--out", str(tmp_path), "--per-class", "10", "--val-per-class", "4", "--steps", "16"])
    report = json.loads((tmp_path / "rehearsal.json").read_text())
    assert code == 0 and not report["failures"], report["failures"]
    assert [r["layout"] for r in report["runs"]] == ["folders", "kaggle", "devkit", "shards"]
