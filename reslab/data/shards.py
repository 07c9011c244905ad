"""WebDataset-style tar shards: one uncompressed tar per shard, `KEY.jpg` (or .jpeg/.png/.webp) +
`KEY.cls` (the class index as text) per sample, read in place (nothing extracted).

Layout: a folder with `train-*.tar` (and optionally `val-*.tar` or `test-*.tar`, and `classes.txt`, one
name per line), or training shards given as `a.tar,b.tar,...`.

Each shard is indexed once (member names, byte offsets and sizes; the small .cls members are read),
so a sample is read by seeking to its bytes: shards become a list of images like a folder, and every
input path (square, whole image, streaming, evaluation) reads them.

Order: webdataset's two-level shuffle, as a pure function of (seed, epoch): the shards, cut into
chunks of CHUNK consecutive samples, are shuffled, read chunk after chunk, and the samples pass
through a shuffle buffer of BUFFER. Shards written class by class (as ImageNet's often are) still
give class-mixed batches, and reads stay local (a window of BUFFER samples from BUFFER / CHUNK chunks).
Every sample is dealt exactly once per epoch; ranks take strides of that order, equal in length (as
torch's DistributedSampler with drop_last=True), and the samples that do not fill a last batch (fewer
than world x batch) are left out of that epoch only: which ones changes with the epoch.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

import torch

from ..errors import ReslabError
from ..utils.io import atomic_write
from ..utils.seeding import epoch_seed
from .types import FileSplit, TarMember

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CHUNK = 64        # consecutive samples read together (one seek, then sequential reads)
BUFFER = 4096     # webdataset's sample shuffle buffer


def _shards_in(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.tar"))


def _is_shard(path: Path) -> bool:
    try:
        with tarfile.open(path, "r|*") as tar:
            for n, m in enumerate(tar):
                if m.name.endswith(".cls"):
                    return True
                if n > 8:
                    return False
    except (tarfile.TarError, OSError, EOFError):
        return False
    return False


def is_shard_set(parts: list[Path]) -> bool:
    if len(parts) == 1 and parts[0].is_dir():
        shards = _shards_in(parts[0], "train") or _shards_in(parts[0], "val") or _shards_in(parts[0], "test")
        return bool(shards) and _is_shard(shards[0])
    return all(p.is_file() and p.suffix == ".tar" for p in parts) and _is_shard(parts[0])


def index_shard(path: Path, cache_dir: Path | None = None) -> tuple[list[TarMember], list[int]]:
    """The samples of one shard in file order: (image members, labels), from CACHE/shards when this very file
    (path, size, time) was indexed before; else read (the .cls members' bytes only) and remembered."""
    memo = _index_file(path, cache_dir)
    if memo is not None and memo.is_file():
        try:
            rows = json.loads(memo.read_text())
            return [TarMember(path, n, o, z) for n, o, z, _ in rows], [lab for *_, lab in rows]
        except (OSError, ValueError, TypeError):
            pass  # unreadable memo: index again
    refs, labels = _read_index(path)
    if memo is not None:
        try:
            atomic_write(memo, lambda t: t.write_text(json.dumps([[r.name, r.offset, r.size, lab]
                                                                   for r, lab in zip(refs, labels)])))
        except (OSError, ReslabError):
            pass  # a read-only cache only costs the next process an index pass
    return refs, labels


def _index_file(path: Path, cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    st = path.stat()
    key = hashlib.sha256(f"shard-v1|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return Path(cache_dir) / "shards" / f"{key}.json"


def _read_index(path: Path) -> tuple[list[TarMember], list[int]]:
    images: dict[str, TarMember] = {}
    labels: dict[str, int] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r:") as tar:  # uncompressed: members are read later by their offsets
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.rpartition(".")
                if key not in images and key not in labels:
                    order.append(key)
                if "." + ext.lower() in IMAGE_SUFFIXES:
                    images[key] = TarMember(path, m.name, m.offset_data, m.size)
                elif ext == "cls":
                    labels[key] = int(tar.extractfile(m).read().decode().strip())
    except tarfile.ReadError as e:
        raise ReslabError(f"{path} is not an uncompressed tar shard ({_first_line(e)}): reslab reads shard members "
                          f"in place by their offsets; decompress it (e.g. gunzip) first") from None
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeDecodeError) as e:
        raise ReslabError(f"{path} is not a readable shard ({_first_line(e)})") from None
    keys = [k for k in order if k in images and k in labels]
    return [images[k] for k in keys], [labels[k] for k in keys]


def shard_split(paths: list[Path], name: str, cache_dir: Path | None = None) -> FileSplit:
    """Every sample of `paths` (shard after shard, in file order) as one split."""
    refs: list[TarMember] = []
    labels: list[int] = []
    for p in paths:
        r, lab = index_shard(p, cache_dir)
        refs += r
        labels += lab
    if not refs:
        raise ReslabError(f"the shards {paths[0].name}... hold no samples (KEY.jpg + KEY.cls pairs)")
    return FileSplit(refs, labels, name, paths[0].parent, shards=True)


def load_shard_splits(parts: list[Path], cache_dir: Path | None = None) -> tuple[str, list[str], dict[str, FileSplit]]:
    """(name, classes, {"train"|"val"|"test": split}) of a shard folder or a list of training shards."""
    folder = parts[0] if parts[0].is_dir() else parts[0].parent
    splits: dict[str, FileSplit] = {}
    if parts[0].is_dir():
        for prefix in ("train", "val", "test"):
            found = _shards_in(folder, prefix)
            if found:
                splits[prefix] = shard_split(found, prefix, cache_dir)
    else:
        splits["train"] = shard_split(parts, "train", cache_dir)
    n_classes = max(max(s.labels) for s in splits.values()) + 1
    names_file = folder / "classes.txt"
    if names_file.is_file():
        classes = [c for c in names_file.read_text().splitlines() if c.strip()]
        if len(classes) < n_classes:
            raise ReslabError(f"{names_file} names {len(classes)} classes but the shards use label {n_classes - 1}")
    else:
        classes = [f"class {i}" for i in range(n_classes)]
    if any(min(s.labels) < 0 for s in splits.values()):
        raise ReslabError(f"the shards in {folder} hold a negative class index")
    return folder.name, classes, splits


def chunks(split: FileSplit, size: int = CHUNK) -> list[range]:
    """Runs of at most `size` consecutive samples of one shard each."""
    out, start = [], 0
    for i in range(1, len(split) + 1):
        if i == len(split) or i - start == size or split.refs[i].tar != split.refs[start].tar:
            out.append(range(start, i))
            start = i
    return out


def shuffled_order(split: FileSplit, seed: int, epoch: int, chunk: int = CHUNK, buffer: int = BUFFER) -> list[int]:
    """Every sample index once: chunk order shuffled, then a shuffle buffer (webdataset's `shuffle`)."""
    rng = random.Random(epoch_seed(seed, epoch))
    runs = chunks(split, chunk)
    rng.shuffle(runs)
    out: list[int] = []
    buf: list[int] = []
    for run in runs:
        for i in run:
            buf.append(i)
            if len(buf) >= buffer:
                k = rng.randrange(len(buf))
                buf[k], buf[-1] = buf[-1], buf[k]
                out.append(buf.pop())
    rng.shuffle(buf)
    return out + buf


def shard_epoch_order(split: FileSplit, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """This rank's samples of `epoch`: its stride of the shuffled order, all ranks equally long."""
    order = torch.tensor(shuffled_order(split, seed, epoch), dtype=torch.int64)
    return order[rank::world][: len(order) // world]


def write_shard(path: str | Path, samples) -> None:
    """Write one shard in the layout reslab reads: for each (key, class index, JPEG bytes) of `samples`, members
    KEY.jpg and KEY.cls (the index as text), in the order given, uncompressed (written whole, then renamed)."""

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w") as tar:
            for key, label, image in samples:
                for name, payload in ((f"{key}.jpg", image), (f"{key}.cls", str(int(label)).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    atomic_write(Path(path), write)


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
