"""Golden parameter and multiply-add counts: every preset, exact; the papers' figures as published."""
import pytest

from reslab.models.complexity import REFERENCES, complexity, report_rows
from reslab.models.registry import PRESETS

# Exact counts (10 classes CIFAR, 1000 classes ImageNet). The CIFAR ones are the 2015 paper's
# Table 6 nets; the ImageNet ones equal torchvision's model cards.
GOLDEN_PARAMS = {
    "resnet18": 11_689_512, "plain18": 11_515_688, "preact_resnet18": 11_687_720,
    "resnet34": 21_797_672, "plain34": 21_623_848, "preact_resnet34": 21_795_880,
    "resnet50": 25_557_032, "plain50": 22_780_456, "preact_resnet50": 25_549_352,
    "resnet101": 44_549_160, "plain101": 41_772_584, "preact_resnet101": 44_541_480,
    "resnet152": 60_192_808, "plain152": 57_416_232, "preact_resnet152": 60_185_128,
    "resnet200": 64_673_832, "plain200": 61_897_256, "preact_resnet200": 64_666_152,
    "resnet20": 269_722, "plain20": 269_722, "resnet32": 464_154, "plain32": 464_154,
    "resnet44": 658_586, "plain44": 658_586, "resnet56": 853_018, "plain56": 853_018,
    "resnet110": 1_727_962, "plain110": 1_727_962, "resnet1202": 19_421_274, "plain1202": 19_421_274,
    "preact_resnet110": 1_727_962, "preact_resnet164": 1_703_258, "preact_resnet1001": 10_327_706,
    "wrn16_8": 10_961_370, "wrn28_10": 36_479_194, "wrn40_4": 8_949_210,
    "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272,
    **{  # Bag of Tricks ResNet-C/D and anti-aliased nets: read from timm 1.0.31 (timm.create_model(name))
        "resnet26": 15_995_176, "resnet50c": 25_576_264, "resnet101c": 44_568_392, "resnet152c": 60_212_040,
        "resnet18d": 11_708_744, "resnet26d": 16_014_408, "resnet34d": 21_816_904, "resnet50d": 25_576_264,
        "resnet101d": 44_568_392, "resnet152d": 60_212_040, "resnet200d": 64_693_064,
        "resnetblur18": 11_689_512, "resnetblur50": 25_557_032, "resnetblur50d": 25_576_264,
        "resnetaa50": 25_557_032, "resnetaa50d": 25_576_264},
}
# Multiply-adds at 224x224 of the same nets, counted on timm 1.0.31's models by tests/models/timm_ref.hook_macs
# (forward hooks on every conv, linear and blur-pool: independent of reslab's counter). The blur-pools'
# fixed depthwise 3x3 filters count as convolutions; average and max pools count nothing.
TIMM_MACS = {
    "resnet26": 2_342_256_640, "resnet50c": 4_328_824_832, "resnet101c": 8_041_046_016, "resnet152c": 11_753_267_200,
    "resnet18d": 2_053_713_920, "resnet26d": 2_581_897_216, "resnet34d": 3_903_401_984, "resnet50d": 4_328_824_832,
    "resnet101d": 8_041_046_016, "resnet152d": 11_753_267_200, "resnet200d": 15_247_122_432,
    "resnetblur18": 2_337_684_992, "resnetblur50": 5_133_020_672, "resnetblur50d": 5_372_661_248,
    "resnetaa50": 5_129_633_792, "resnetaa50d": 5_369_274_368,
}

CIFAR_MACS_M = {"resnet20": 40.55, "resnet32": 68.86, "resnet44": 97.17, "resnet56": 125.49, "resnet110": 252.89}
IMAGENET_PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50@1x1": 3.8, "resnet101@1x1": 7.6,
                        "resnet152@1x1": 11.3, "resnet50": 4.1}


@pytest.fixture(scope="module")
def rows():
    return {r["name"]: r for r in report_rows()}


def test_every_preset_has_a_golden_count():
    assert sorted(GOLDEN_PARAMS) == sorted(PRESETS)


def test_params_exact(rows):
    assert {n: rows[n]["params"] for n in GOLDEN_PARAMS} == GOLDEN_PARAMS


