"""The gradient analysis against an independent autograd computation, and the depth trend it measures."""
import pytest
import torch
from torch import nn

from reslab import create_model
from reslab.analysis import block_gradient_norms, gradient_correlation


def manual_norms(model, x, y):
    """Independent: run the stem, each block and the head by hand; differentiate w.r.t. each block input."""
    model.train()
    acts = [model.maxpool(model.forward_stem(x))]
    for block in model.blocks():
        acts.append(block(acts[-1]))
    logits = model.forward_head(model._final_norm(acts[-1]))
    grads = torch.autograd.grad(nn.functional.cross_entropy(logits, y), acts)
    return [g.norm().item() for g in grads]


@pytest.mark.parametrize("name", ["resnet20", "plain20", "preact_resnet110"])
def test_matches_an_independent_autograd_computation(name):
    torch.manual_seed(0)
    m = create_model(name, depth=14)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    ours = block_gradient_norms(m, x, y)
    torch.manual_seed(0)
    ref = manual_norms(m, x, y)
    assert len(ours) == len(m.blocks()) + 1
    assert ours == pytest.approx(ref, rel=1e-5)


def test_depth_trend_plain_explodes_residual_stays_tame():
    """Measured, never assumed: the first/last gradient ratio grows far faster with depth in plain nets."""
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    ratio = {}
    for name in ("plain20", "plain56", "resnet20", "resnet56"):
        torch.manual_seed(0)
        g = block_gradient_norms(create_model(name), x, y)
        ratio[name] = g[0] / g[-1]
    plain_growth = ratio["plain56"] / ratio["plain20"]
    residual_growth = ratio["resnet56"] / ratio["resnet20"]
    assert plain_growth > 10 * residual_growth
    assert ratio["plain56"] > ratio["resnet56"]


def test_gradient_shattering_is_stronger_in_the_deep_plain_net():
    x = torch.randn(8, 3, 16, 16)
    cos = {}
    for name in ("plain56", "resnet56"):
        torch.manual_seed(0)
        cos[name] = gradient_correlation(create_model(name), x, steps=4)["neighbour_cos"]
    assert cos["resnet56"] > cos["plain56"] + 0.2


def test_gradient_correlation_of_a_linear_model_is_one():
    lin = create_model("resnet20", depth=8)
    lin.forward = lambda z: z.flatten(1)[:, :10] * 3.0  # gradient independent of the input
    out = gradient_correlation(lin, torch.randn(2, 3, 8, 8), steps=3, train_mode_bn=False)
    assert out["neighbour_cos"] == pytest.approx(1.0) and out["decay"] == pytest.approx([1.0, 1.0])
