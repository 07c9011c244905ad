"""One interface on every preset, in the style of timm's model tests: forward, backward, features,
feature_info, TorchScript, torch.export with a dynamic batch, torch.compile(fullgraph=True) with and
without activation checkpointing. Small inputs keep it fast; TorchScript and export, which cost seconds
per model, run on one model of each kind by default, compile on three, and on every preset with `-m slow`."""
import pytest
import torch

from reslab import create_model, list_models

pytestmark = pytest.mark.timeout(900)
PRESETS = list_models()
DEEP = {"resnet1202", "plain1202", "preact_resnet1001"}  # tens of seconds each: with -m slow
# ResNet-C/D presets that differ from resnet50c/resnet50d (default run) in depth alone: with -m slow.
DEEP |= {"resnet101c", "resnet152c", "resnet101d", "resnet152d", "resnet200d"}
# One of each block kind / stem / unit, shallow, for the costly checks in the default run.
KINDS = [("resnet20", {}), ("plain20", {}), ("preact_resnet110", {"depth": 20}), ("preact_resnet164", {"depth": 20}),
         ("resnet18", {}), ("resnet50", {}), ("resnext50_32x4d", {}), ("resnet20", {"unit": "bn_after_add"}),
         ("resnet18d", {}), ("resnetblur50d", {"layers": (1, 1, 1, 1)}),  # deep stem, avg_down, blur-pools
         ("resnetaa50d", {"layers": (1, 1, 1, 1)})]  # average-pool anti-aliasing
# torch.compile costs 15-60 s a model on 2 cores: three kinds by default (basic + option A checkpointed,
# pre-activation bottleneck, ImageNet bottleneck + option B checkpointed), every preset with -m slow.
COMPILE_KINDS = [("resnet20", {"depth": 8}, True), ("preact_resnet164", {"depth": 11}, False),
                 ("resnet50", {"layers": (1, 1, 1, 1)}, True)]


def _presets():
    return [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in PRESETS]


def _input(model, batch=2, size=None):
    size = size or (16 if model.cfg.stem == "cifar" else 32)
    return torch.randn(batch, model.cfg.in_chans, size, size)


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            cache.clear()  # keep at most one (possibly large) model alive
            cache[name] = create_model(name, num_classes=5)
        return cache[name]
    return get


@pytest.mark.parametrize("name", _presets())
def test_forward_backward_features(built, name):
    m = built(name).train()
    x = _input(m)
    y = m(x)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in m.parameters())
    if m.cfg.residual or m.cfg.depth < 200:  # a 1202-layer plain net's gradient overflows at init: degradation itself
        assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    m.zero_grad(set_to_none=True)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m.forward_head(m.forward_features(x)), m(x))
        assert m.forward_head(m.forward_features(x), pre_logits=True).shape == (2, m.num_features)
        maps = m.forward_stages(x, [f["index"] for f in m.feature_info])
    for info, fmap in zip(m.feature_info, maps):
        assert fmap.shape[1] == info["num_chs"] and fmap.shape[-1] == x.shape[-1] // info["reduction"], (name, info)


def _kinds_then_slow():
    fast = [pytest.param(n, kw, id=n + "".join(f"-{k}{v}" for k, v in kw.items())) for n, kw in KINDS]
    return fast + [pytest.param(n, {}, id=f"{n}-full", marks=pytest.mark.slow) for n in PRESETS]


@pytest.mark.parametrize("name,kw", _kinds_then_slow())
def test_torchscript(name, kw):
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, **kw)
    x = _input(m)
    with torch.no_grad():  # BN statistics from one batch: untrained 1,000-layer nets overflow with the initial ones
        m.train()(x)
    m.eval()
    scripted = torch.jit.script(m)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), m(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(scripted.forward_head(scripted.forward_features(x), True),
                                   m.forward_head(m.forward_features(x), pre_logits=True), atol=1e-4, rtol=1e-4)
        assert len(scripted.forward_stages(x, [0, 1])) == 2


@pytest.mark.parametrize("name,kw", _kinds_then_slow())
def test_torch_export_with_dynamic_batch(name, kw):
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, **kw).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(m, (_input(m),), dynamic_shapes=({0: batch},))
    x3 = _input(m, batch=3)
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x3), m(x3), atol=1e-4, rtol=1e-4)


def _compile_cases():
    fast = [pytest.param(n, kw, ck, id=n + "".join(f"-{k}{v}" for k, v in kw.items()) + ("-checkpointed" if ck else ""))
            for n, kw, ck in COMPILE_KINDS]
    slow = [pytest.param(n, {}, ck, id=f"{n}-full" + ("-checkpointed" if ck else ""), marks=pytest.mark.slow)
            for n in PRESETS for ck in (False, True)]
    return fast + slow


@pytest.mark.parametrize("name,kw,checkpointing", _compile_cases())
def test_compile_fullgraph_trains_like_eager(name, kw, checkpointing):
    torch.manual_seed(0)
    eager = create_model(name, num_classes=5, **kw)
    compiled_model = create_model(name, num_classes=5, **kw)
    compiled_model.load_state_dict(eager.state_dict())
    compiled_model.set_grad_checkpointing(checkpointing)
    x = _input(eager, batch=4, size=64 if eager.cfg.stem == "imagenet" else 16)  # BN on > 1 value per channel
    eager.train()(x).square().mean().backward()
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model.train(), fullgraph=True)
    compiled(x).square().mean().backward()
    for (k, a), b in zip(eager.state_dict().items(), compiled_model.state_dict().values()):
        # BN running statistics updated exactly once, also when the segment is recomputed
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=f"{name}: {k} differs")
    for (k, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        assert q.grad is not None, k
        torch.testing.assert_close(p.grad, q.grad, atol=2e-3, rtol=2e-2, msg=f"{name}: grad of {k} differs")
