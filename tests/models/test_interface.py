"""The one model interface: forward/backward everywhere, heads, features, checkpointing, init."""
import itertools

import pytest
import torch
from torch import nn

from reslab import ReslabError, create_backbone, create_model

TINY_IMAGENET = dict(widths=(8, 8, 16, 16), stem_width=8)
FAMILIES = {  # name -> (overrides for a tiny version, input size)
    "resnet20": ({"depth": 8}, 16), "plain20": ({"depth": 8}, 16), "preact_resnet110": ({"depth": 8}, 16),
    "preact_resnet164": ({"depth": 11}, 16), "wrn28_10": ({"depth": 10, "width": 1}, 16),
    "resnet18": (TINY_IMAGENET, 32), "resnet50": (TINY_IMAGENET, 32), "plain34": (TINY_IMAGENET, 32),
    "preact_resnet50": (TINY_IMAGENET, 32), "resnext50_32x4d": ({**TINY_IMAGENET, "widths": (32, 32, 32, 32)}, 32),
}
OPTIONS = [dict(shortcut=s, stride_on=p) for s, p in itertools.product("ABC", ("3x3", "1x1"))]


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: f"{o['shortcut']}-{o['stride_on']}")
def test_forward_backward_every_family_and_option(name, opt):
    kw, size = FAMILIES[name]
    basic = create_model(name, **kw).cfg.block == "basic"
    if basic and opt["stride_on"] == "1x1":  # nothing to stride in a basic block: refused, as torchvision does
        with pytest.raises(ReslabError, match="bottleneck blocks only"):
            create_model(name, num_classes=7, **kw, **opt)
        return
    m = create_model(name, num_classes=7, **kw, **opt)
    x = torch.randn(2, 3, size, size, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_in_chans_and_num_classes():
    m = create_model("resnet18", in_chans=1, num_classes=3, **TINY_IMAGENET)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_forward_features_and_head():
    m = create_model("resnet50", **TINY_IMAGENET).eval()
    x = torch.randn(2, 3, 64, 64)
    f = m.forward_features(x)
    assert f.shape == (2, 64, 2, 2)
    assert m.forward_head(f, pre_logits=True).shape == (2, 64)
    torch.testing.assert_close(m.forward_head(f), m(x))


def test_reset_classifier():
    m = create_model("resnet20")
    m.reset_classifier(100)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100) and m.cfg.num_classes == 100
    m.reset_classifier(0)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 64)


@pytest.mark.parametrize("name,size", [("resnet50", 64), ("preact_resnet18", 64), ("resnet20", 32)])
def test_forward_stages_shapes_match_feature_info(name, size):
    kw = TINY_IMAGENET if "20" not in name else {}
    m = create_model(name, **kw).eval()
    idx = [f["index"] for f in m.feature_info]
    maps = m.forward_stages(torch.randn(1, 3, size, size), idx)
    for f, t in zip(m.feature_info, maps):
        assert t.shape[1] == f["num_chs"] and t.shape[-1] == size // f["reduction"]


def test_last_stage_equals_forward_features():
    m = create_model("preact_resnet18", **TINY_IMAGENET).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(m.forward_stages(x, [4])[0], m.forward_features(x))