@pytest.mark.parametrize("name,mmacs", sorted(CIFAR_MACS_M.items()))
def test_cifar_macs_exact_to_two_decimals(rows, name, mmacs):
    assert round(rows[name]["macs"] / 1e6, 2) == mmacs


def test_resnet1202_macs(rows):
    assert round(rows["resnet1202"]["macs"] / 1e9, 2) == 2.83


@pytest.mark.parametrize("name,gmacs", sorted(IMAGENET_PAPER_GMACS.items()))
def test_imagenet_macs_agree_with_paper(rows, name, gmacs):
    # The 2015 paper rounds inconsistently (3.66 -> 3.6, 7.57 -> 7.6): agree to its last digit +-0.07.
    assert abs(rows[name]["macs"] / 1e9 - gmacs) < 0.07


def test_stride_placement_changes_macs_not_params(rows):
    assert rows["resnet50"]["params"] == rows["resnet50@1x1"]["params"]
    assert round(rows["resnet50"]["macs"] / 1e9, 2) == 4.09
    assert round(rows["resnet50@1x1"]["macs"] / 1e9, 2) == 3.86


def test_preact_params_match_2016_paper_without_bn():
    # The 2016 paper's Table 3 counts weights only: 1.7M and 10.2M without BN's gamma/beta.
    import torch
    from reslab import create_model
    for name, paper in (("preact_resnet164", 1.7e6), ("preact_resnet1001", 10.2e6)):
        with torch.device("meta"):
            m = create_model(name)
        no_bn = sum(p.numel() for n, p in m.named_parameters() if "bn" not in n)
        with_bn = sum(p.numel() for p in m.parameters())
        assert round(no_bn / 1e6, 1) == paper / 1e6, (name, no_bn)
        assert with_bn > no_bn


def test_references_refer_to_rows(rows):
    assert set(REFERENCES) <= set(rows)


def test_complexity_json_fields():
    r = complexity("resnet20")
    assert {"name", "params", "macs", "family", "depth", "block", "shortcut"} <= set(r)
    assert r["input"] == [3, 32, 32] and r["shortcut"] == "A"


def test_every_published_figure_matches_the_count_at_its_precision():
    from reslab.models.complexity import REFERENCES, complexity
    for name, ref in REFERENCES.items():
        row = complexity(name)
        if ref.params:
            if "," in ref.params:  # exact counts (torchvision's metadata)
                assert row["params"] == int(ref.params.replace(",", "")), name
            else:  # "0.27M": rounded as published
                digits = len(ref.params[:-1].split(".")[1]) if "." in ref.params else 0
                count = _params_without_bn(name) if "without BN" in ref.params_source else row["params"]
                assert round(count / 1e6, digits) == float(ref.params[:-1]), name
        if ref.macs:
            value = ref.macs[:-1]
            digits = len(value.split(".")[1]) if "." in value else 0
            measured = round(row["macs"] / 1e9, digits)
            slack = 0.1 if "Table 1" in ref.macs_source else 0  # the 2015 paper rounds loosely (3.86 -> 3.8)
            assert abs(measured - float(value)) <= slack + 1e-9, (name, measured, value)


def _params_without_bn(name):
    import torch
    from torch import nn

    from reslab import create_model
    with torch.device("meta"):
        m = create_model(name)
    return sum(p.numel() for mod in m.modules() if not isinstance(mod, nn.BatchNorm2d)
               for p in mod.parameters(recurse=False))


@pytest.mark.parametrize("name", sorted(TIMM_MACS))
def test_bag_of_tricks_macs_equal_an_independent_count(rows, name):
    """reslab's counter (torch's FlopCounterMode) agrees with forward hooks on reslab's model, and both with
    the golden count made on timm's."""
    import torch

    from reslab import create_model

    from .timm_ref import hook_macs
    with torch.device("meta"):
        model = create_model(name)
    assert rows[name]["macs"] == hook_macs(model) == TIMM_MACS[name]


@pytest.mark.parametrize("name", sorted(TIMM_MACS))
def test_bag_of_tricks_golden_counts_are_timms(name):
    import torch

    from .timm_ref import hook_macs, import_timm
    timm = import_timm()
    with torch.device("meta"):
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == GOLDEN_PARAMS[name]
    assert hook_macs(model) == TIMM_MACS[name]
