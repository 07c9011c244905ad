"""The weights registry: every entry well formed, names resolve, the JSON listing round-trips."""
import json
import re
from urllib.parse import urlparse

import pytest

from reslab import ReslabError
from reslab.cli.main import main
from reslab.hub import WeightSet, class_names, default_weights, find_weights, list_weights
from reslab.models.registry import model_config

SETS = list_weights()


def test_registry_covers_the_three_sources():
    sources = {w.source for w in SETS}
    assert {"torchvision", "timm", "akamaster", "chenyaofo"} <= sources
    assert len([w for w in SETS if w.source == "torchvision"]) == 17


@pytest.mark.parametrize("ws", SETS, ids=[w.name for w in SETS])
def test_every_entry_is_complete_and_well_formed(ws):
    model_config(ws.arch, **ws.model_args)  # the architecture exists and takes the options
    assert ws.url or ws.hf_hub
    if ws.url and not ws.url.startswith("package:"):
        u = urlparse(ws.url)
        assert u.scheme == "https" and u.netloc and u.path.endswith((".pth", ".th", ".pt")), ws.url
    if ws.hf_hub:
        assert re.fullmatch(r"timm/[a-z0-9_]+\.[a-z0-9_]+", ws.hf_hub), ws.hf_hub
    assert ws.sha256 or ws.hf_hub, "a file without any hash to check"
    if ws.sha256:
        assert re.fullmatch(r"[0-9a-f]{8,64}", ws.sha256) and len(ws.sha256) in (8, 64)
        assert not ws.url or ws.url.startswith("package:") or ws.sha256[:8] in ws.url  # the published prefix
    pre = ws.preprocess  # the one typed description of the input (reslab.InputConfig)
    assert pre.resize >= pre.input_size > 0 and pre.interpolation in ("bilinear", "bicubic")
    assert len(pre.mean) == 3 and len(pre.std) == 3 and all(0 < s < 1 for s in pre.std)
    assert ws.top1 is not None and 50 < ws.top1 < 100 and ws.eval_data and ws.license and ws.read_from
    assert ws.num_classes == {"imagenet1k": 1000, "cifar10": 10, "cifar100": 100}[ws.classes]


def test_names_are_unique_and_aliases_unambiguous_per_architecture():
    names = [w.name for w in SETS]
    assert len(names) == len(set(names))
    for arch in {w.arch for w in SETS}:
        aliases = [a for w in list_weights(arch) for a in w.aliases]
        assert len(aliases) == len(set(aliases)), arch


