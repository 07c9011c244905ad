"""Every Python block of the README and docs/*.md runs as written, in a temporary folder that holds what the
blocks name (a run folder, photos, a timm weights file). Pretrained sets are not downloaded: `fetch` hands
out weights of the right layout made on the spot, so what is checked is reslab's API as the docs use it."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(doc, i, code) for doc in DOCS
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S))]


def test_the_docs_have_python_to_run():
    assert any(doc.name == "README.md" for doc, _, _ in BLOCKS) and len({d for d, _, _ in BLOCKS}) >= 3


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """runs/my-run (a tiny trained run), photos/, and timm's resnet50d file, as the docs name them."""
    from reslab.models import build_model
    from reslab.training import build_config, train
    ws = tmp_path_factory.mktemp("docs")
    train(build_config("default", {"model_args.depth": 8, "schedule.steps": 10, "run.progress": False,
                                   "run.tensorboard": False, "run.out": str(ws / "runs"), "run.name": "my-run"}))
    (ws / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(ws / "photos" / f"{i}.jpg")
    torch.save(build_model("resnet50d").state_dict(), ws / "resnet50d_ra2-464e36ba.pth")
    return ws


def _offline_fetch(folder: Path):
    """A stand-in for reslab.hub.open.fetch: a state dict of the set's layout (random weights), once per set."""
    from reslab.models import build_model

    def fetch(ws, progress=True, revision=None):
        if ws.url.startswith("package:"):
            from reslab.hub import open as hub_open
            return hub_open.real_fetch(ws, progress, revision)
        path = folder / f"{ws.name}.pth"
        if not path.exists():
            torch.save(build_model(ws.arch, num_classes=ws.num_classes, **ws.model_args).state_dict(), path)
        return path
    return fetch


@pytest.mark.parametrize("doc,index,code", BLOCKS, ids=[f"{d.name}-{i + 1}" for d, i, _ in BLOCKS])
def test_docs_python_block_runs(doc, index, code, workspace, monkeypatch, tmp_path):
    from reslab.hub import open as hub_open
    monkeypatch.setattr(hub_open, "real_fetch", hub_open.fetch, raising=False)
    monkeypatch.setattr(hub_open, "fetch", _offline_fetch(tmp_path))
    monkeypatch.chdir(workspace)
    exec(compile(code, f"{doc.name} python block {index + 1}", "exec"), {"__name__": "__docs__"})
