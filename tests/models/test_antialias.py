"""Anti-aliased downsampling (Zhang 2019): the blur-pool's filter and placement as timm's, and what it is
for: outputs that change less when the input shifts by one pixel."""
import pytest
import torch
from torch import nn

from reslab import create_model
from reslab.models.pooling import AvgPool2dSame, BlurPool2d

from .timm_ref import import_timm


def test_blur_filter_is_the_binomial_1_2_1():
    pool = BlurPool2d(3)
    expected = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    assert all(torch.equal(pool.filt[c, 0], expected) for c in range(3))
    assert "filt" not in pool.state_dict()  # a constant: no key, so timm's files and reslab's match


def test_blur_pool_equals_timms():
    timm = import_timm()
    x = torch.randn(2, 5, 9, 10)
    for stride in (1, 2):
        torch.testing.assert_close(BlurPool2d(5, stride)(x), timm.layers.BlurPool2d(5, stride=stride)(x))


def test_avg_pool_same_equals_timms():
    timm = import_timm()
    x = torch.randn(2, 4, 7, 6)
    ref = timm.layers.AvgPool2dSame(2, 1, ceil_mode=True, count_include_pad=False)
    torch.testing.assert_close(AvgPool2dSame()(x), ref(x))


def test_a_one_pixel_shift_flips_a_strided_subsample_but_not_a_blur_pool():
    """A checkerboard is pure Nyquist frequency: subsampling it aliases to a constant whose sign depends on
    the phase (a one-pixel shift flips every output), while blurring first removes it entirely."""
    i = torch.arange(8)
    board = ((-1.0) ** (i[:, None] + i[None, :]))[None, None]
    shifted = torch.roll(board, 1, dims=3)
    assert torch.equal(board[..., ::2, ::2], -shifted[..., ::2, ::2])
    blur = BlurPool2d(1)
    assert blur(board).abs().max() == 0 and blur(shifted).abs().max() == 0


def test_same_weights_with_blur_pools_are_more_shift_consistent():
    """resnet18 and resnetblur18 share every weight (the blur-pools have none): with the same random weights,
    the blurred net's pooled features change less under one-pixel shifts of the input."""
    torch.manual_seed(0)
    plain, blurred = create_model("resnet18", num_classes=0), create_model("resnetblur18", num_classes=0)
    blurred.load_state_dict(plain.state_dict())
    x = torch.randn(8, 3, 64, 64)
    similarity = {}
    for name, m in (("plain", plain), ("blur", blurred)):
        with torch.no_grad():
            m.train()(x)  # BN statistics of these images, so the features are not dominated by the init's
            m.eval()
            ref = m(x)
            shifts = [m(torch.roll(x, s, dims=(2, 3))) for s in ((0, 1), (1, 0), (1, 1))]
        similarity[name] = torch.stack([nn.functional.cosine_similarity(ref, s).mean() for s in shifts]).mean()
    assert similarity["blur"] > similarity["plain"] + 0.005, similarity


@pytest.mark.parametrize("name,stem", [("resnetblur50", (nn.MaxPool2d, BlurPool2d)), ("resnetaa50", (nn.AvgPool2d,))])
def test_placement_as_timm(name, stem):
    m = create_model(name, layers=(1, 1, 1, 1))
    pool = m.maxpool if isinstance(m.maxpool, nn.Sequential) else [m.maxpool]
    assert tuple(type(p) for p in pool) == stem
    first = m.layer2[0]
    assert first.conv2.stride == (1, 1) and first.aa is not None  # the stride moved after the 3x3's ReLU
    assert m.layer1[0].aa is None  # no stride, nothing to anti-alias
    dilated = create_model(name, layers=(1, 1, 1, 1), output_stride=16)
    aa = dilated.layer4[0].aa  # timm blurs where dilation replaced the stride (its 1x1 average is a no-op)
    if name == "resnetblur50":
        assert isinstance(aa, BlurPool2d) and aa.stride == 1
    else:
        assert isinstance(aa, nn.Identity)
