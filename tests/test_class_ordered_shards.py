"""tools/class_ordered_shards.py: the same CIFAR images as class folders and as uneven shards written class by
class (the data of docs/RESULTS.md's shards-vs-folders comparison)."""
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import DATA, need  # noqa: E402
from tools import class_ordered_shards as tool  # noqa: E402


def test_shards_hold_the_folders_images_class_by_class_in_uneven_shards(tmp_path):
    archive = need(DATA / "cifar10-jpeg.tar.gz")
    assert tool.main([str(tmp_path), "--cifar", str(archive), "--per-class", "4", "--test-per-class", "2"]) == 0
    classes = (tmp_path / "shards" / "classes.txt").read_text().split()
    assert classes == sorted(p.name for p in (tmp_path / "folders" / "train").iterdir()) and len(classes) == 10
    labels, pairs = [], []
    for s in range(3):
        with tarfile.open(tmp_path / "shards" / f"train-{s:06d}.tar") as tar:
            members = tar.getmembers()
            shard = [int(tar.extractfile(m).read()) for m in members if m.name.endswith(".cls")]
            labels.append(shard)
            pairs += zip([classes[i] for i in shard], [tar.extractfile(m).read() for m in members if m.name.endswith(".jpg")])
    assert [len(x) for x in labels] == [18, 16, 6]                      # 45 / 40 / 15 % of 40
    flat = [y for x in labels for y in x]
    assert flat == [i for i in range(10) for _ in range(4)]             # written class by class
    in_folders = sorted((p.parent.name, p.read_bytes()) for p in (tmp_path / "folders" / "train").rglob("*.jpg"))
    assert sorted(pairs) == in_folders                                   # the same images under the same classes
    with tarfile.open(tmp_path / "shards" / "test-000000.tar") as tar:
        assert len(tar.getmembers()) == 2 * 20


def test_a_missing_archive_or_a_used_folder_is_one_line(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "out"), "--cifar", str(tmp_path / "nope.tar.gz")])
    assert "not found: pass --cifar" in capsys.readouterr().err
    (tmp_path / "nope.tar.gz").write_bytes(b"")
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path), "--cifar", str(tmp_path / "nope.tar.gz")])
    assert "is not empty" in capsys.readouterr().err