def test_json_listing_round_trips(capsys):
    assert main(["weights", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [WeightSet.from_dict(d) for d in listed] == SETS
    assert any(d["non_commercial"] for d in listed) and not all(d["non_commercial"] for d in listed)


@pytest.mark.parametrize("spec,arch,expected", [
    ("tv2", "resnet50", "resnet50.tv2_in1k"), ("torchvision:IMAGENET1K_V2", "resnet50", "resnet50.tv2_in1k"),
    ("ResNet50_Weights.IMAGENET1K_V1", "resnet50", "resnet50.tv_in1k"), ("IMAGENET1K_V2", "resnet101", "resnet101.tv2_in1k"),
    ("resnet50.a1_in1k", None, "resnet50.a1_in1k"), ("hf-hub:timm/resnet50.a1_in1k", None, "resnet50.a1_in1k"),
    ("akamaster", "resnet56", "resnet56.akamaster"), ("chenyaofo", "resnet20", "resnet20.chenyaofo"),
    ("resnet20.chenyaofo_cifar100", None, "resnet20.chenyaofo_cifar100"),
    ("DEFAULT", "resnet50", "resnet50.tv2_in1k"), ("torchvision:DEFAULT", "resnet18", "resnet18.tv_in1k"),
    ("ResNet50_Weights.DEFAULT", "resnet50", "resnet50.tv2_in1k"), ("DEFAULT", "resnext101_64x4d", "resnext101_64x4d.tv_in1k")])
def test_names_resolve(spec, arch, expected):
    assert find_weights(spec, arch).name == expected


def test_ambiguous_unknown_and_path_like_names():
    with pytest.raises(ReslabError, match="several architectures .* pass --model"):
        find_weights("tv2")
    with pytest.raises(ReslabError, match="DEFAULT depends on the architecture"):
        find_weights("DEFAULT")
    with pytest.raises(ReslabError, match="torchvision publishes no weights for resnet20"):
        find_weights("DEFAULT", "resnet20")
    with pytest.raises(ReslabError, match="unknown weights 'tv3' for resnet50 .*closest: tv2"):
        find_weights("tv3", "resnet50")
    with pytest.raises(ReslabError, match="unknown weights 'resnet50.a9_in1k'"):
        find_weights("resnet50.a9_in1k")
    assert find_weights("runs/my-run/checkpoints/last") is None and find_weights("model.pth") is None


def test_pretrained_true_defaults():
    assert default_weights("resnet50").name == "resnet50.tv2_in1k"
    assert default_weights("resnet18").name == "resnet18.tv_in1k"
    assert default_weights("resnet56").name == "resnet56.akamaster"
    with pytest.raises(ReslabError, match="no pretrained weights are known for 'plain20'"):
        default_weights("plain20")


def test_class_lists():
    names = class_names("imagenet1k")
    assert len(names) == len(set(names)) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"] and names[-1] == "toilet tissue"
    assert (names[134], names[517], names[638], names[639]) == ("crane bird", "crane", "maillot", "maillot tank suit")
    assert class_names("cifar100")[:3] == ["apple", "aquarium_fish", "baby"] and len(class_names("cifar100")) == 100


@pytest.mark.parametrize("spec,arch,expected", [
    ("resnet50d.ra2_in1k", None, "resnet50d.ra2_in1k"), ("a1_in1k", "resnet50d", "resnet50d.a1_in1k"),
    ("hf-hub:timm/resnet18d.ra2_in1k", None, "resnet18d.ra2_in1k"), ("gluon_in1k", "resnet50c", "resnet50c.gluon_in1k"),
    ("resnet26.bt_in1k", None, "resnet26.bt_in1k"), ("resnetblur50.bt_in1k", None, "resnetblur50.bt_in1k")])
def test_bag_of_tricks_sets_resolve(spec, arch, expected):
    assert find_weights(spec, arch).name == expected


def test_bag_of_tricks_sets_are_timms_files_for_the_matching_presets():
    from reslab.models.registry import BAG_OF_TRICKS, PRESETS
    sets = [w for w in SETS if w.arch in {name for name, *_ in BAG_OF_TRICKS}]
    assert {w.arch for w in sets} >= {"resnet18d", "resnet26d", "resnet34d", "resnet50d", "resnet101d", "resnet152d",
                                      "resnet200d", "resnet50c", "resnet26"}
    for w in sets:
        cfg = model_config(w.arch)
        assert w.arch in PRESETS and w.source == "timm" and w.hf_hub == f"timm/{w.name}"
        assert w.url.startswith("https://github.com/") and w.sha256 in w.url  # the prefix from the file name
        assert cfg.stem_type == ("deep" if w.arch[-1] in "cd" else "") and cfg.avg_down == w.arch.endswith("d")
    assert default_weights("resnet50d").name == "resnet50d.ra2_in1k"  # timm's default tag
    assert default_weights("resnet101c").name == "resnet101c.gluon_in1k"


def test_torchvision_enum_names_say_their_architecture():
    assert find_weights("ResNet50_Weights.DEFAULT").name == "resnet50.tv2_in1k"  # no --model needed
    assert find_weights("Wide_ResNet50_2_Weights.IMAGENET1K_V1").name == "wide_resnet50_2.tv_in1k"
    with pytest.raises(ReslabError, match="torchvision's for resnet50, not resnet18"):
        find_weights("ResNet50_Weights.IMAGENET1K_V2", "resnet18")
