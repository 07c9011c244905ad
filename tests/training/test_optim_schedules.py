"""AdamW and Nesterov SGD with the no-decay groups; onecycle against torch's OneCycleLR; flat_cos against
fastai's rule; the new config fields and their one-line errors."""
import math

import pytest
import torch
from torch import nn

from reslab import ReslabError
from reslab.training.config import build_config
from reslab.training.optim import make_optimizer
from reslab.training.schedule import Schedule, flat_cos_lr, onecycle_lr


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def _optim(**over):
    net = _net()
    net(torch.zeros(1, 3, 5, 5))
    return make_optimizer(net, build_config("default", over).optim)


def test_adamw_with_no_decay_on_bn_and_bias():
    opt = _optim(**{"optim.name": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 0.05,
                    "optim.decay_norm_and_bias": False, "optim.betas": "[0.9, 0.99]", "optim.eps": 1e-6})
    assert isinstance(opt, torch.optim.AdamW)
    decays = {tuple(p.shape): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays[(4, 3, 3, 3)] == 0.05 and decays[(2, 36)] == 0.05          # conv and linear weights
    assert decays[(4,)] == 0.0 and decays[(2,)] == 0.0                        # BN weight/bias, linear bias
    assert opt.defaults["betas"] == (0.9, 0.99) and opt.defaults["eps"] == 1e-6


def test_nesterov_sgd_keeps_the_decay_groups():
    opt = _optim(**{"optim.nesterov": True, "optim.decay_norm_and_bias": False})
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 5e-4]  # the default recipe's decay


def _torch_onecycle(total, max_lr, **kw):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, **kw)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("total,kw", [(100, {}), (37, {"pct_start": 0.25}), (500, {"div_factor": 10.0,
                                      "final_div_factor": 100.0}), (60, {"anneal_strategy": "linear"})])
def test_onecycle_is_torchs_onecycle(total, kw):
    ref = _torch_onecycle(total, 0.4, **kw)
    ours = [onecycle_lr(s, 0.4, total, kw.get("pct_start", 0.3), kw.get("div_factor", 25.0),
                        kw.get("final_div_factor", 1e4), {"linear": "linear"}.get(kw.get("anneal_strategy"), "cos"))
            for s in range(total)]
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)


def _fastai_flat_cos(pos, lr, pct, end):
    """fastai's combined_cos(pct, lr, lr, end) = combine_scheds([pct, 1 - pct], [SchedCos(lr, lr), SchedCos(lr, end)])."""
    def sched_cos(start, stop, p):
        return start + (1 + math.cos(math.pi * (1 - p))) * (stop - start) / 2
    pcts = [0.0, pct, 1.0]
    idx = max(i for i, c in enumerate(pcts) if pos >= c)
    idx = min(idx, 1)
    actual = (pos - pcts[idx]) / (pcts[idx + 1] - pcts[idx])
    return sched_cos(lr, lr, actual) if idx == 0 else sched_cos(lr, end, actual)


@pytest.mark.parametrize("pct,end", [(0.72, 0.0), (0.75, 1e-5), (0.5, 0.01)])
def test_flat_cos_is_fastais_rule(pct, end):
    total = 250
    for s in range(total):
        assert flat_cos_lr(s, 0.3, total, pct, end) == pytest.approx(_fastai_flat_cos(s / total, 0.3, pct, end),
                                                                      rel=1e-12, abs=1e-15), s
    assert flat_cos_lr(0, 0.3, total, pct, end) == 0.3 and flat_cos_lr(total - 1, 0.3, total, pct, end) < 0.3 * 1e-3 + end


def test_schedule_dispatch_and_warmup():
    s = Schedule("flat_cos", 0.1, 100, warmup_steps=10, warmup_mode="linear", flat_pct=0.5)
    assert s(0) == pytest.approx(0.01) and s(10) == 0.1 and s(49) == 0.1 and s(75) < 0.1
    oc = Schedule("onecycle", 0.1, 100)
    assert oc(0) == pytest.approx(0.1 / 25) and oc(29) == pytest.approx(0.1) and oc(99) == pytest.approx(0.1 / 25 / 1e4)


