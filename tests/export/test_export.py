"""Export: BN folding, the three formats with a dynamic batch, verification against eager PyTorch on
real images (and rejection above the tolerance), int8 with its measured accuracy cost."""
import json

import pytest
import torch

from reslab import ReslabError, create_model
from reslab.cli.main import main
from reslab.export import export_model, fold_batchnorm, load_exported
from reslab.inference import load_inference_model

from ..models.reference_nets import randomise_bn

FORMATS = ["onnx", "torchscript", "exported-program"]


def need_onnx(fmt: str = "onnx") -> None:
    """ONNX tests need the optional extra (installed by `.[test]`); skip with a message without it."""
    if fmt == "onnx":
        for mod in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(mod, reason=f"{mod} is not installed (pip install 'reslab[onnx]')")


@pytest.mark.parametrize("name,size,unfoldable", [("resnet20", 32, 0), ("resnet50", 64, 0),
                                                  ("preact_resnet164", 32, 55), ("resnet20@bn_after_add", 32, 9)])
def test_folding_keeps_the_function_and_folds_every_conv_bn_pair(name, size, unfoldable):
    name, _, unit = name.partition("@")
    model = randomise_bn(create_model(name, **({"unit": unit} if unit else {}))).eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    folded, count = fold_batchnorm(model)
    assert count == n_bn - unfoldable  # pre-activation BNs (on the residual stream, before a ReLU) stay
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    assert (ref - got).abs().max() <= 1e-4 * max(1.0, ref.abs().max())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_dynamic_batch_axis(tmp_path, fmt):
    need_onnx(fmt)
    model = randomise_bn(create_model("resnet20", depth=8)).eval()
    folded, _ = fold_batchnorm(model)
    path = export_model(folded, torch.zeros(2, 3, 32, 32), fmt, tmp_path / f"m.{fmt}")
    run = load_exported(path, fmt)
    for n in (1, 7):
        x = torch.randn(n, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(run(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_export_verifies_on_real_images(tmp_path, shared_weights, cifar_small, fmt, capsys):
    need_onnx(fmt)
    out = tmp_path / f"r20.{fmt}"
    assert main(["export", "--weights", str(shared_weights / "resnet20-12fca82f.th"), "--model", "resnet20",
                 "--format", fmt, "--data", str(cifar_small), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "19 BatchNorm layers folded" in text and "256 images" in text and "100.00%" in text
    card = json.loads(out.with_name(out.name + ".json").read_text())
    assert card["verification"]["max_abs_diff"] < 1e-3 and card["input"]["shape"] == ["batch", 3, 32, 32]
    assert card["preprocess"]["mean"] == [0.485, 0.456, 0.406]


def test_export_is_rejected_above_the_tolerance(tmp_path, monkeypatch, capsys):
    """A wrong exported model (simulated: eager + 0.1) fails the check and its file is removed."""
    need_onnx()
    import reslab.export.run as run_mod
    original = run_mod.load_exported
    monkeypatch.setattr(run_mod, "load_exported", lambda p, f: (lambda x: original(p, f)(x) + 0.1))
    weights = tmp_path / "w.safetensors"
    from reslab import save_weights
    save_weights(create_model("resnet20", depth=8), weights, name="resnet20")
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(weights), "--data", "digits", "--out", str(out)]) == 2
    assert "export rejected" in capsys.readouterr().err
    assert not out.exists()


def test_export_needs_real_images_or_no_verify(tmp_path, capsys):
    from reslab import save_weights
    weights = tmp_path / "w.safetensors"
    save_weights(create_model("resnet20", depth=8), weights, name="resnet20")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.pt")]) == 2
    assert "needs real images" in capsys.readouterr().err
    assert main(["export", "--weights", str(weights), "--format", "torchscript", "--no-verify",
                 "--out", str(tmp_path / "m.pt")]) == 0
    assert main(["export", "--weights", str(weights), "--format", "torchscript", "--int8", "--data", "digits",
                 "--out", str(tmp_path / "m2.pt")]) == 2
    assert "--format onnx" in capsys.readouterr().err


def test_int8_on_real_images_reports_its_accuracy_cost(tmp_path, shared_weights, cifar_small, capsys):
    need_onnx()
    out = tmp_path / "r20.onnx"
    assert main(["export", "--weights", str(shared_weights / "resnet20-12fca82f.th"), "--model", "resnet20",
                 "--data", str(cifar_small), "--int8", "--calib-images", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "int8 ->" in text and "300 images" in text
    card = json.loads((tmp_path / "r20.onnx.json").read_text())
    top1 = card["int8"]["top1"]
    assert top1["fp32 eager"] > 70 and abs(top1["fp32 eager"] - top1["int8 onnx"]) < 3
    assert (tmp_path / "r20.int8.onnx").stat().st_size < out.stat().st_size / 2.5


def test_onnx_without_onnxruntime_is_a_clear_error(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name.startswith("onnxruntime"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(ReslabError, match=r"reslab\[onnx\]"):
        load_exported(tmp_path / "m.onnx", "onnx")


def test_exported_model_agrees_with_predict(tmp_path, shared_weights, cifar_small):
    """The exported ONNX file with the card's preprocessing gives the same classes as `reslab predict`."""
    need_onnx()
    from reslab.export.run import export_checkpoint
    from reslab.inference import list_images, load_images, predict
    im = load_inference_model(str(shared_weights / "resnet20-12fca82f.th"), model="resnet20")
    r = export_checkpoint(im, "onnx", tmp_path / "m.onnx", data=str(cifar_small))
    files = list_images(cifar_small / "test")[:50]
    x = im.prepare(load_images(files, im.preprocess.resize, crop=im.preprocess.input_size))
    onnx_top = load_exported(r.path, "onnx")(x).argmax(1).tolist()
    assert onnx_top == [p["top"][0]["index"] for p in predict(im, files, top_k=1)]


@pytest.mark.parametrize("name,kw", [("resnet26d", {}), ("resnetblur50d", {"layers": (1, 1, 1, 1)}),
                                     ("resnetaa50d", {"layers": (1, 1, 1, 1), "output_stride": 16})])
def test_folding_the_deep_stem_and_the_avg_down_shortcut(name, kw):
    """Every BN of a ResNet-D folds: the deep stem's three conv-BN pairs (the last one's BN is bn1) and each
    shortcut's pool-conv-BN; blur-pools and average pools between convs and BNs do not stand in the way."""
    model = randomise_bn(create_model(name, **kw)).eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    folded, count = fold_batchnorm(model)
    assert count == n_bn and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    assert (ref - got).abs().max() <= 1e-4 * max(1.0, ref.abs().max())
