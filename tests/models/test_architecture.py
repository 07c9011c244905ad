"""Structure: blocks, shortcuts A/B/C, plain twins, stride placement, pre-activation, depth rules."""
import pytest
import torch
from torch import nn

from reslab import ReslabError, create_model, list_models
from reslab.models.layers import ShortcutA

TINY_IMAGENET = dict(widths=(8, 8, 16, 16), stem_width=8, num_classes=5)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
def test_plain_twin_has_exactly_the_option_a_params(depth):
    with torch.device("meta"):
        assert n_params(create_model(f"plain{depth}")) == n_params(create_model(f"resnet{depth}", shortcut="A"))


@pytest.mark.parametrize("name", ["plain18", "plain34"])
def test_imagenet_plain_twin_matches_option_a(name):
    with torch.device("meta"):
        assert n_params(create_model(name)) == n_params(create_model(name.replace("plain", "resnet"), shortcut="A"))


def projection_params(cfg, every_block: bool) -> int:
    """conv1x1 + BN (2 per channel) for each block whose shape changes (B) or every block (C)."""
    expansion = 4 if cfg.block == "bottleneck" else 1
    total, in_ch = 0, cfg.stem_width
    for s, (n, planes) in enumerate(zip(cfg.layers, cfg.widths)):
        out = planes * expansion
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            if every_block or stride != 1 or in_ch != out:
                total += in_ch * out + (0 if cfg.preact else 2 * out)
            in_ch = out
    return total


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet18", "resnet50", "preact_resnet110"])
@pytest.mark.parametrize("option", ["B", "C"])
def test_options_b_and_c_add_exactly_the_projections(name, option):
    with torch.device("meta"):
        a = create_model(name, shortcut="A")
        other = create_model(name, shortcut=option)
    assert n_params(other) - n_params(a) == projection_params(other.cfg, every_block=option == "C")


def test_option_c_projects_every_block():
    m = create_model("resnet20", shortcut="C")
    assert all(isinstance(b.downsample, nn.Sequential) for b in m.blocks())


def test_plain_blocks_have_no_shortcut_and_no_addition():
    m = create_model("plain20").eval()
    assert all(b.downsample is None and not b.residual for b in m.blocks())
    block = m.layer1[0]
    x = torch.randn(2, 16, 8, 8)
    expected = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
    torch.testing.assert_close(block(x), expected)


def test_residual_block_adds_identity():
    m = create_model("resnet20").eval()
    block = m.layer1[0]
    x = torch.randn(2, 16, 8, 8)
    f = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), torch.relu(f + x))


def test_option_a_pads_both_sides_and_subsamples():
    sc = ShortcutA(16, 32, 2)
    x = torch.randn(1, 16, 8, 8)
    y = sc(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.all(y[:, :8] == 0) and torch.all(y[:, 24:] == 0)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])


@pytest.mark.parametrize("stride_on,conv1_stride,conv2_stride", [("3x3", 1, 2), ("1x1", 2, 1)])
def test_bottleneck_stride_placement(stride_on, conv1_stride, conv2_stride):
    m = create_model("resnet50", stride_on=stride_on, **TINY_IMAGENET)
    b = m.layer2[0]
    assert b.conv1.stride == (conv1_stride,) * 2 and b.conv2.stride == (conv2_stride,) * 2


def test_preact_unit_structure():
    m = create_model("preact_resnet110")
    assert m.bn1 is None and isinstance(m.bn_final, nn.BatchNorm2d)
    b = m.layer2[1].eval()
    x = torch.randn(2, 32, 8, 8)
    f = b.conv2(torch.relu(b.bn2(b.conv1(torch.relu(b.bn1(x))))))
    torch.testing.assert_close(b(x), x + f)  # y = x + F(relu(bn(x))), nothing after the addition


def test_preact_projection_sees_preactivated_input():
    m = create_model("preact_resnet164").eval()
    b = m.layer1[0]  # 16 -> 64 channels: projection
    x = torch.randn(2, 16, 8, 8)
    pre = torch.relu(b.bn1(x))
    f = b.conv3(torch.relu(b.bn3(b.conv2(torch.relu(b.bn2(b.conv1(pre)))))))
    torch.testing.assert_close(b(x), f + b.downsample(pre))


