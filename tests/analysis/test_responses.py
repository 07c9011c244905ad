"""Layer responses: which modules are measured, and the std computed over batches."""
import pytest
import torch

from reslab import create_model
from reslab.analysis import layer_responses
from reslab.analysis.responses import response_modules


@pytest.mark.parametrize("name,per_block", [("resnet20", 2), ("preact_resnet110", 2), ("resnet50", 1),
                                            ("preact_resnet164", 1)])
def test_one_response_per_3x3_layer(name, per_block):
    m = create_model(name, **({"depth": 20} if name == "preact_resnet110" else {}))
    assert len(response_modules(m)) == per_block * len(m.blocks())


def test_post_activation_measures_bn_and_preact_measures_conv():
    assert isinstance(response_modules(create_model("resnet20"))[0], torch.nn.BatchNorm2d)
    assert isinstance(response_modules(create_model("preact_resnet110", depth=20))[0], torch.nn.Conv2d)
    variant = create_model("resnet20", unit="bn_after_add")
    assert isinstance(response_modules(variant)[1], torch.nn.Conv2d)  # its last conv has no BN of its own


def test_std_over_batches_equals_std_of_everything():
    torch.manual_seed(0)
    m = create_model("resnet20", depth=8).eval()
    x = torch.randn(12, 3, 16, 16)
    stds = layer_responses(m, [x[:5], x[5:]])
    captured = []
    h = response_modules(m)[0].register_forward_hook(lambda mod, a, out: captured.append(out.detach().clone()))
    with torch.no_grad():
        m(x)
    h.remove()
    assert stds[0] == pytest.approx(captured[0].double().std(unbiased=False).item(), rel=1e-6)
