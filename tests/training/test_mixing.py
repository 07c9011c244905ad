"""Mixup / CutMix with timm's semantics: lambda, box, soft targets, loss, reproducibility."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab.training.mixing import (Mixer, cutmix_box, dominant_label, mix_generator, mixup_target, sample_beta,
                                    soft_cross_entropy)

from ..reference_libs import timm_mixup


def _batch(n=8, k=5):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, k, (n,), generator=g)


def test_lambda_follows_beta_alpha_alpha():
    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0):
        lam = np.array([sample_beta(alpha, g) for _ in range(4000)])
        assert abs(lam.mean() - 0.5) < 0.02
        assert abs(lam.var() - 1 / (4 * (2 * alpha + 1))) < 0.01   # Beta(a, a): variance 1 / (4 (2a + 1))
        assert (lam >= 0).all() and (lam <= 1).all()
    lam = np.array([sample_beta(0.2, g) for _ in range(4000)])
    assert ((lam < 0.1) | (lam > 0.9)).mean() > 0.5                 # small alpha: mostly near 0 or 1


def test_cutmix_box_area_is_one_minus_corrected_lambda_and_matches_timm(monkeypatch):
    mix = timm_mixup()
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        lam = float(torch.rand((), generator=g))
        state = g.get_state()
        (yl, yh, xl, xh), corrected = cutmix_box(24, 32, lam, g)
        assert 0 <= yl <= yh <= 24 and 0 <= xl <= xh <= 32
        assert corrected == pytest.approx(1 - (yh - yl) * (xh - xl) / (24 * 32))
        # timm's rand_bbox with the same centre (its np.random.randint draws replaced by ours)
        g2 = torch.Generator()
        g2.set_state(state)
        draws = iter([int(torch.randint(0, 24, (), generator=g2)), int(torch.randint(0, 32, (), generator=g2))])
        monkeypatch.setattr(mix.np.random, "randint", lambda lo, hi, size=None: next(draws))
        box, timm_lam = mix.cutmix_bbox_and_lam((3, 24, 32), lam, correct_lam=True)
        assert (yl, yh, xl, xh) == tuple(int(v) for v in box) and corrected == pytest.approx(timm_lam)


def test_targets_are_timms_and_sum_to_one():
    mix = timm_mixup()
    y = torch.tensor([0, 3, 1, 1, 4, 2])
    for lam, smooth in [(1.0, 0.0), (0.7, 0.1), (0.35, 0.0), (0.5, 0.2)]:
        ours = mixup_target(y, 5, lam, smooth)
        assert torch.allclose(ours, mix.mixup_target(y, 5, lam, smooth), atol=1e-7)
        assert torch.allclose(ours.sum(1), torch.ones(6))


@pytest.mark.parametrize("mixup,cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixer_mixes_with_the_flipped_batch_and_is_reproducible(mixup, cutmix):
    x, y = _batch()
    m = Mixer(5, mixup, cutmix, smoothing=0.1)
    a, ta = m(x, y, torch.Generator().manual_seed(4))
    b, tb = m(x, y, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(a, x) and torch.allclose(ta.sum(1), torch.ones(len(y)))
    lam, use_cutmix = m.params(torch.Generator().manual_seed(4))
    if use_cutmix:
        changed = (a != x).any(1)                                    # the same box in every sample
        area = changed[0].sum().item() / (32 * 32)
        assert (changed == changed[0]).all() or (a[0] == x.flip(0)[0]).all()
        lam = 1 - area
    else:
        assert torch.allclose(a, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
    assert torch.allclose(ta, mixup_target(y, 5, lam, 0.1), atol=1e-5)


def test_switch_and_probability_follow_timm():
    g = torch.Generator().manual_seed(0)
    both = [Mixer(5, 0.8, 1.0, switch_prob=0.3).params(g) for _ in range(3000)]
    assert abs(np.mean([c for _, c in both]) - 0.3) < 0.03
    never = [Mixer(5, 0.8, 0.0, prob=0.0).params(g) for _ in range(50)]
    assert all(p == (1.0, False) for p in never)
    half = [Mixer(5, 0.8, 0.0, prob=0.5).params(g)[0] != 1.0 for _ in range(3000)]
    assert abs(np.mean(half) - 0.5) < 0.04


def test_soft_cross_entropy_equals_label_smoothing_on_unmixed_targets():
    logits, y = torch.randn(6, 5), torch.tensor([0, 3, 1, 1, 4, 2])
    ours = soft_cross_entropy(logits, mixup_target(y, 5, 1.0, 0.1))
    assert ours.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), abs=1e-6)


def test_dominant_label_and_generator_streams():
    t = mixup_target(torch.tensor([1, 2, 3, 4]), 5, 0.7, 0.1)
    assert dominant_label(t).tolist() == [1, 2, 3, 4]
    assert dominant_label(mixup_target(torch.tensor([1, 2, 3, 4]), 5, 0.3)).tolist() == [4, 3, 2, 1]
    a, b = mix_generator(0, 5), mix_generator(0, 5)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    draws = {float(torch.rand((), generator=mix_generator(s, t, r))) for s in range(2) for t in range(3) for r in range(2)}
    assert len(draws) == 12
