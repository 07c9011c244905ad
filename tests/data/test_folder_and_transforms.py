"""Image folders (corrupt files, grayscale, cache invalidation) and the batched augmentations."""
import time

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import ReslabError
from reslab.data import transforms as T
from reslab.data.cache import cached_split
from reslab.data.decode import decode_image
from reslab.data.folder import scan_image_folder
from reslab.data.loader import DeviceLoader
from reslab.data.preprocessing import InputConfig
from reslab.data.sources import load_data
from reslab.data.types import FileSplit, Split


def make_tree(root, classes=("a", "b"), per=6, size=12, mode="RGB"):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                arr = rng.integers(0, 256, (size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
                Image.fromarray(arr.squeeze(), mode=mode).save(d / f"{i}.png")
    return root


def test_folder_data_grayscale_to_rgb(tmp_path):
    make_tree(tmp_path / "t", mode="L")
    b = load_data(str(tmp_path / "t"), cache_dir=str(tmp_path / "cache"))
    assert b.classes == ["a", "b"] and b.train.images.shape == (12, 3, 12, 12) and len(b.val) == 12 and b.test is None
    assert torch.equal(b.train.images[:, 0], b.train.images[:, 1])


def test_corrupt_image_is_named_or_skipped(tmp_path):
    root = make_tree(tmp_path / "t")
    bad = root / "train" / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ReslabError, match="cannot read image .*broken.jpg"):
        load_data(str(root), cache_dir=str(tmp_path / "cache"))
    b = load_data(str(root), cache_dir=str(tmp_path / "cache2"), skip_bad=True)
    assert len(b.train) == 12  # the 12 good ones


def _files(folder):
    idx = scan_image_folder(folder)
    return FileSplit(list(idx.paths), idx.labels, "train", folder)


def test_cache_is_rebuilt_when_the_source_changes(tmp_path):
    root = make_tree(tmp_path / "t")
    cfg = InputConfig(12, 12)
    x1 = cached_split(_files(root / "train"), cfg, tmp_path / "cache").images.clone()
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 1
    x1b = cached_split(_files(root / "train"), cfg, tmp_path / "cache").images
    assert torch.equal(x1, x1b) and len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 1
    time.sleep(0.01)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "train" / "a" / "0.png")
    x2 = cached_split(_files(root / "train"), cfg, tmp_path / "cache").images
    assert not torch.equal(x1, x2) and torch.all(x2[0] == 0)


def test_not_an_image_folder(tmp_path):
    with pytest.raises(ReslabError, match="no such file or folder"):
        load_data(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReslabError, match="no class sub-folders"):
        load_data(str(tmp_path / "empty"))


def test_decode_image_errors(tmp_path):
    p = tmp_path / "x.png"
    p.write_text("hello")
    with pytest.raises(ReslabError, match="cannot read image"):
        decode_image(p)


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = T.random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        ok = any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1))
                 for dy in range(5) for dx in range(5) for w in [padded[i, :, dy:dy + 8, dx:dx + 8]])
        assert ok
    same = T.random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(out, same)


def test_ten_crop_and_center_crop():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    crops = T.ten_crop(x, 4)
    assert crops.shape == (10, 2, 3, 4, 4)
    assert torch.equal(crops[4], x[..., 1:5, 1:5]) and torch.equal(crops[9], crops[4].flip(-1))


@pytest.mark.parametrize("fn", ["rrc", "scale"])
def test_resized_crops_shapes_and_determinism(fn):
    x = torch.rand(4, 3, 40, 48)
    f = (lambda g: T.random_resized_crop(x, g, 24)) if fn == "rrc" else (lambda g: T.scale_augment(x, g, 24, (28, 52)))
    a, b = f(torch.Generator().manual_seed(3)), f(torch.Generator().manual_seed(3))
    assert a.shape == (4, 3, 24, 24) and torch.equal(a, b)


def test_loader_shards_are_disjoint_and_deterministic():
    split = Split(torch.zeros(103, 3, 4, 4, dtype=torch.uint8), torch.arange(103))
    ident = lambda x, g: x.float()  # noqa: E731
    seen = []
    for rank in range(2):
        ld = DeviceLoader(split, 10, torch.device("cpu"), ident, seed=1, rank=rank, world=2)
        labels = torch.cat([y for _, y in ld.epoch(0)])
        seen.append(set(labels.tolist()))
        again = torch.cat([y for _, y in ld.epoch(0)])
        assert torch.equal(labels, again)
        tail = torch.cat([y for _, y in ld.epoch(0, start=3)])
        assert torch.equal(tail, labels[3 * 5:])
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 50
    one = DeviceLoader(split, 10, torch.device("cpu"), ident, seed=1)
    assert not torch.equal(torch.cat([y for _, y in one.epoch(0)]), torch.cat([y for _, y in one.epoch(1)]))
