"""timm's deep-stem / average-pool-shortcut weights load into the matching preset, and into any other
model are refused in one line naming the preset that fits them."""
import pytest
import torch

from reslab import ReslabError, create_model
from reslab.models.layouts import stem_and_shortcut, suggest_model


def _save(tmp_path, name, **kw):
    path = tmp_path / f"{name}.pth"
    torch.save(create_model(name, **kw).state_dict(), path)
    return str(path)


@pytest.mark.parametrize("weights,into,says", [
    ("resnet50d", "resnet50", r"timm ResNet-D weights \(a deep 3-conv stem and average-pool downsampling.*\): "
                              r"not the torchvision ResNet layout resnet50 has; use resnet50d$"),
    ("resnet50c", "resnet50d", r"timm ResNet-C/S/T weights .*: not the ResNet-D layout \(deep stem, avg_down\) "
                               r"resnet50d has; use resnet50c$"),
    ("resnet18", "resnet18d", r"standard ResNet weights .*: not the ResNet-D layout .* resnet18d has; use resnet18$"),
    ("resnet50d", "resnetblur50", r"timm ResNet-D weights .* resnetblur50 has; use resnetblur50d$"),  # keeps the blur
])
def test_other_layouts_are_refused_naming_the_preset_that_fits(tmp_path, weights, into, says):
    f = _save(tmp_path, weights)
    with pytest.raises(ReslabError, match=says) as e:
        create_model(into, weights=f)
    assert "\n" not in str(e.value) and "missing" not in str(e.value)


def test_no_preset_fits_then_the_options_are_named(tmp_path):
    f = _save(tmp_path, "resnet34", avg_down=True)
    with pytest.raises(ReslabError, match=r"with a 7x7 stem: not the torchvision ResNet layout resnet34 has; "
                                          r"build it with avg_down=True$"):
        create_model("resnet34", weights=f)
    create_model("resnet34", avg_down=True, weights=f)  # ... and with them it loads


@pytest.mark.parametrize("name", ["resnet26d", "resnetblur18", "resnet50c"])
def test_matching_weights_load_with_a_new_head(tmp_path, name):
    f = _save(tmp_path, name)
    m = create_model(name, num_classes=7, weights=f)
    assert m.fc.out_features == 7


def test_stem_and_shortcut_read_from_keys_and_shapes():
    def sd(name, **kw):
        with torch.device("meta"):
            return create_model(name, **kw).state_dict()
    assert stem_and_shortcut(sd("resnet18")) == {"stem_type": "", "avg_down": False}
    assert stem_and_shortcut(sd("resnet26d")) == {"stem_type": "deep", "avg_down": True}
    assert stem_and_shortcut(sd("resnet50", stem_type="deep_tiered")) == {"stem_type": "deep_tiered", "avg_down": False}
    assert suggest_model(sd("resnet101d", num_classes=10)) == "use resnet101d"  # whatever the head
