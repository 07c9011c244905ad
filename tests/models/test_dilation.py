"""Dilated backbones (output stride 16 / 8): torchvision's replace_stride_with_dilation exactly, basic
blocks too, the same weights."""
import pytest
import torch

from reslab import ReslabError, create_backbone, create_model
from tests.models.reference_nets import torchvision_resnet


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("dilate", [(False, False, True), (False, True, True)], ids=["os16", "os8"])
def test_dilation_matches_torchvision_rule_with_the_same_weights(name, dilate):
    ref = torchvision_resnet(name, replace_stride_with_dilation=dilate).eval()
    ours = create_model(name, replace_stride_with_dilation=list(dilate)).eval()
    assert ours.state_dict().keys() == create_model(name).state_dict().keys()  # pretrained files load unchanged
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,os,size", [("resnet50", 16, 6), ("resnet50", 8, 12), ("resnet18", 8, 12),
                                          ("preact_resnet18", 16, 6), ("resnet20", 2, 48)])
def test_output_stride_gives_the_map_size_and_reports_it(name, os, size):
    bb = create_backbone(name, out_indices=(1, 2, 3) if name == "resnet20" else (1, 2, 3, 4), output_stride=os)
    assert bb.strides[-1] == os
    x = torch.randn(1, 3, 96, 96)
    maps = bb.eval()(x)
    assert maps[-1].shape[-1] == size and [96 // m.shape[-1] for m in maps] == bb.strides


def test_impossible_output_stride_names_the_valid_ones():
    with pytest.raises(ReslabError, match="output_stride=12 .* choose one of 4, 8, 16, 32"):
        create_model("resnet50", output_stride=12)
    with pytest.raises(ReslabError, match="one flag per stage"):
        create_model("resnet50", replace_stride_with_dilation=[True])
