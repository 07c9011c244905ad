"""ResNet-B/C/D (He T. et al. 2019, "Bag of Tricks") and anti-aliased downsampling against timm: the same
state-dict keys and shapes, the same function on the same weights (also dilated), the same parameter
counts; every reslab feature on the new options; the options refused where they mean nothing."""
import pytest
import torch
from torch import nn

from reslab import ReslabError, create_backbone, create_model, load_model, save_weights

from .reference_nets import randomise_bn
from .test_complexity import GOLDEN_PARAMS
from .timm_ref import import_timm

NEW = ["resnet26", "resnet50c", "resnet101c", "resnet152c", "resnet18d", "resnet26d", "resnet34d", "resnet50d",
       "resnet101d", "resnet152d", "resnet200d", "resnetblur18", "resnetblur50", "resnetblur50d", "resnetaa50",
       "resnetaa50d"]
# One of each kind, small enough for a forward pass in the default run (every preset with -m slow).
FAST = ["resnet18d", "resnet26d", "resnetblur18", "resnetblur50d", "resnetaa50d"]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", NEW)
def test_parameter_counts_equal_timms(name):
    with torch.device("meta"):
        ours = n_params(create_model(name))
    assert ours == GOLDEN_PARAMS[name]  # read from timm 1.0.31 (tests/models/test_complexity.py)
    timm = import_timm()
    with torch.device("meta"):
        assert ours == n_params(timm.create_model(name))


def _timm_with_weights(timm, name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(timm.create_model(name, **kw)).eval()


def _cases():
    fast = [pytest.param(n, s, id=f"{n}-os{s}") for n in FAST for s in (32, 16)]
    slow = [pytest.param(n, s, id=f"{n}-os{s}", marks=pytest.mark.slow) for n in NEW for s in (32, 16, 8)
            if n not in FAST or s == 8]
    return fast + slow


@pytest.mark.parametrize("name,output_stride", _cases())
def test_timm_weights_load_by_file_and_compute_the_same_function(tmp_path, name, output_stride):
    timm = import_timm()
    ref = _timm_with_weights(timm, name, output_stride=output_stride)
    path = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), path)
    ours = create_model(name, weights=str(path), output_stride=output_stride).eval()
    theirs, mine = ref.state_dict(), ours.state_dict()
    assert list(mine) == list(theirs)  # the same names in the same order: timm's files load with no renaming
    assert all(mine[k].shape == theirs[k].shape for k in theirs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["resnet26d", "resnetblur50d"])
def test_backbone_feature_maps_equal_timms_features_only(name):
    timm = import_timm()
    torch.manual_seed(0)
    ref = randomise_bn(timm.create_model(name, features_only=True, output_stride=8)).eval()
    backbone = create_backbone(name, out_indices=(0, 1, 2, 3, 4), output_stride=8).eval()
    backbone.model.load_state_dict(ref.state_dict(), strict=False)  # features_only drops fc
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(backbone(x), ref(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert backbone.channels == ref.feature_info.channels() and backbone.strides == [2, 4, 8, 8, 8]


def test_deep_stem_and_avg_down_have_timms_layout():
    m = create_model("resnet50d")
    stem = [type(x).__name__ for x in m.conv1]
    assert stem == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert [c.out_channels for c in m.conv1 if isinstance(c, nn.Conv2d)] == [32, 32, 64] and m.bn1.num_features == 64
    assert m.conv1[0].stride == (2, 2) and m.conv1[3].stride == m.conv1[6].stride == (1, 1)
    pool, conv, bn = m.layer2[0].downsample
    assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride) == (2, 2)
    assert pool.ceil_mode and not pool.count_include_pad
    assert conv.stride == (1, 1) and conv.kernel_size == (1, 1) and isinstance(bn, nn.BatchNorm2d)
    assert isinstance(m.layer1[0].downsample[0], nn.Identity)  # stage 1 does not stride: nothing to pool
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)  # ResNet-B: stride on the 3x3
    tiered = create_model("resnet50", stem_type="deep_tiered")
    assert [c.out_channels for c in tiered.conv1 if isinstance(c, nn.Conv2d)] == [24, 32, 64]


