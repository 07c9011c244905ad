"""The worst case for a shard reader, from the shared CIFAR-10 JPEG copy: the same images as class folders
and as uneven tar shards written class by class (as real ImageNet shards often are).

    python tools/class_ordered_shards.py OUT [--cifar ../shared/data/cifar10-jpeg.tar.gz] [--per-class 400]

OUT/folders/{train,test}/<class>/*.jpg and OUT/shards/{train-00000{0,1,2}.tar, test-000000.tar, classes.txt};
the train shards hold 45 %, 40 % and 15 % of the samples. Train ResNet-20 on each with the same command to
compare (docs/RESULTS.md, "The ImageNet path, end to end").
"""
from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reslab from this checkout when not installed
from reslab.data.shards import write_shard  # noqa: E402

DEFAULT_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def read_cifar(archive: Path, per_class: int, test_per_class: int) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    """{split: {class: [(file name, JPEG bytes)]}}, the first `per_class` of each class in archive order."""
    limit = {"train": per_class, "test": test_per_class}
    out: dict[str, dict[str, list[tuple[str, bytes]]]] = {"train": {}, "test": {}}
    with tarfile.open(archive) as src:
        for m in src:
            parts = Path(m.name.lstrip("./")).parts
            if not m.isfile() or len(parts) != 3 or parts[0] not in limit:
                continue
            items = out[parts[0]].setdefault(parts[1], [])
            if len(items) < limit[parts[0]]:
                items.append((parts[2], src.extractfile(m).read()))
    return out


def build(out: Path, archive: Path, per_class: int = 400, test_per_class: int = 100) -> None:
    data = read_cifar(archive, per_class, test_per_class)
    classes = sorted(data["train"])
    for split, by_class in data.items():
        for c in classes:
            folder = out / "folders" / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for name, jpeg in by_class[c]:
                (folder / name).write_bytes(jpeg)
    train = [(i, jpeg) for i, c in enumerate(classes) for _, jpeg in data["train"][c]]
    cuts = [0, round(0.45 * len(train)), round(0.85 * len(train)), len(train)]
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for s in range(3):
        write_shard(out / "shards" / f"train-{s:06d}.tar",
                    [(f"{k:05d}", label, jpeg) for k, (label, jpeg) in enumerate(train[cuts[s]:cuts[s + 1]], cuts[s])])
    test = [(i, jpeg) for i, c in enumerate(classes) for _, jpeg in data["test"][c]]
    write_shard(out / "shards" / "test-000000.tar", [(f"t{k:05d}", label, jpeg) for k, (label, jpeg) in enumerate(test)])
    (out / "shards" / "classes.txt").write_text("\n".join(classes) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR, help="the shared CIFAR-10 JPEG archive")
    p.add_argument("--per-class", type=int, default=400, help="training images per class")
    p.add_argument("--test-per-class", type=int, default=100)
    args = p.parse_args(argv)
    if not args.cifar.is_file():
        p.error(f"{args.cifar} not found: pass --cifar PATH to the CIFAR-10 JPEG archive")
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"{args.out} is not empty: name a new folder (older images there would make folders and shards differ)")
    build(args.out, args.cifar, args.per_class, args.test_per_class)
    print(f"wrote {args.out}/folders and {args.out}/shards")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
