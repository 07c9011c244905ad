"""A named set's preprocessing, class names and layout travel into every command: predict (resize ->
crop, interpolation, ImageNet names), eval (the set's resize on an ImageNet-style tree), fine-tuning
(its normalisation), export (BN folding on the real layout); foreign layouts are refused in one line."""
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import ReslabError, create_model
from reslab.cli.main import main
from reslab.hub import WeightSet, register_weights, unregister_weights
from tests.hub.test_download import Server

IMAGENET_PRE = {"resize": 232, "crop": 224, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225]}


@pytest.fixture(scope="module")
def imagenet_set(tmp_path_factory):
    """A torchvision-layout ImageNet ResNet-18 served as a hash-named file, registered like tv2."""
    tmp = tmp_path_factory.mktemp("inet")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(tmp / "torch"))
    server = Server()
    torch.manual_seed(0)
    model = create_model("resnet18").eval()
    path = tmp / "r18.pth"
    torch.save(model.state_dict(), path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"resnet18-{digest[:8]}.pth"
    server.files[name] = data
    ws = register_weights(WeightSet(arch="resnet18", tag="test_in1k", source="test", url=server.url(name),
                                    sha256=digest[:8], top1=70.0, eval_data="-", preprocess=IMAGENET_PRE,
                                    classes="imagenet1k", license="bsd-3-clause", aliases=("testset",)))
    yield {"ws": ws, "model": model, "tmp": tmp}
    unregister_weights(ws.name)
    server.stop()
    mp.undo()


def _photo(path, w=300, h=200, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def _torchvision_eval_transform(path, resize, crop, interpolation):
    """Resize(resize) + CenterCrop(crop) written from torchvision's definitions, independently."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    img = img.resize((nw, nh), {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation])
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return torch.from_numpy(np.asarray(img.crop((left, top, left + crop, top + crop))).copy()).permute(2, 0, 1)


def test_predict_uses_the_sets_preprocessing_and_imagenet_names(imagenet_set, tmp_path, capsys):
    from reslab.inference import load_inference_model
    img = _photo(tmp_path / "photo.jpg")
    im = load_inference_model("resnet18.test_in1k")
    p = im.preprocess
    assert (p.resize, p.input_size, p.interpolation) == (232, 224, "bicubic") and im.classes[0] == "tench"
    loaded = im.load([img])[0]
    assert torch.equal(loaded, _torchvision_eval_transform(img, 232, 224, "bicubic"))
    assert main(["predict", str(img), "--weights", "testset", "--model", "resnet18", "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    top = out["predictions"][0]["top"]
    x = (loaded.float() / 255 - torch.tensor(p.mean).view(3, 1, 1)) / torch.tensor(p.std).view(3, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(imagenet_set["model"](x[None]), 1)[0].topk(3)
    assert [t["index"] for t in top] == expected.indices.tolist()
    from reslab.hub import class_names
    assert [t["class"] for t in top] == [class_names("imagenet1k")[i] for i in expected.indices.tolist()]


def test_eval_on_an_imagenet_style_tree_uses_the_sets_resize(imagenet_set, tmp_path, monkeypatch):
    from reslab.training.eval_run import evaluate_checkpoint
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    val = tmp_path / "val"
    from reslab.hub.classes import imagenet_wnids
    wnids = list(imagenet_wnids())  # ImageNet's WordNet-id folders, sorted: its label order
    for w in wnids:
        (val / w).mkdir(parents=True)
    files = [_photo(val / wnids[3] / "a.JPEG", 260, 240, 1), _photo(val / wnids[7] / "b.JPEG", 240, 320, 2)]
    rep = evaluate_checkpoint("resnet18.test_in1k", str(tmp_path), amp="off")
    assert rep.result.n == 2
    # what it should have computed: torchvision's transform with the set's 232 (bicubic), 224, statistics
    x = torch.stack([_torchvision_eval_transform(f, 232, 224, "bicubic") for f in files]).float() / 255
    x = (x - torch.tensor(IMAGENET_PRE["mean"]).view(3, 1, 1)) / torch.tensor(IMAGENET_PRE["std"]).view(3, 1, 1)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(imagenet_set["model"](x), torch.tensor([3, 7])).item()
    assert rep.result.loss == pytest.approx(loss, rel=1e-4)


def test_finetune_from_a_named_set_uses_its_normalisation(imagenet_set, tmp_path):
    from reslab.training import build_config
    from reslab.training.setup import build_run
    (tmp_path / "d" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "train" / "dog").mkdir(parents=True)
    for i in range(4):
        _photo(tmp_path / "d" / "train" / "cat" / f"{i}.jpg", 64, 64, i)
        _photo(tmp_path / "d" / "train" / "dog" / f"{i}.jpg", 64, 64, 10 + i)
    cfg = build_config("finetune", {"finetune.weights": "resnet18.test_in1k", "model": "resnet18",
                                    "data.source": str(tmp_path / "d"), "batch_size": 4, "schedule.steps": 1,
                                    "run.out": str(tmp_path), "run.progress": False, "data.crop": 56,
                                    "data.cache_dir": str(tmp_path / "c")})
    run = build_run(cfg, tmp_path / "ft")
    assert list(run.pipeline.preprocess.mean) == IMAGENET_PRE["mean"]
    assert run.raw_model.fc.out_features == 2  # a new head for the new classes
    torch.testing.assert_close(run.raw_model.layer1[0].conv1.weight.cpu(), imagenet_set["model"].layer1[0].conv1.weight)
    run.close()


def test_export_of_a_named_set_folds_and_verifies(imagenet_set, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'reslab[onnx]')")
    (tmp_path / "val" / "a").mkdir(parents=True)
    for i in range(3):
        _photo(tmp_path / "val" / "a" / f"{i}.jpg", 240, 240, i)
    out = tmp_path / "r18.onnx"
    assert main(["export", "--weights", "resnet18.test_in1k", "--data", str(tmp_path), "--out", str(out),
                 "--verify-images", "3"]) == 0
    card = json.loads(out.with_suffix(".onnx.json").read_text())
    assert card["folded_batchnorm"] == 20 and card["verification"]["max_abs_diff"] < 1e-3
    assert card["preprocess"]["resize"] == 232 and card["classes"][0] == "tench"


@pytest.mark.parametrize("rename,recognised", [
    (lambda k: k.replace("conv1.weight", "conv1.0.weight") if k == "conv1.weight" else k, "deep 3-conv stem"),
    (lambda k: k.replace("layer2.0.downsample.1.", "layer2.0.downsample.2.").replace(
        "layer2.0.downsample.0.", "layer2.0.downsample.1."), "ResNet-D"),
    (lambda k: "stages.0.blocks." + k[len("layer1."):] if k.startswith("layer1.") else k, "ResNetV2"),
    (lambda k: k.replace("layer1.0.bn2.", "layer1.0.se.fc1.") if k.startswith("layer1.0.bn2.") else k,
     "squeeze-and-excitation")])
def test_foreign_timm_layouts_are_refused_in_one_line(tmp_path, rename, recognised):
    state = {rename(k): v for k, v in create_model("resnet50").state_dict().items()}
    f = tmp_path / "foreign.pth"
    torch.save(state, f)
    with pytest.raises(ReslabError, match=f"{recognised}.*not the torchvision ResNet layout") as e:
        create_model("resnet50", weights=str(f))
    assert "\n" not in str(e.value) and "missing" not in str(e.value)