def test_deep_tiered_stem_equals_timms_resnet50t():
    timm = import_timm()
    with torch.device("meta"):
        ref = timm.create_model("resnet50t")
        ours = create_model("resnet50", stem_type="deep_tiered", avg_down=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("kw,match", [
    ({"aa": "blur", "preact": True}, "post-activation units, not in pre-activation"),
    ({"aa": "blur", "unit": "bn_after_add"}, "not in unit='bn_after_add'"),
    ({"aa": "avg", "stride_on": "1x1"}, "stride_on='3x3'"),
    ({"aa": "lowpass"}, "aa='lowpass' is not valid; choose one of '', blur, avg"),
    ({"stem_type": "wide"}, "stem_type='wide' is not valid"),
    ({"avg_down": True, "shortcut": "A"}, "shortcut 'A' has none"),
    ({"stem_type": "deep", "stem_width": 63}, "stem_width divisible by 2"),
])
def test_meaningless_combinations_are_refused_in_one_line(kw, match):
    with pytest.raises(ReslabError, match=match) as e:
        create_model("resnet50", **kw)
    assert "\n" not in str(e.value)


def test_deep_stem_is_for_imagenet_nets():
    with pytest.raises(ReslabError, match="CIFAR stem is one 3x3 conv already"):
        create_model("resnet20", stem_type="deep")


def test_what_the_options_do_in_cifar_plain_and_preact_nets():
    x = torch.randn(2, 3, 16, 16)
    cifar = create_model("resnet20", shortcut="B", avg_down=True, aa="blur").eval()
    assert isinstance(cifar.layer2[0].downsample[0], nn.AvgPool2d) and cifar.layer2[0].aa is not None
    plain = create_model("resnet50d", residual=False)  # the plain twin: deep stem, no shortcut to pool
    assert all(b.downsample is None for b in plain.blocks())
    with torch.device("meta"):
        assert n_params(create_model("resnet50d")) - n_params(create_model("resnet50d", residual=False)) == \
            n_params(create_model("resnet50")) - n_params(create_model("plain50"))
    preact = create_model("preact_resnet50", stem_type="deep", avg_down=True, layers=(1, 1, 1, 1)).eval()
    assert preact.bn1 is None and len(preact.layer2[0].downsample) == 2  # pool + conv: no BN in pre-act shortcuts
    with torch.no_grad():
        assert cifar(x).shape == (2, 10) and preact(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    m = create_model("resnetblur50d", zero_init_residual=True, layers=(1, 1, 1, 1)).eval()
    x = torch.randn(2, 256, 16, 16)
    block = m.layer2[0]
    with torch.no_grad():
        assert block.residual_branch(x).abs().max() == 0
        torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = create_model("resnetblur18", num_classes=5)
    b = create_model("resnetblur18", num_classes=5)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 32, 32)
    for m in (a, b):
        m.train()(x).square().mean().backward()
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=k)
    torch.testing.assert_close(a.state_dict(), b.state_dict())


def test_reslab_file_round_trip_keeps_the_options(tmp_path):
    m = create_model("resnetaa50d", layers=(1, 1, 1, 1), num_classes=3)
    save_weights(m, tmp_path / "m.safetensors", name="resnetaa50d")
    again = load_model(tmp_path / "m.safetensors")
    assert (again.cfg.stem_type, again.cfg.avg_down, again.cfg.aa) == ("deep", True, "avg")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), m.eval()(x))


def test_in_chans_adapts_the_deep_stems_first_conv(tmp_path):
    f = tmp_path / "r18d.pth"
    src = create_model("resnet18d")
    torch.save(src.state_dict(), f)
    gray = create_model("resnet18d", in_chans=1, weights=str(f))
    torch.testing.assert_close(gray.conv1[0].weight, src.conv1[0].weight.sum(1, keepdim=True))