def test_grouped_and_wide_bottleneck_widths():
    x = create_model("resnext50_32x4d")
    assert x.layer1[0].conv2.groups == 32 and x.layer1[0].conv2.out_channels == 128
    w = create_model("wide_resnet50_2")
    assert w.layer1[0].conv2.out_channels == 128 and w.layer1[0].conv3.out_channels == 256
    wrn = create_model("wrn28_10")
    assert [len(s) for s in wrn.stages()] == [4, 4, 4] and wrn.num_features == 640


@pytest.mark.parametrize("name,depth,layers", [("resnet20", 74, (12, 12, 12)), ("resnet74", None, (12, 12, 12)),
                                               ("preact_resnet164", 29, (3, 3, 3)), ("plain8", None, (1, 1, 1))])
def test_any_valid_depth(name, depth, layers):
    kw = {"depth": depth} if depth else {}
    with torch.device("meta"):
        m = create_model(name, **kw)
    assert m.cfg.layers == layers


@pytest.mark.parametrize("name,kw,rule", [("resnet20", {"depth": 75}, "6n+2"), ("resnet21", {}, "6n+2"),
                                          ("preact_resnet164", {"depth": 165}, "9n+2"),
                                          ("resnet18", {"depth": 19}, "valid: 18, 34, 50"),
                                          ("wrn28_10", {"depth": 27}, "6n+4")])
def test_invalid_depth_states_the_rule(name, kw, rule):
    with pytest.raises(ReslabError, match=rule.replace("+", r"\+")):
        create_model(name, **kw)


@pytest.mark.parametrize("kw,message", [({"shortcut": "D"}, "choose one of A, B, C"), ({"groups": 0}, "positive"),
                                        ({"drop_path_rate": 1.5}, r"\[0, 1\)"), ({"stride_on": "5x5"}, "3x3"),
                                        ({"shortcutt": "B"}, "closest first: shortcut"), ({"depth": "deep"}, "integer")])
def test_invalid_arguments_are_one_line_errors(kw, message):
    with pytest.raises(ReslabError, match=message) as e:
        create_model("resnet20", **kw)
    assert "\n" not in str(e.value)


def test_unknown_name_lists_close_matches_first():
    with pytest.raises(ReslabError, match=r"unknown model 'resnt50'; valid choices, closest first: resnet50"):
        create_model("resnt50")


def test_option_a_cannot_reduce_channels():
    with pytest.raises(ReslabError, match="use shortcut 'B'"):
        create_model("resnet18", shortcut="A", widths=(4, 8, 8, 8))


def test_plain_nets_refuse_stochastic_depth_and_zero_init():
    with pytest.raises(ReslabError, match="plain"):
        create_model("plain20", drop_path_rate=0.1)
    with pytest.raises(ReslabError, match="plain"):
        create_model("plain20", zero_init_residual=True)


def test_list_models_covers_the_papers():
    names = set(list_models())
    for n in ["resnet18", "resnet200", "plain18", "plain34", "preact_resnet18", "preact_resnet200", "resnet20",
              "resnet1202", "plain110", "preact_resnet110", "preact_resnet164", "preact_resnet1001", "wrn28_10",
              "wide_resnet50_2", "resnext50_32x4d"]:
        assert n in names
    assert list_models("preact") and all("preact" in n for n in list_models("preact"))


@pytest.mark.parametrize("unit", ["bn_after_add", "relu_before_add", "relu_preact"])
def test_2016_table2_unit_variants_compute_their_formula(unit):
    m = create_model("resnet20", unit=unit).eval()
    b = m.layer1[1]
    x = torch.randn(2, 16, 8, 8)
    relu = torch.relu
    if unit == "bn_after_add":
        expected = relu(b.bn_out(x + b.conv2(relu(b.bn1(b.conv1(x))))))
    elif unit == "relu_before_add":
        expected = x + relu(b.bn2(b.conv2(relu(b.bn1(b.conv1(x))))))
    else:
        expected = x + b.bn2(b.conv2(relu(b.bn1(b.conv1(relu(x))))))
    torch.testing.assert_close(b(x), expected)


def test_unit_variants_keep_the_parameter_count_and_refuse_preact():
    with torch.device("meta"):
        base = n_params(create_model("resnet110"))
        for unit in ("bn_after_add", "relu_before_add", "relu_preact"):
            assert n_params(create_model("resnet110", unit=unit)) == base
    with pytest.raises(ReslabError, match="preact=False"):
        create_model("preact_resnet110", unit="relu_preact")
