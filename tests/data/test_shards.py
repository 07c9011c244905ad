"""WebDataset-style tar shards: every sample once per epoch, webdataset's two-level shuffle (class-ordered
shards still give class-mixed batches), the same batches whatever the number of DataLoader workers,
DDP ranks disjoint, every augment value, exact resume."""
import io
import json
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
from reslab.data.shards import load_shard_splits, shard_epoch_order, shuffled_order
from reslab.data.sources import load_data
from reslab.data.whole import WholeImageLoader

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _png(value: int, size=(10, 8)) -> bytes:
    """A solid image whose colour spells `value` (it survives any resampling exactly)."""
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0], arr[..., 1] = value % 256, value // 256
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _shard(path, items):
    """items: (key, label, image bytes, suffix)."""
    with tarfile.open(path, "w") as tar:
        for key, label, data, suffix in items:
            for name, payload in ((f"{key}.{suffix}", data), (f"{key}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def class_ordered_shards(root, sizes=(1000, 1000, 1000, 167), classes=10, val=0):
    """len(sizes) shards holding sum(sizes) samples written class by class (as ImageNet's often are);
    sample i has label i * classes // total and its image spells i."""
    root.mkdir(parents=True, exist_ok=True)
    total, i = sum(sizes), 0
    for s, n in enumerate(sizes):
        _shard(root / f"train-{s:06d}.tar", [(f"s{i + k:05d}", (i + k) * classes // total, _png(i + k), "png")
                                             for k in range(n)])
        i += n
    if val:
        _shard(root / "val-000000.tar", [(f"v{k}", k % classes, _png(k), "png") for k in range(val)])
    return root


def _identity(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0].long() + 256 * x[:, 1, 0, 0].long()).tolist()


def test_every_sample_once_per_epoch_whatever_the_workers_and_ranks(tmp_path):
    root = class_ordered_shards(tmp_path / "s", sizes=(200, 200, 200, 33))
    _, _, splits = load_shard_splits([root])
    split = splits["train"]
    assert len(split) == 633
    for world in (1, 2):
        orders = [shard_epoch_order(split, 5, 3, r, world) for r in range(world)]
        seen = torch.cat(orders)
        assert len(set(seen.tolist())) == len(seen) == 633 // world * world  # disjoint, equal, n % world left out
    # augment none at crop 7: the shorter side (8) is floor(7 / 0.875) already, so pixels pass unchanged
    bundle = load_data(str(root), input="whole", augment="none", crop=7, cache_dir=str(tmp_path / "c"))
    batches = {}
    for workers in (1, 2, 4):
        for world in (1, 2):
            got = []
            for rank in range(world):
                ld = WholeImageLoader(bundle.train, 16, torch.device("cpu"), lambda x, g: x, seed=5, workers=workers,
                                      rank=rank, world=world)
                got.append([_identity(x) for x, _ in ld.epoch(3)])
            batches[workers, world] = got
            ids = [i for rank in got for b in rank for i in b]
            assert len(ids) == len(set(ids)) and len(ids) >= 633 - 16 * world  # only the last partial batch left out
            for rank in range(world):  # in the order the epoch's two-level shuffle gave
                yielded = [i for b in got[rank] for i in b]
                order = shard_epoch_order(split, 5, 3, rank, world).tolist()
                assert yielded == [int(split.refs[j].name[1:6]) for j in order][:len(yielded)]
    assert batches[1, 1] == batches[2, 1] == batches[4, 1]  # workers only decode: they change nothing
    assert batches[1, 2] == batches[4, 2]


def test_class_ordered_shards_give_class_mixed_batches_and_epochs_differ(tmp_path):
    root = class_ordered_shards(tmp_path / "s", sizes=(1500, 1500, 1000))  # 3 uneven shards, 10 classes in order
    _, _, splits = load_shard_splits([root])
    split = splits["train"]
    labels = torch.tensor(split.labels)
    first = None
    for epoch in range(3):
        order = shard_epoch_order(split, 0, epoch)
        assert sorted(order.tolist()) == list(range(len(split)))
        per_batch = [len(set(labels[order[b:b + 64]].tolist())) for b in range(0, len(order) - 63, 64)]
        assert min(per_batch) >= 5, per_batch  # the data set has 10 classes in equal shares
        if first is None:
            first = order
        else:
            assert not torch.equal(order, first)


def test_reads_stay_local_chunks_come_from_anywhere(tmp_path):
    root = class_ordered_shards(tmp_path / "s", sizes=(300, 300, 300))
    split = load_shard_splits([root])[2]["train"]
    order = shuffled_order(split, 1, 0, chunk=50, buffer=100)
    assert sorted(order) == list(range(900))
    first = {j // 50 for j in order[:100]}  # the first 100 out were drawn from the first 200 read: 4 chunks
    assert len(first) <= 4 and first != {0, 1, 2, 3}  # ... but not the first 4 of the file: chunk order is shuffled


@pytest.mark.parametrize("augment", ["auto", "rrc", "scale", "none"])
def test_shards_accept_every_augment_the_whole_image_path_accepts(tmp_path, augment):
    root = class_ordered_shards(tmp_path / "s", sizes=(20, 20), classes=2, val=6)
    bundle = load_data(str(root), input="whole", augment=augment, crop=7, cache_dir=str(tmp_path / "c"))
    ld = WholeImageLoader(bundle.train, 8, torch.device("cpu"), lambda x, g: x, seed=0, workers=2)
    x, y = next(iter(ld.epoch(0)))
    assert x.shape == (8, 3, 7, 7) and x.dtype == torch.uint8
    assert bundle.val is not None and len(bundle.val) == 6 and bundle.classes == ["class 0", "class 1"]


def test_shards_on_the_square_path_and_a_clear_error_for_cifar_crops(tmp_path):
    root = class_ordered_shards(tmp_path / "s", sizes=(20, 20), classes=2, val=6)
    bundle = load_data(str(root), cache_dir=str(tmp_path / "c"))  # decoded once into the square cache
    assert bundle.train.images.shape == (40, 3, 8, 8) and bundle.val.images.shape == (6, 3, 8, 8)
    with pytest.raises(ReslabError, match="data.input=whole crops with augment"):
        load_data(str(root), input="whole", augment="cifar", cache_dir=str(tmp_path / "c"))


def test_compressed_shards_are_refused_in_one_line(tmp_path):
    import gzip
    root = class_ordered_shards(tmp_path / "s", sizes=(4,), classes=2)
    raw = (root / "train-000000.tar").read_bytes()
    (root / "train-000000.tar").write_bytes(gzip.compress(raw))
    with pytest.raises(ReslabError, match="not an uncompressed tar shard|not a readable shard|no such|tar"):
        load_data(str(root), input="whole", cache_dir=str(tmp_path / "c"))


def _train_cmd(tmp, name, data, *extra, steps=12):
    return [sys.executable, "-m", "reslab", "train", "--model", "resnet18", "--model-arg", "widths=[8,8,16,16]",
            "--model-arg", "stem_width=8", "--data", str(data), "--data.input", "whole", "--data.crop", "32",
            "--batch-size", "8", "--steps", str(steps), "--run.eval_every", "6", "--run.ckpt_every", "2",
            "--out", str(tmp), "--name", name, "--run.progress", "false", "--data.cache_dir", str(tmp / "cache"),
            "--data.workers", "2", *extra]


def test_shards_are_read_in_place_and_resume_exactly(tmp_path):
    root = class_ordered_shards(tmp_path / "shards", sizes=(10, 10, 10, 10), classes=2, val=6)
    (root / "classes.txt").write_text("tench\nspringer\n")
    out = subprocess.run(_train_cmd(tmp_path, "sh", root), env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "sh" / "summary.json").read_text())
    assert summary["steps"] == 12 and "val/top1_err" in summary
    assert not list((tmp_path / "cache").glob("extracted/*"))  # nothing extracted
    proc = subprocess.Popen(_train_cmd(tmp_path, "shcut", root), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ck = tmp_path / "shcut" / "checkpoints"
    deadline = time.time() + 240
    while not (ck / "step-00000004").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = subprocess.run([sys.executable, "-m", "reslab", "train", "--resume", str(tmp_path / "shcut")], env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    a = load_file(str(tmp_path / "sh/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "shcut/checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed shard run differs from the uninterrupted one"


def test_shards_decoded_into_memory_keep_their_order(tmp_path):
    """The square path holds shards decoded in memory: its batches follow the same two-level shuffle as a
    streamed run (so `--data.stream` changes only memory, not the order)."""
    from reslab.data.loader import DeviceLoader
    root = class_ordered_shards(tmp_path / "s", sizes=(100, 100, 60), classes=4)
    bundle = load_data(str(root), augment="none", cache_dir=str(tmp_path / "c"))
    split = load_shard_splits([root])[2]["train"]
    ld = DeviceLoader(bundle.train, 20, torch.device("cpu"), lambda x, g: x, seed=2)
    ids = [i for x, _ in ld.epoch(1) for i in _identity(x)]
    assert ids == [int(split.refs[j].name[1:6]) for j in shard_epoch_order(split, 2, 1).tolist()][:len(ids)]


def test_a_full_disk_while_caching_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os as _os
    root = class_ordered_shards(tmp_path / "s", sizes=(20, 20), classes=2)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_os, "posix_fallocate", full)
    with pytest.raises(ReslabError, match="disk full: the decode cache needs"):
        load_data(str(root), cache_dir=str(tmp_path / "c"))
    assert not list((tmp_path / "c" / "images").glob("*.npy"))
