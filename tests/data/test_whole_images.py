"""The whole-image path: crop sampling as defined, draft decoding, streamed == cached, exact resume,
ImageNet's validation layouts and tar shards."""
import io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from reslab import ReslabError
from reslab.data.crops import rrc_window, sample_crop, sample_rng
from reslab.data.whole import crop_resize, decode_crop


def _ks(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


def _reference_rrc(rng: np.random.Generator, h, w, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """RandomResizedCrop's rule, written again from torchvision's documentation, with numpy's RNG."""
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return ch, cw
    if w / h < ratio[0]:
        return int(round(w / ratio[0])), w
    if w / h > ratio[1]:
        return h, int(round(h * ratio[1]))
    return h, w


@pytest.mark.parametrize("h,w", [(375, 500), (1500, 2000), (224, 224), (100, 1000)])
def test_random_resized_crop_follows_torchvisions_rule(h, w):
    ours = [rrc_window(sample_rng(0, 0, i), h, w) for i in range(20000)]
    assert all(0 <= t and 0 <= l and t + ch <= h and l + cw <= w and ch > 0 and cw > 0 for t, l, ch, cw in ours)
    rng = np.random.default_rng(1)
    ref = [_reference_rrc(rng, h, w) for _ in range(20000)]
    area = (np.array([ch * cw for _, _, ch, cw in ours]), np.array([ch * cw for ch, cw in ref]))
    aspect = (np.log([cw / ch for _, _, ch, cw in ours]), np.log([cw / ch for ch, cw in ref]))
    assert _ks(*area) < 0.02 and _ks(*aspect) < 0.02  # alpha ~ 0.001 for n = m = 20,000
    if h == 100:  # a 10:1 panorama mostly falls back to the central 4:3 crop
        assert sum((t, l, ch, cw) == (0, 433, 100, 133) for t, l, ch, cw in ours) > 10000
    lefts = np.array([l / max(1, w - cw) for t, l, ch, cw in ours if cw < w])
    assert abs(lefts.mean() - 0.5) < 0.02  # offsets uniform over the positions that fit


@pytest.mark.parametrize("h,w", [(146, 146), (375, 500), (100, 1000)])
def test_device_random_resized_crop_follows_the_same_rule(h, w):
    """The square path's batched crop (on the device) draws its windows by the same rule."""
    from reslab.data.transforms import rrc_sizes
    ch, cw = rrc_sizes(torch.Generator().manual_seed(0), 20000, h, w)
    assert bool(((ch >= 1) & (ch <= h) & (cw >= 1) & (cw <= w)).all()) and torch.equal(ch, ch.round())
    rng = np.random.default_rng(1)
    ref = [_reference_rrc(rng, h, w) for _ in range(20000)]
    assert _ks((ch * cw).numpy(), np.array([a * b for a, b in ref])) < 0.02
    assert _ks(torch.log(cw / ch).numpy(), np.log([b / a for a, b in ref])) < 0.02
    assert (ch * cw).mean() / (h * w) < 0.5  # the old clamped draw kept near-whole crops twice as often


def test_device_crop_resamples_exactly_the_window():
    from reslab.data.transforms import _affine_crop
    x = torch.rand(64, 3, 20, 30, dtype=torch.float64)
    v = lambda k: torch.full((64,), float(k), dtype=torch.float64)  # noqa: E731
    out = _affine_crop(x, torch.Generator().manual_seed(0), v(4), v(2), v(12), v(12), 12, flip=True)
    window = x[..., 2:14, 4:16]
    flipped = torch.tensor([not torch.allclose(o, w, atol=1e-9) for o, w in zip(out, window)])
    assert torch.allclose(out[~flipped], window[~flipped], atol=1e-9)
    assert torch.allclose(out[flipped], window[flipped].flip(-1), atol=1e-9) and 16 < int(flipped.sum()) < 48


def test_scale_augmentation_draws_s_uniformly_and_stays_inside():
    h, w, size = 375, 500, 224
    crops = [sample_crop("scale", 3, 1, i, h, w, size) for i in range(20000)]
    s = np.array([size * min(h, w) / c.height for c in crops])  # the shorter side S each crop implies
    assert np.allclose(s, np.round(s)) and s.min() == 256 and s.max() == 480
    assert _ks(s, np.random.default_rng(0).integers(256, 481, 20000)) < 0.02
    assert all(c.top >= 0 and c.left >= 0 and c.top + c.height <= h + 1e-6 and c.left + c.width <= w + 1e-6 for c in crops)
    assert 0.48 < np.mean([c.flip for c in crops]) < 0.52
    again = [sample_crop("scale", 3, 1, i, h, w, size) for i in range(100)]
    assert again == crops[:100]  # a function of (seed, epoch, index)
    assert sample_crop("scale", 3, 2, 0, h, w, size) != crops[0]


def _jpeg(path, w, h, seed=0, quality=92, grain=8):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // grain + 1, w // grain + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BICUBIC)  # smooth content, as photos are
    img.save(path, format="JPEG", quality=quality)
    return path


@pytest.mark.parametrize("interpolation,flip", [("bilinear", False), ("bicubic", True)])
def test_crop_resize_matches_pillows_box_resize(tmp_path, interpolation, flip):
    """The window resampled by torch's uint8 antialiased interpolation is Pillow's resize of that box."""
    from reslab.data.crops import Crop
    img = Image.open(_jpeg(tmp_path / "a.jpg", 400, 300)).convert("RGB")
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
    for crop, size in ((Crop(37, 52, 150, 180, flip), 224), (Crop(10, 5, 280, 390, flip), 96)):  # up, down
        ours = crop_resize(img, (400, 300), crop, size, interpolation)
        box = (crop.left, crop.top, crop.left + crop.width, crop.top + crop.height)
        pil = np.asarray(img.resize((size, size), filt, box=box))
        pil = torch.from_numpy((pil[:, ::-1] if flip else pil).copy()).permute(2, 0, 1)
        assert ours.shape == (3, size, size) and ours.dtype == torch.uint8
        diff = (ours.int() - pil.int()).abs()
        assert diff.float().mean() < 0.25 and diff.max() <= 16, (diff.float().mean(), diff.max())
    # on a half-size copy of the image (a DCT-scaled decode, a cache entry) the window maps onto the same place
    full = crop_resize(img, (400, 300), Crop(37, 52, 150, 180, False), 64).float()
    half = [crop_resize(np.asarray(img.resize((200, 150))), (400, 300), Crop(37, 52 + d, 150, 180, False), 64).float()
            for d in (0, 4)]
    assert (half[0] - full).abs().mean() < 0.25 * (half[1] - full).abs().mean()


def test_draft_decoding_gives_the_full_decodes_pixels_closely(tmp_path):
    """A 1/4-scale DCT decode of a 2000x1500 photo gives the crop of the full decode, up to the window
    being snapped to the smaller image's pixels: well under one output pixel of shift."""
    from reslab.data.crops import Crop
    f = _jpeg(tmp_path / "big.jpg", 2000, 1500, grain=32)
    with Image.open(f) as img:
        full_img = img.convert("RGB")
    for i in range(5, 9):
        c = sample_crop("rrc", 0, 0, i, 1500, 2000, 224)
        fast = decode_crop(f, lambda h, w: c, 224).float()
        full = crop_resize(full_img, (2000, 1500), c, 224).float()
        moved = Crop(c.top, c.left + c.width / 224, c.height, c.width, c.flip)  # one output pixel across
        one_pixel = (crop_resize(full_img, (2000, 1500), moved, 224).float() - full).abs().mean()
        assert fast.shape == (3, 224, 224) and (fast - full).abs().mean() < 0.5 * one_pixel


def test_windows_snap_to_the_nearest_pixels_of_a_scaled_image():
    from reslab.data.crops import Crop
    from reslab.data.whole import window_pixels
    rng = np.random.default_rng(0)
    for _ in range(2000):
        ow, oh = int(rng.integers(50, 3000)), int(rng.integers(50, 3000))
        k = float(rng.choice([1, 1 / 2, 1 / 4, 1 / 8, 0.37]))
        w, h = max(1, math.ceil(ow * k)), max(1, math.ceil(oh * k))
        cw, ch = rng.uniform(1, ow), rng.uniform(1, oh)
        c = Crop(rng.uniform(0, oh - ch), rng.uniform(0, ow - cw), ch, cw, False)
        top, bottom, left, right = window_pixels(c, (ow, oh), (h, w))
        assert 0 <= top < bottom <= h and 0 <= left < right <= w
        sx, sy = w / ow, h / oh
        exact = (c.top * sy, (c.top + c.height) * sy, c.left * sx, (c.left + c.width) * sx)
        if min(exact[1] - exact[0], exact[3] - exact[2]) >= 1:
            assert max(abs(a - b) for a, b in zip((top, bottom, left, right), exact)) <= 0.5 + 1e-9


def _tree(root, n_per_class=12, size=(48, 40), flat_val=False):
    for j, c in enumerate(("n01440764", "n02102040")):
        (root / "train" / c).mkdir(parents=True)
        for i in range(n_per_class):
            _jpeg(root / "train" / c / f"{c}_{i}.JPEG", *size, seed=100 * j + i)
    val = root / "val"
    val.mkdir()
    rows = ["ImageId,PredictionString"]
    for i in range(6):
        c = ("n01440764", "n02102040")[i % 2]
        name = f"ILSVRC2012_val_{i + 1:08d}"
        target = val / f"{name}.JPEG" if flat_val else (val / c / f"{name}.JPEG")
        target.parent.mkdir(parents=True, exist_ok=True)
        _jpeg(target, *size, seed=100 + i)
        rows.append(f"{name},{c} 1 2 30 40")
    if flat_val:
        (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return root


def _train_cmd(tmp, name, data, *extra, steps=12):
    return [sys.executable, "-m", "reslab", "train", "--model", "resnet18", "--model-arg", "widths=[8,8,16,16]",
            "--model-arg", "stem_width=8", "--data", str(data), "--data.input", "whole", "--data.crop", "32",
            "--data.cache_size", "36", "--batch-size", "8", "--steps", str(steps), "--run.eval_every", "6",
            "--run.ckpt_every", "2", "--out", str(tmp), "--name", name, "--run.progress", "false",
            "--data.cache_dir", str(tmp / "cache"), "--data.workers", "2", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_streamed_and_cached_runs_are_identical_and_resume_is_exact(tmp_path):
    data = _tree(tmp_path / "d", flat_val=True)  # also: a flat val folder with Kaggle's ground truth
    for name, extra in (("stream", ()), ("cached", ("--data.cache_shorter", "64"))):
        out = subprocess.run(_train_cmd(tmp_path, name, data, *extra), env=ENV, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    a = load_file(str(tmp_path / "stream/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "cached/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # images <= the cache's side: the same pixels either way
    summary = json.loads((tmp_path / "stream" / "summary.json").read_text())
    assert "val/top1_err" in summary  # evaluated on the flat val folder, labels from the CSV
    proc = subprocess.Popen(_train_cmd(tmp_path, "cut", data), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ck = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 240
    while not (ck / "step-00000004").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert int(os.readlink(ck / "last").split("-")[1]) < 12
    out = subprocess.run([sys.executable, "-m", "reslab", "train", "--resume", str(tmp_path / "cut")], env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    c = load_file(str(tmp_path / "cut/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a), "resumed streamed run differs from the uninterrupted one"


def test_kaggle_ground_truth(tmp_path):
    from reslab.data.layouts import flat_val_labels
    val = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    for i in range(3):
        _jpeg(val / f"ILSVRC2012_val_{i + 1:08d}.JPEG", 16, 16, seed=i)
    (tmp_path / "LOC_val_solution.csv").write_text(  # a few levels up, rows in any order, several boxes per image
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000002,n01440764 1 2 3 4 n02102040 5 6 7 8 \n"
        "ILSVRC2012_val_00000003,n02102040 1 2 3 4\n"
        "ILSVRC2012_val_00000001,n02102040 1 2 3 4\n")
    files, labels = flat_val_labels(val, ["n01440764", "n02102040"])
    assert [f.name[-6:-5] for f in files] == ["1", "2", "3"] and labels == [1, 0, 1]
    with pytest.raises(ReslabError, match="not one of the 1 training classes"):
        flat_val_labels(val, ["n01440764"])
    _jpeg(val / "ILSVRC2012_val_00000009.JPEG", 16, 16)
    with pytest.raises(ReslabError, match="ILSVRC2012_val_00000009.JPEG has no entry"):
        flat_val_labels(val, ["n01440764", "n02102040"])


def test_devkit_ground_truth(tmp_path):
    from reslab.data.layouts import flat_val_labels
    val = tmp_path / "val"
    val.mkdir()
    for i in range(4):
        _jpeg(val / f"ILSVRC2012_val_{i + 1:08d}.JPEG", 16, 16, seed=i)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("2\n1\n1\n2\n")
    (tmp_path / "ILSVRC2012_synsets.txt").write_text("1 n02102040\n2 n01440764\n")  # devkit IDs are not sorted
    files, labels = flat_val_labels(val, ["n01440764", "n02102040"])
    assert [f.name for f in files][:1] == ["ILSVRC2012_val_00000001.JPEG"] and labels == [0, 1, 1, 0]
    (tmp_path / "ILSVRC2012_synsets.txt").unlink()
    scipy_io = pytest.importorskip("scipy.io", reason="scipy is needed to read the devkit's meta.mat")
    synsets = np.array([(1, "n02102040", 0), (2, "n01440764", 0), (3, "n00000001", 2)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    scipy_io.savemat(str(tmp_path / "meta.mat"), {"synsets": synsets})
    assert flat_val_labels(val, ["n01440764", "n02102040"])[1] == [0, 1, 1, 0]
    with pytest.raises(ReslabError, match="has 4 labels but .* holds 5 images"):
        _jpeg(val / "ILSVRC2012_val_00000005.JPEG", 16, 16)
        flat_val_labels(val, ["n01440764", "n02102040"])


def _shard(path, items):
    with tarfile.open(path, "w") as tar:
        for key, label, jpeg in items:
            for name, data in ((f"{key}.jpg", jpeg), (f"{key}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _jpeg_bytes(w, h, seed):
    buf = io.BytesIO()
    _jpeg(buf, w, h, seed)
    return buf.getvalue()