def test_new_fields_round_trip_and_defaults():
    c = build_config("default", {"optim.name": "adamw", "schedule.name": "onecycle", "schedule.warmup_steps": 0,
                                 "data.mixup": 0.2,
                                 "data.auto_augment": "trivial", "data.progressive": 96, "data.progressive_end": 4})
    assert c.optim.betas == [0.9, 0.999] and c.schedule.pct_start == 0.3 and c.schedule.flat_pct == 0.72
    assert (c.data.mix_prob, c.data.mix_switch_prob, c.data.randaugment_n, c.data.randaugment_m) == (1.0, 0.5, 2, 9)


@pytest.mark.parametrize("over,msg", [
    ({"optim.name": "lamb"}, "optim.name='lamb' is invalid; choose one of sgd, adamw"),
    ({"schedule.name": "flatcos"}, "choose one of"), ({"data.auto_augment": "auto"}, "none, trivial, randaugment"),
    ({"data.mixup": -1}, "data.mixup=-1.0 must be >= 0"), ({"data.mix_prob": 2}, "data.mix_prob=2.0 must be in [0, 1]"),
    ({"data.randaugment_m": 31}, "must be in [0, 30]"), ({"data.random_erasing": 1.5}, "must be in [0, 1]"),
    ({"data.erasing_mode": "noise"}, "pixel, const, rand"),
    ({"data.progressive": 96}, "data.progressive_end=0 must be > data.progressive_start"),
    ({"optim.betas": "[0.9]"}, "two numbers"), ({"optim.eps": 0}, "optim.eps=0.0 must be > 0"),
    ({"schedule.pct_start": 1.0}, "must be in (0, 1)"), ({"schedule.flat_pct": -0.1}, "must be in [0, 1]"),
    ({"schedule.name": "onecycle", "schedule.warmup_steps": 100}, "set schedule.warmup_steps 0")])
def test_invalid_new_fields_are_one_line_errors(over, msg):
    with pytest.raises(ReslabError) as e:
        build_config("default", over)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_imagenette_recipe_is_a_valid_starting_point():
    c = build_config("imagenette")
    assert (c.data.input, c.data.crop, c.schedule.epochs, c.optim.label_smoothing) == ("whole", 128, 5.0, 0.1)
    assert c.schedule.name == "flat_cos" and c.optim.name == "ranger" and c.data.mixup == 0 and c.data.cutmix == 0
    assert not c.optim.decay_norm_and_bias and c.model.startswith("resnet")


def test_ranger_is_radam_inside_lookahead_and_resumes_exactly():
    """optim.name ranger: RAdam (decoupled decay) whose weights are pulled back to slow weights every k steps
    by alpha (Zhang et al. 2019), checked against the rule written out by hand; its state round-trips."""
    import copy
    from types import SimpleNamespace

    from reslab.training.optim import make_optimizer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    ref = copy.deepcopy(model)
    oc = SimpleNamespace(name="ranger", lr=0.05, weight_decay=0.01, decay_norm_and_bias=False, betas=[0.95, 0.99],
                         eps=1e-6, lookahead_k=3, lookahead_alpha=0.5, momentum=0.9, nesterov=False)
    opt = make_optimizer(model, oc)
    groups = [{"params": [p for p in ref.parameters() if p.ndim > 1], "weight_decay": 0.01},
              {"params": [p for p in ref.parameters() if p.ndim == 1], "weight_decay": 0.0}]
    inner = torch.optim.RAdam(groups, lr=0.05, betas=(0.95, 0.99), eps=1e-6, decoupled_weight_decay=True)
    slow = [p.detach().clone() for p in ref.parameters()]
    x, y = torch.randn(16, 4), torch.randn(16, 3)
    for t in range(1, 8):
        for m, o in ((model, opt), (ref, inner)):
            o.zero_grad()
            (m(x) - y).pow(2).mean().backward()
            o.step()
        if t % 3 == 0:
            with torch.no_grad():
                for s, p in zip(slow, ref.parameters()):
                    s += 0.5 * (p - s)
                    p.copy_(s)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), ref.parameters()))
    again = make_optimizer(copy.deepcopy(model), oc)
    again.load_state_dict(opt.state_dict())
    assert again.steps == 7 and all(torch.equal(a, b) for a, b in zip(again.slow[0], opt.slow[0]))
