"""Recipes, overrides, validation, and the learning-rate schedules of the papers."""
import pytest

from reslab import ReslabError, create_model
from reslab.training.config import build_config, list_recipes, to_yaml
from reslab.training.schedule import make_schedule


def test_recipes_ship_with_the_package():
    assert {"cifar-paper", "imagenet-paper", "default", "modern"} <= set(list_recipes())


def test_cifar_paper_recipe_values():
    c = build_config("cifar-paper")
    assert (c.batch_size, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (c.schedule.steps, c.schedule.milestones) == (64000, [32000.0, 48000.0])


def test_flags_override_any_field_and_config_round_trips(tmp_path):
    c = build_config("cifar-paper", {"optim.lr": "0.05", "model": "resnet56", "data.val_split": "5000",
                                     "model_args.shortcut": "B"})
    assert c.optim.lr == 0.05 and c.model == "resnet56" and c.data.val_split == 5000 and c.model_args == {"shortcut": "B"}
    (tmp_path / "r.yaml").write_text(to_yaml(c))
    assert build_config(str(tmp_path / "r.yaml")) == c


@pytest.mark.parametrize("over,msg", [({"optim.lrr": 1}, "closest first: optim.lr"), ({"batch_size": "x"}, "expected int"),
                                      ({"optim.lr": -1}, "must be > 0"), ({"run.amp": "fp8"}, "choose one of"),
                                      ({"schedule.steps": 0, "schedule.epochs": 0}, "training length"),
                                      ({"schedule.warmup_steps": "soon"}, "warmup_steps")])
def test_invalid_values_are_one_line_errors(over, msg):
    with pytest.raises(ReslabError, match=msg) as e:
        build_config("cifar-paper", over)
    assert "\n" not in str(e.value)


def test_unknown_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(ReslabError, match="closest first: cifar-paper"):
        build_config("cifar-papr")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ReslabError, match="invalid YAML"):
        build_config(str(tmp_path / "bad.yaml"))


def _schedule(model, **over):
    c = build_config("cifar-paper", over)
    m = create_model(model)
    return make_schedule(c.schedule, c.optim.lr, c.schedule.steps, 391, m.cfg)


def test_paper_multistep_schedule():
    s = _schedule("resnet20")
    assert s.warmup_steps == 0
    assert [s(0), s(31999), s(32000), s(47999), s(48000), s(63999)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


@pytest.mark.parametrize("model,warm", [("resnet110", 400), ("resnet1202", 400), ("preact_resnet164", 400),
                                        ("preact_resnet110", 400), ("resnet56", 0)])
def test_paper_warmup_for_deep_and_preact_nets(model, warm):
    s = _schedule(model)
    assert s.warmup_steps == warm
    if warm:
        assert s(0) == s(399) == 0.01 and s(400) == 0.1


def test_cosine_with_linear_warmup_and_epoch_milestones():
    c = build_config("modern", {"schedule.epochs": 10, "schedule.warmup_steps": 10})
    s = make_schedule(c.schedule, 0.1, 100, 10, create_model("resnet20").cfg)
    assert s(0) == pytest.approx(0.01) and s(9) == pytest.approx(0.1) and s(99) < 1e-3
    c = build_config("imagenet-paper")
    s = make_schedule(c.schedule, 0.1, 90 * 5, 5, create_model("resnet50").cfg)
    assert s(149) == pytest.approx(0.1) and s(150) == pytest.approx(0.01) and s(300) == pytest.approx(0.001)
