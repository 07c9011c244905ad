"""`reslab predict` and `reslab features`: preprocessing from the checkpoint, names and probabilities,
real images, and one-line errors for bad inputs."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file as load_np
from safetensors import safe_open

from reslab import ReslabError
from reslab.cli.main import main
from reslab.data.sources import load_data
from reslab.inference import extract_features, list_images, load_images, load_inference_model, predict
from reslab.inference.spec import check_input
from reslab.training import build_config, train


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    res = train(build_config("default", {"model_args.depth": 8, "schedule.steps": 60, "run.out": str(out),
                                         "run.name": "d", "run.progress": False, "run.tensorboard": False}))
    return res.dir


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """The first 40 digits test images written as PNG files, with their labels."""
    root = tmp_path_factory.mktemp("digit_png")
    test = load_data("digits").test
    for i in range(40):
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(root / f"{i:03d}.png")
    return root, test.labels[:40]


def test_predict_uses_the_checkpoints_preprocessing(digits_run, digit_files):
    """Predictions from image files equal the evaluation the run itself did (same normalisation/size)."""
    root, labels = digit_files
    im = load_inference_model(str(digits_run))
    assert im.classes == [str(i) for i in range(10)] and (im.preprocess.resize, im.preprocess.input_size) == (16, 16)
    res = predict(im, list_images(root), top_k=3)
    test = load_data("digits").test
    from reslab.data.pipeline import Pipeline
    x = Pipeline(im.preprocess, "none").eval_prepare(test.images[:40])
    with torch.no_grad():
        ref = torch.softmax(im.model.eval()(x), 1)
    assert [r["top"][0]["index"] for r in res] == ref.argmax(1).tolist()
    for r, p in zip(res, ref):
        assert r["top"][0]["prob"] == pytest.approx(float(p.max()), abs=1e-5)
        probs = [t["prob"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6


def test_cli_predict_table_and_json(digits_run, digit_files, capsys):
    root, _ = digit_files
    assert main(["predict", str(root / "000.png"), str(root / "001.png"), "--weights", str(digits_run), "--top-k", "2"]) == 0
    table = capsys.readouterr().out
    assert "probability" in table and "000.png" in table and table.count("%") == 4
    assert main(["predict", str(root), "--weights", str(digits_run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["predictions"]) == 40 and len(data["predictions"][0]["top"]) == 5


def test_pretrained_cifar_checkpoint_predicts_real_images(shared_weights, cifar_small, capsys):
    files = list_images(cifar_small / "test")
    im = load_inference_model(str(shared_weights / "resnet20-12fca82f.th"), model="resnet20",
                              classes=["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    res = predict(im, files, top_k=1)
    truth = [f.parent.name for f in files]
    acc = np.mean([r["top"][0]["class"] == t for r, t in zip(res, truth)])
    assert acc > 0.7, acc  # 81 % on the whole JPEG test split
    assert main(["predict", str(files[0]), "--weights", str(shared_weights / "resnet20-12fca82f.th"),
                 "--model", "resnet20", "--classes", "cifar10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["top"][0]["class"] in truth


def test_bad_inputs_get_one_line_errors(digits_run, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    assert main(["predict", str(bad), "--weights", str(digits_run)]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and err.count("\n") == 1
    assert main(["predict", str(tmp_path / "missing.png"), "--weights", str(digits_run)]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--weights", str(digits_run)]) == 2
    assert "no images" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    assert main(["predict", str(bad), "--weights", str(digits_run), "--classes", str(names)]) == 2
    assert "2 class names given for a model with 10 outputs" in capsys.readouterr().err
    im = load_inference_model(str(digits_run))
    with pytest.raises(ReslabError, match="3-channel images, got 4"):
        im.prepare(torch.zeros(1, 4, 16, 16, dtype=torch.uint8))
    with pytest.raises(ReslabError, match="N x 3 x H x W"):
        im.prepare(torch.zeros(3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ReslabError, match="smaller than the model's 16 x 16 input"):
        im.prepare(torch.zeros(2, 3, 12, 16, dtype=torch.uint8))
    with pytest.raises(ReslabError, match="expected torch.uint8"):
        im.prepare(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ReslabError, match="16 x 16 inputs"):
        check_input(torch.zeros(1, 3, 20, 16), 3, size=16)


def test_images_of_any_size_and_mode_are_converted(tmp_path):
    Image.new("L", (50, 30), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (30, 50), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    Image.new("P", (40, 40)).save(tmp_path / "pal.gif")
    batch = load_images(list_images(tmp_path), 16)
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == torch.uint8
    assert load_images(list_images(tmp_path), 16, in_chans=1).shape == (3, 1, 16, 16)


def test_features_npy_and_safetensors(digits_run, digit_files, tmp_path, capsys):
    root, _ = digit_files
    im = load_inference_model(str(digits_run))
    files = list_images(root)
    feats = extract_features(im, files, ["pooled", "stage2"])
    assert feats["pooled"].shape == (40, 64) and feats["stage2"].shape == (40, 32, 8, 8)
    from reslab.data.pipeline import Pipeline
    x = Pipeline(im.preprocess, "none").eval_prepare(load_data("digits").test.images[:40])
    with torch.no_grad():
        ref = im.model.forward_head(im.model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(feats["pooled"], ref.numpy(), atol=1e-5)
    assert main(["features", str(root), "--weights", str(digits_run), "--out", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape == (40, 64)
    assert json.loads((tmp_path / "f.files.json").read_text()) == [str(f) for f in files]
    assert main(["features", str(root), "--weights", str(digits_run), "--layers", "pooled,0,3",
                 "--out", str(tmp_path / "f.safetensors")]) == 0
    saved = load_np(str(tmp_path / "f.safetensors"))
    assert saved["stage0"].shape == (40, 16, 16, 16) and saved["stage3"].shape == (40, 64, 4, 4)
    assert len(json.loads(safe_open(str(tmp_path / "f.safetensors"), "np").metadata()["files"])) == 40
    capsys.readouterr()
    assert main(["features", str(root), "--weights", str(digits_run), "--layers", "pooled,stage2",
                 "--out", str(tmp_path / "two.npy")]) == 2
    assert ".safetensors" in capsys.readouterr().err
    assert main(["features", str(root), "--weights", str(digits_run), "--layers", "9", "--out", str(tmp_path / "x.npy")]) == 2
    assert "stage index 0 (stem) .. 3" in capsys.readouterr().err


def test_loading_a_hostile_checkpoint_runs_nothing(tmp_path, digit_files, capsys):
    import os
    import pickle
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": Evil()}, f)
    root, _ = digit_files
    assert main(["predict", str(root), "--weights", str(path), "--model", "resnet20"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()
