"""One preprocessing description (reslab.InputConfig) and one evaluation transform, held against the anchors'
own code: torchvision's `weights.transforms()` and timm's `create_transform(**resolve_data_config(...))` on
PIL images of odd sizes, to the pixel and to the float; a reference written from torchvision's rules where
torchvision is absent; models' `pretrained_cfg` from every source; old checkpoints; EXIF; nearest."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import reslab
from reslab import InputConfig, ReslabError
from reslab.data.preprocessing import eval_image
from tests import reference_libs as refs

SIZES = [(333, 500), (500, 333), (64, 43), (43, 64), (640, 427), (256, 256), (225, 2000), (2, 3)]


def _image(w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return img.convert(mode).convert("RGB") if mode != "RGB" else img


def reference_transform(img, resize, crop, interpolation):
    """Resize(resize) + CenterCrop(crop), written again from torchvision's definitions (uint8 3 x crop x crop)."""
    w, h = img.size
    nw, nh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                                    "nearest": Image.NEAREST}[interpolation])
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return torch.from_numpy(np.asarray(img.crop((left, top, left + crop, top + crop))).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("w,h", SIZES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_eval_image_follows_torchvisions_rules_on_odd_sizes(w, h, interpolation):
    img = _image(w, h, seed=w * h)
    cfg = InputConfig(224 if min(w, h) > 8 else 2, 232 if min(w, h) > 8 else 2, interpolation)
    assert torch.equal(eval_image(img, cfg), reference_transform(img, cfg.resize, cfg.input_size, interpolation))


def test_degenerate_images_are_refused_in_one_line(tmp_path):
    for size in [(1, 1), (1, 50), (50, 1)]:
        with pytest.raises(ReslabError, match="too small to resize"):
            eval_image(_image(*size), InputConfig(224, 256))
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ReslabError, match="1x1 image is too small"):
        reslab.transforms_for(InputConfig(224, 256))(tmp_path / "dot.png")


@pytest.mark.parametrize("name,enum", [("resnet50.tv2_in1k", "ResNet50_Weights.IMAGENET1K_V2"),
                                       ("resnet18.tv_in1k", "ResNet18_Weights.IMAGENET1K_V1"),
                                       ("wide_resnet50_2.tv2_in1k", "Wide_ResNet50_2_Weights.IMAGENET1K_V2")])
def test_torchvision_sets_equal_torchvisions_weights_transforms(name, enum):
    tv = refs.torchvision()
    cls, entry = enum.split(".")
    theirs = getattr(getattr(tv.models, cls), entry).transforms()
    ours = reslab.transforms_for(name)
    for i, (w, h) in enumerate(SIZES[:-1]):
        img = _image(w, h, seed=i, mode="L" if i == 2 else "RGB")
        assert torch.equal(ours(img), theirs(img)), (name, w, h)  # bit for bit, normalisation included


@pytest.mark.parametrize("name", ["resnet50.a1_in1k", "resnet18.a3_in1k", "resnet50.a1h_in1k", "resnet34.bt_in1k",
                                  "resnet50d.ra2_in1k"])
def test_timm_sets_equal_timms_eval_transform(name):
    timm = refs.timm()
    m = timm.create_model(name, pretrained=False)
    theirs = timm.data.create_transform(**timm.data.resolve_data_config({}, model=m))
    ours = reslab.transforms_for(name)
    for i, (w, h) in enumerate(SIZES[:-1]):
        img = _image(w, h, seed=10 + i)
        assert torch.equal(ours(img), theirs(img)), (name, w, h)


def test_the_test_size_is_timms_test_input_size():
    cfg = reslab.input_config("resnet50.a1_in1k")
    assert (cfg.input_size, cfg.resize, cfg.interpolation) == (224, 235, "bicubic")
    test = reslab.transforms_for("resnet50.a1_in1k", use_test_size=True).cfg
    assert (test.input_size, test.resize) == (288, 288)  # timm: test_input_size 288, test_crop_pct 1.0


def test_the_batched_uint8_variant_is_the_same_transform(tmp_path):
    t = reslab.transforms_for("resnet18.tv_in1k")
    paths = []
    for i, (w, h) in enumerate(SIZES[:4]):
        _image(w, h, seed=i).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    batch = t.batch(paths)
    assert batch.dtype == torch.uint8 and batch.shape == (4, 3, 224, 224)
    assert torch.equal(t.normalize_batch(batch), torch.stack([t(p) for p in paths]))


def test_models_carry_their_pretrained_cfg_and_timm_reads_it(tmp_path):
    assert reslab.create_model("resnet20").pretrained_cfg == {}  # random init
    shipped = reslab.create_model("resnet20", weights="reslab")  # a registry set, offline
    cfg = shipped.pretrained_cfg
    assert cfg["input_size"] == (3, 32, 32) and cfg["source"] == "resnet20.reslab" and cfg["classes"][0] == "airplane"
    reslab.save_weights(shipped, tmp_path / "r.safetensors", name="resnet20",
                        extra={"preprocess": {"input_size": 28, "resize": 32, "interpolation": "bicubic",
                                              "mean": [0.5] * 3, "std": [0.25] * 3}})
    loaded = reslab.load_model(tmp_path / "r.safetensors")  # a checkpoint file
    assert loaded.pretrained_cfg["crop_pct"] == pytest.approx(28 / 32) and loaded.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    timm = refs.timm()
    resolved = timm.data.resolve_data_config({}, model=loaded)
    assert resolved["input_size"] == (3, 28, 28) and resolved["interpolation"] == "bicubic"
    theirs = timm.data.create_transform(**resolved)
    img = _image(75, 60, seed=3)
    assert torch.equal(reslab.transforms_for(loaded)(img), theirs(img))
    with pytest.raises(ReslabError, match="built without weights"):
        reslab.transforms_for(reslab.create_model("resnet20"))


def test_checkpoints_of_earlier_reslab_versions_still_load(tmp_path):
    """Before the InputConfig, checkpoints recorded {"image_size", "crop"}: the same meaning (resize, input)."""
    net = reslab.create_model("resnet20")
    reslab.save_weights(net, tmp_path / "old.safetensors", name="resnet20",
                        extra={"preprocess": {"mean": [0.3] * 3, "std": [0.38] * 3, "image_size": 36, "crop": 32,
                                              "interpolation": "bilinear"}, "classes": [str(i) for i in range(10)]})
    cfg = reslab.input_config(tmp_path / "old.safetensors")
    assert (cfg.input_size, cfg.resize, cfg.mean) == (32, 36, (0.3, 0.3, 0.3)) and cfg.classes[0] == "0"
    assert reslab.load_model(tmp_path / "old.safetensors").pretrained_cfg["input_size"] == (3, 32, 32)


def test_exif_orientation_is_applied_only_where_asked(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(arr).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    cfg = InputConfig(20, 20)
    raw, upright = eval_image(tmp_path / "phone.jpg", cfg), eval_image(tmp_path / "phone.jpg", cfg, exif=True)
    assert raw[0, :, :5].float().mean() > 200  # as stored (torchvision, timm, reslab's training and eval)
    assert upright[0, :5, :].float().mean() > 200 and upright[0, -5:, :].float().mean() < 50  # as shown


def test_nearest_on_the_whole_image_path_is_pillows_nearest():
    from reslab.data.crops import Crop
    from reslab.data.whole import crop_resize
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (53, 37, 3), dtype=np.uint8)
    for size in (16, 24, 70, 90, 128, 224, 31):  # down and up, scales whose running sums hit integers
        for top, left, h, w in ((5, 3, 40, 30), (0, 0, 53, 37), (10, 7, 21, 17)):
            out = crop_resize(arr, (37, 53), Crop(top, left, h, w, False), size, "nearest")
            ref = np.asarray(Image.fromarray(arr[top:top + h, left:left + w]).resize((size, size), Image.NEAREST))
            assert np.array_equal(out.permute(1, 2, 0).numpy(), ref), (size, h, w)


def test_registry_and_checkpoint_schemas_are_the_same_object():
    ws = reslab.hub.find_weights("resnet50.tv2_in1k")
    assert isinstance(ws.preprocess, InputConfig) and (ws.preprocess.resize, ws.preprocess.input_size) == (232, 224)
    d = json.loads(json.dumps(ws.preprocess.to_dict()))
    assert InputConfig.from_dict(d) == ws.preprocess


@pytest.mark.parametrize("size,resize", [(224, 354), (128, 186), (192, 225), (224, 235), (160, 168), (7, 9)])
def test_pretrained_cfg_round_trips_to_the_same_resize_in_reslab_and_timm(size, resize):
    cfg = InputConfig(size, resize, "bicubic")
    pcfg = cfg.to_pretrained_cfg()
    assert InputConfig.from_dict(pcfg) == cfg
    import math
    assert math.floor(size / pcfg["crop_pct"]) == resize  # timm's own rule gives the resize back exactly


def test_a_new_crop_keeps_the_crop_pct_in_whole_pixels():
    cfg = InputConfig(224, 256)
    assert cfg.with_crop(224) is cfg and (cfg.with_crop(128).input_size, cfg.with_crop(128).resize) == (128, 146)
    assert InputConfig(224, 235).with_crop(128).resize == 134  # floor(128 / 0.95), as timm


def test_in_memory_images_are_checked_in_one_line():
    t = reslab.transforms_for(InputConfig(8, 8))
    gray = np.zeros((10, 12), np.uint8)
    assert t.uint8(gray).shape == (3, 8, 8)
    for bad, why in ((np.zeros((10, 12, 4), np.uint8), "H x W x 3"), (np.zeros((10, 12, 3), np.float32), "uint8"),
                     (torch.zeros(3, 10, 12, dtype=torch.uint8), "not tensors")):
        with pytest.raises(ReslabError, match=why):
            t(bad)


def test_a_model_from_a_reslab_run_carries_the_runs_evaluation(tmp_path):
    from reslab.training import build_config, train
    r = train(build_config("default", {"model_args.depth": 8, "schedule.steps": 4, "run.progress": False,
                                       "run.tensorboard": False, "run.out": str(tmp_path), "run.name": "r"}))
    model = reslab.create_model("resnet20", depth=8, weights=str(r.dir))  # a run folder: its best checkpoint
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 16, 16) and cfg["mean"] == (0.3, 0.3, 0.3) and cfg["classes"][:2] == ["0", "1"]
    assert cfg["source"].endswith("model.safetensors")
    assert reslab.input_config(r.dir) == reslab.input_config(model)
