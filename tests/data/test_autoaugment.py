"""TrivialAugment / RandAugment batched on the device: every op against torchvision's v2 functional
kernels, the magnitude tables against torchvision's, and the op/magnitude draws.

Tolerances: uint8 batches must equal torchvision's uint8 results exactly (the batched ops replay
torchvision's float32 arithmetic, casts and fused multiply-adds on the CPU); float batches in [0, 1]
within 1e-6 (float32 rounding)."""
import math

import pytest
import torch

from reslab.data.augment_ops import OPS, apply_op, apply_ops
from reslab.data.autoaugment import (magnitude_table, rand_augment, sample_randaugment, sample_trivial,
                                     trivial_augment)

from ..reference_libs import tv_functional, tv_transforms


def tv_op(F, img: torch.Tensor, name: str, m: float) -> torch.Tensor:
    """torchvision's policy op on one image, as `_apply_image_or_video_transform` calls the v2 kernels
    (nearest interpolation, fill None = 0)."""
    bound = 255.0 if img.dtype == torch.uint8 else 1.0
    affine = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0], interpolation=F.InterpolationMode.NEAREST)
    if name == "Identity":
        return img
    if name == "ShearX":
        return F.affine(img, **{**affine, "shear": [math.degrees(math.atan(m)), 0.0]}, center=[0, 0])
    if name == "ShearY":
        return F.affine(img, **{**affine, "shear": [0.0, math.degrees(math.atan(m))]}, center=[0, 0])
    if name == "TranslateX":
        return F.affine(img, **{**affine, "translate": [int(m), 0]})
    if name == "TranslateY":
        return F.affine(img, **{**affine, "translate": [0, int(m)]})
    if name == "Rotate":
        return F.rotate(img, angle=m, interpolation=F.InterpolationMode.NEAREST)
    if name == "Brightness":
        return F.adjust_brightness(img, 1.0 + m)
    if name == "Color":
        return F.adjust_saturation(img, 1.0 + m)
    if name == "Contrast":
        return F.adjust_contrast(img, 1.0 + m)
    if name == "Sharpness":
        return F.adjust_sharpness(img, 1.0 + m)
    if name == "Posterize":
        return F.posterize(img, int(m))
    if name == "Solarize":
        return F.solarize(img, bound * m)
    if name == "AutoContrast":
        return F.autocontrast(img)
    return F.equalize(img)


def _images(n=12, h=24, w=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    x[: n // 2, :, : h // 2] //= 3               # uneven histograms and ranges
    x[1] = 77                                    # a flat image: autocontrast/equalize keep it
    return x


def _magnitudes(name: str, n: int) -> torch.Tensor:
    if name.startswith("Translate"):
        return torch.linspace(-32, 32, n, dtype=torch.float64)
    if name == "Rotate":  # the fast paths (0, +-90, 180) and general angles
        return torch.tensor([0, 90, -90, 180, 4.5, -135, 30, 13.5, 270, -4.5, 121.5, 1.0], dtype=torch.float64)[:n]
    if name == "Posterize":
        return (torch.arange(n) % 9).double()
    if name == "Solarize":
        return torch.linspace(0, 1, n, dtype=torch.float64)
    return torch.linspace(-0.99, 0.99, n, dtype=torch.float64)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("uint8", [True, False], ids=["uint8", "float"])
@pytest.mark.parametrize("shape", [(24, 28), (20, 20)], ids=["rect", "square"])
def test_each_op_matches_torchvision(name, uint8, shape):
    F = tv_functional()
    x = _images(h=shape[0], w=shape[1])
    x = x if uint8 else x.float() / 255
    m = _magnitudes(name, len(x))
    ours = apply_ops(x, torch.full((len(x),), OPS.index(name)), m)
    ref = torch.stack([tv_op(F, x[i], name, float(m[i])) for i in range(len(x))])
    assert ours.dtype == x.dtype and ours.shape == x.shape
    if uint8:
        assert torch.equal(ours, ref), f"{name}: {(ours != ref).sum().item()} pixels differ"
    else:
        assert torch.allclose(ours, ref, atol=1e-6, rtol=0), f"{name}: max diff {(ours - ref).abs().max().item()}"


def test_mixed_ops_in_one_batch_equal_per_sample_torchvision():
    F = tv_functional()
    x = _images(n=28, h=32, w=32, seed=1)
    op, m = sample_trivial(torch.Generator().manual_seed(3), len(x), 32, 32)
    ours = apply_ops(x, op, m)
    ref = torch.stack([tv_op(F, x[i], OPS[int(op[i])], float(m[i])) for i in range(len(x))])
    assert torch.equal(ours, ref)


def test_randaugment_chains_ops_as_torchvision():
    F = tv_functional()
    x = _images(n=10, h=32, w=32, seed=2)
    out = rand_augment(x, torch.Generator().manual_seed(5), num_ops=2, magnitude=9)
    rounds = sample_randaugment(torch.Generator().manual_seed(5), len(x), 32, 32, 2, 9)
    ref = []
    for i in range(len(x)):
        img = x[i]
        for op, m in rounds:
            img = tv_op(F, img, OPS[int(op[i])], float(m[i]))
        ref.append(img)
    assert torch.equal(out, torch.stack(ref))


@pytest.mark.parametrize("policy,cls", [("trivial", "TrivialAugmentWide"), ("randaugment", "RandAugment")])
def test_magnitude_tables_are_torchvisions(policy, cls):
    space = getattr(tv_transforms(), cls)._AUGMENTATION_SPACE
    ours = magnitude_table(policy, 31, 40, 56)
    assert list(ours) == [k for k in space] and list(ours) == list(OPS)
    for name, (fn, signed) in space.items():
        ref, mine = fn(31, 40, 56), ours[name][0]
        assert signed == ours[name][1], name
        assert (ref is None and mine is None) or torch.equal(ref, mine), name


def test_trivial_draws_are_uniform_and_signed_half_the_time():
    n = 28_000
    op, m = sample_trivial(torch.Generator().manual_seed(0), n, 32, 32)
    counts = torch.bincount(op, minlength=len(OPS)).double()
    assert (counts / n - 1 / len(OPS)).abs().max() < 0.01          # 14 ops, 2000 each expected (sd ~ 0.002)
    bright = m[op == OPS.index("Brightness")]
    levels = torch.linspace(0, 0.99, 31).double()
    assert torch.isin(bright.abs().float(), levels.float()).all()   # the 31 bins, signed
    assert abs((bright < 0).double().mean().item() - 0.5 * 30 / 31) < 0.04  # bin 0 is 0: never negative
    post = m[op == OPS.index("Posterize")]
    assert set(post.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0} and (post >= 0).all()
    assert (m[op == OPS.index("Identity")] == 0).all()
    rot = m[op == OPS.index("Rotate")]
    assert rot.abs().max() == 135 and rot.min() == -135


def test_same_generator_same_result_and_batch_independent_of_device_layout():
    x = _images(n=16, h=32, w=32)
    a = trivial_augment(x, torch.Generator().manual_seed(7))
    b = trivial_augment(x, torch.Generator().manual_seed(7))
    c = trivial_augment(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    cl = trivial_augment(x.contiguous(memory_format=torch.channels_last), torch.Generator().manual_seed(7))
    assert torch.equal(cl, a)


def test_apply_op_rejects_bad_shapes():
    with pytest.raises(ValueError, match="batch"):
        apply_ops(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), torch.zeros(2))
    assert apply_op(torch.zeros(1, 3, 2, 2), "Sharpness", torch.ones(1), True).shape == (1, 3, 2, 2)
