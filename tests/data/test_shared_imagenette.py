"""The shared Imagenette validation archive: extracted safely, decoded with Pillow (grayscale -> RGB),
classes in wnid order. Skipped when ../shared is absent."""
import torch

from reslab.data.sources import load_data

from ..conftest import DATA, need

WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916", "n03417042", "n03425413",
         "n03445777", "n03888257"]


def test_imagenette_val_archive(tmp_path):
    archive = need(DATA / "imagenette-224-val.tar")
    b = load_data(str(archive), cache_size=64, cache_dir=str(tmp_path))
    assert b.classes == WNIDS and b.info["eval_only"]
    assert b.test.images.shape == (3925, 3, 64, 64) and b.test.images.dtype == torch.uint8
    assert torch.bincount(b.test.labels).min() > 300
