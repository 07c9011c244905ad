"""reslab's own trained weights, shipped in the package: offline by name, fp16 on disk, fp32 in memory,
with a complete model card; and the tool that ships them."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import create_model
from reslab.cli.main import main
from reslab.hub import list_weights
from reslab.hub.download import sha256_of
from tools.ship_weights import SHIPPED, ship_checkpoint

CARDS = sorted(SHIPPED.glob("*.json")) if SHIPPED.is_dir() else []


def test_reslab_ships_its_resnet20_and_keeps_the_package_small():
    assert [c.name for c in CARDS] == ["resnet20.reslab.json"]
    total = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert total < 2 * 2**20  # fp16 ResNet-20: ~0.55 MB


@pytest.mark.parametrize("card_file", CARDS, ids=[c.stem for c in CARDS])
def test_every_shipped_set_has_a_complete_card_and_loads_offline(card_file, tmp_path, monkeypatch):
    card = json.loads(card_file.read_text())
    for key in ("arch", "file", "sha256", "top1", "top1_fp32", "eval_data", "preprocess", "recipe", "command", "seed",
                "steps", "date"):
        assert card.get(key) not in (None, ""), key
    weights = SHIPPED / card["file"]
    assert sha256_of(weights) == card["sha256"]
    assert abs(card["top1"] - card["top1_fp32"]) < 0.1  # the fp16 file classifies as the fp32 weights did
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))  # nothing downloaded, nothing cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert f"{card['arch']}.{card['tag']}" in [w.name for w in list_weights(card["arch"])]
    model = create_model(card["arch"], weights="reslab")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    from safetensors import safe_open
    with safe_open(str(weights), "pt") as f:
        assert f.get_tensor("conv1.weight").dtype == torch.float16


def test_a_folder_named_like_the_set_does_not_hide_it(tmp_path, monkeypatch):
    """`--weights reslab` inside a reslab checkout: the package folder `reslab/` holds no weights."""
    (tmp_path / "reslab").mkdir()
    monkeypatch.chdir(tmp_path)
    assert create_model("resnet20", weights="reslab").fc.out_features == 10
    from reslab import ReslabError
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReslabError, match="no weights at empty"):  # not a name either: the path's own error
        create_model("resnet20", weights="empty")


def test_predict_with_the_shipped_weights_needs_nothing_else(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img)
    assert main(["predict", str(img), "--weights", "resnet20.reslab", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
    assert top[0]["class"] in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_ship_tool_writes_fp16_weights_and_a_card(tmp_path, cifar_small):
    assert main(["train", "--model-arg", "depth=8", "--steps", "30", "--data", str(cifar_small), "--batch-size", "32",
                 "--out", str(tmp_path), "--name", "r", "--run.progress", "false", "--run.tensorboard", "false",
                 "--data.cache_dir", str(tmp_path / "c")]) == 0
    card = json.loads(ship_checkpoint(str(tmp_path / "r" / "checkpoints" / "last"), tag="t",
                                      out_dir=tmp_path / "ship", command="reslab train ...").read_text())
    half = tmp_path / "ship" / "resnet20.t.safetensors"
    assert card["file"] == half.name and card["sha256"] == sha256_of(half) and card["steps"] == 30
    assert abs(card["top1"] - card["top1_fp32"]) <= 100 / card["test_images"]  # at most one image changes
    assert half.stat().st_size < 0.6 * (tmp_path / "r/checkpoints/last/model.safetensors").stat().st_size


def test_ship_refuses_other_class_lists(tmp_path):
    from reslab import ReslabError, save_weights
    w = tmp_path / "digits.safetensors"
    save_weights(create_model("resnet20", depth=8), w, name="resnet20", extra={"classes": [str(i) for i in range(10)]})
    with pytest.raises(ReslabError, match="only CIFAR-10 nets"):
        ship_checkpoint(str(w), out_dir=tmp_path / "ship")
    assert not (tmp_path / "ship").exists()
