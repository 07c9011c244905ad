"""The shared Imagenette validation archive: extracted safely, decoded with Pillow (grayscale -> RGB),
classes in wnid order, read as an evaluation-only data set. Skipped when ../shared is absent."""
import torch

from reslab.data.cache import cached_split
from reslab.data.preprocessing import InputConfig
from reslab.data.sources import evaluation_split

from ..conftest import DATA, need

WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916", "n03417042", "n03425413",
         "n03445777", "n03888257"]


def test_imagenette_val_archive(tmp_path):
    archive = need(DATA / "imagenette-224-val.tar")
    cat, split = evaluation_split(str(archive), "auto", InputConfig(64, 73), cache_dir=str(tmp_path))
    assert cat.classes == WNIDS and list(cat.splits) == ["val"] and split.name == "val" and len(split) == 3925
    images = cached_split(split, InputConfig(64, 73), tmp_path).images
    assert images.shape == (3925, 3, 64, 64) and images.dtype == torch.uint8
    assert torch.bincount(torch.tensor(split.labels)).min() > 300