def test_backbone_reports_channels_and_strides():
    bb = create_backbone("resnet50", out_indices=(1, 2, 3, 4))
    assert bb.channels == [256, 512, 1024, 2048] and bb.strides == [4, 8, 16, 32]
    small = create_backbone("resnet18", out_indices=(2, 4), **TINY_IMAGENET)
    outs = small(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == small.channels and [64 // o.shape[-1] for o in outs] == small.strides
    with pytest.raises(ReslabError, match="out_indices"):
        create_backbone("resnet18", out_indices=(5,))


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet164"])
def test_zero_init_residual_makes_blocks_identity(name):
    m = create_model(name, zero_init_residual=True, depth=14 if name == "resnet20" else 20).eval()
    block = m.layer1[1]
    x = torch.rand(2, block.conv1.in_channels, 8, 8)  # non-negative: the post-act ReLU keeps it
    torch.testing.assert_close(block(x), x)


def test_drop_path_rates_increase_linearly_and_only_act_in_training():
    m = create_model("resnet20", drop_path_rate=0.2)
    rates = [b.drop_path.p if hasattr(b.drop_path, "p") else 0.0 for b in m.blocks()]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    block = m.layer3[-1]
    x = torch.randn(64, 64, 4, 4)
    block.eval()
    ref = block(x)
    torch.testing.assert_close(block(x), ref)
    block.train()
    dropped = block.drop_path(torch.ones(1000, 1, 1, 1)).flatten()
    assert 0.1 < (dropped == 0).float().mean() < 0.3


def _step(model, x, y):
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet164"])
def test_grad_checkpointing_gives_same_step_and_bn_statistics(name):
    torch.manual_seed(0)
    a = create_model(name, depth=14 if name == "resnet20" else 20, drop_path_rate=0.1)
    b = create_model(name, depth=14 if name == "resnet20" else 20, drop_path_rate=0.1)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    torch.manual_seed(1)
    la, ga = _step(a, x, y)
    torch.manual_seed(1)
    lb, gb = _step(b, x, y)
    torch.testing.assert_close(la, lb)
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], rtol=1e-4, atol=1e-6)
    # the recomputation must not update BN running statistics a second time
    for (n, sa), sb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(sa, sb, msg=n)


def test_resnet1202_first_layer_gradient_is_finite_and_nonzero():
    m = create_model("resnet1202")
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    nn.functional.cross_entropy(m(x), y).backward()
    g = m.conv1.weight.grad
    assert torch.isfinite(g).all() and g.abs().max() > 0


def test_basic_blocks_refuse_what_they_cannot_honour():
    from reslab.models.blocks import BasicBlock, PreActBasicBlock
    for cls in (BasicBlock, PreActBasicBlock):
        with pytest.raises(ReslabError, match="groups=1 and base_width=64"):
            cls(16, 16, groups=2)
        with pytest.raises(ReslabError, match="groups=1 and base_width=64"):
            cls(16, 16, base_width=128)
        with pytest.raises(ReslabError, match="stride_on='1x1' applies to bottlenecks"):
            cls(16, 16, stride_on="1x1")
    with pytest.raises(ReslabError, match="bottleneck blocks only"):
        create_model("resnet18", stride_on="1x1")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_reset_classifier_follows_the_models_dtype(dtype):
    m = create_model("resnet20", depth=8).to(dtype)
    m.reset_classifier(3)
    assert m.fc.weight.dtype == dtype and m(torch.randn(2, 3, 16, 16, dtype=dtype)).shape == (2, 3)


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    for name, kw in [("resnet20", {"depth": 14}), ("preact_resnet164", {"depth": 20}), ("resnet50", TINY_IMAGENET),
                     ("resnet20", {"depth": 14, "unit": "relu_preact"})]:
        m = create_model(name, zero_init_residual=True, **kw).eval()
        x = torch.randn(2, m.feature_info[1]["num_chs"], 8, 8)
        with torch.no_grad():
            out = m.layer1[1](x)
        expected = x if m.cfg.preact or kw.get("unit") == "relu_preact" else torch.relu(x)
        torch.testing.assert_close(out, expected)  # y = x + 0, or relu(x + 0) for the original unit


def test_forward_intermediates_is_timms_on_the_same_weights():
    """timm's newer feature interface: the same maps and final features as timm's own resnet50, same weights."""
    from tests.reference_libs import timm as import_timm
    timm = import_timm()
    ours = create_model("resnet50", num_classes=10).eval()
    theirs = timm.create_model("resnet50", num_classes=10).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for kw in ({}, {"indices": 2}, {"indices": [0, 2]}, {"indices": [1, -1], "stop_early": True}):
            a_final, a = ours.forward_intermediates(x, **kw)
            b_final, b = theirs.forward_intermediates(x, **kw)
            assert len(a) == len(b) and all(torch.allclose(u, v, atol=1e-5) for u, v in zip(a, b)), kw
            assert torch.allclose(a_final, b_final, atol=1e-5), kw
        only = ours.forward_intermediates(x, indices=[3], intermediates_only=True)
        assert len(only) == 1 and only[0].shape == (2, 1024, 4, 4)
