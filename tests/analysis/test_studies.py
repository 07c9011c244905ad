"""Loss landscapes, lesions and class activation maps, each checked against its definition."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import ReslabError, create_model, save_weights
from reslab.analysis.landscape import loss_landscape, random_direction
from reslab.analysis.lesion import ShortcutOnly, lesioned, path_length_distribution, random_deletions, residual_blocks
from reslab.analysis.paths import RoutedBlock, effective_lengths, gradient_per_path_length, path_gradient, routed
from reslab.cli.main import main
from reslab.inference.cam import class_activation_maps, grad_cam
from reslab.models.layers import ShortcutA


def _trained_like(name, **kw):
    torch.manual_seed(0)
    m = create_model(name, **kw)
    for mod in m.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


def test_directions_are_filter_normalised_and_zero_on_bn_and_biases():
    m = _trained_like("resnet20", depth=8)
    d = random_direction(m, seed=3)
    for name, p in m.named_parameters():
        if p.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            torch.testing.assert_close(d[name].flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
    twin = _trained_like("plain20", depth=8)  # same shapes: the same direction for the same seed (up to scale)
    dt = random_direction(twin, seed=3)
    w = "layer2.0.conv1.weight"
    cos = torch.nn.functional.cosine_similarity(d[w].flatten(1), dt[w].flatten(1), dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos))


def test_the_centre_of_the_landscape_is_the_models_own_loss_and_the_model_is_restored():
    m = _trained_like("resnet20", depth=8)
    x, y = torch.randn(40, 3, 16, 16), torch.randint(0, 10, (40,))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    land = loss_landscape(m, x, y, steps=5, span=0.5, dims=2, batch_size=16, progress=False)
    with torch.no_grad():
        logits = m(x)
    own = torch.nn.functional.cross_entropy(logits, y).item()
    assert land.loss.shape == (5, 5) and land.coords[2] == 0.0
    assert land.loss[2, 2].item() == pytest.approx(own, rel=1e-5)
    assert land.err[2, 2].item() == pytest.approx((logits.argmax(1) != y).float().mean().item())
    assert land.loss.std() > 0  # the other points moved
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    rec = loss_landscape(m, x, y, steps=3, span=0.5, dims=1, bn="recompute", batch_size=40, progress=False)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    import copy
    with torch.no_grad():  # train mode: normalised with the batch's own statistics
        batch_stats = torch.nn.functional.cross_entropy(copy.deepcopy(m).train()(x), y).item()
    assert rec.loss[1].item() == pytest.approx(batch_stats, rel=1e-3)  # running var is the unbiased one
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_deleting_no_block_reproduces_the_model_and_one_block_matches_its_definition():
    m = _trained_like("resnet20", depth=8)  # 3 blocks, option A
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        full = m(x)
        with lesioned(m, []):
            assert torch.equal(m(x), full)
        # block 1 (layer2.0) is a downsampling block: its output becomes relu(option-A shortcut)
        stem = m.maxpool(m.forward_stem(x))
        h1 = m.layer1(stem)
        expected = m.forward_head(m.layer3(torch.relu(ShortcutA(16, 32, 2)(h1))))
        with lesioned(m, [1]):
            torch.testing.assert_close(m(x), expected)
        assert torch.equal(m(x), full)  # restored


def test_preact_projection_and_plain_deletions():
    pre = _trained_like("preact_resnet164", depth=11)  # 1 bottleneck per stage, projection shortcuts
    b = pre.layer2[0]
    x = torch.randn(2, b.bn1.num_features, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ShortcutOnly(b)(x), b.downsample(b.relu(b.bn1(x))))
    plain = _trained_like("plain20", depth=14)
    blk = plain.layer1[1]
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(ShortcutOnly(blk)(x), x)
    down = ShortcutOnly(plain.layer2[0])(x)
    assert down.shape == (2, 32, 4, 4) and torch.equal(down[:, 8:24], x[:, :, ::2, ::2])


def test_random_deletions_and_path_lengths():
    sets = random_deletions(9, 3, draws=5, seed=0)
    assert len(sets) == 5 and len({tuple(s) for s in sets}) == 5 and all(len(s) == 3 for s in sets)
    assert random_deletions(3, 3, draws=5) == [[0, 1, 2]]
    dist = path_length_distribution(4)
    assert dist == [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16]
    assert len(residual_blocks(create_model("resnet56"))) == 27


@pytest.mark.parametrize("name,kw", [("resnet20", {"depth": 8}), ("resnet20", {"depth": 8, "shortcut": "B"}),
                                     ("preact_resnet110", {"depth": 8}),
                                     ("resnet50", dict(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), stem_width=8))])
def test_the_gradients_of_all_paths_sum_to_the_networks_gradient(name, kw):
    """Veit's decomposition, checked exactly: with the forward fixed, the input gradient is the sum over
    the 2^n routings (through F or through the shortcut at each block) of the routed gradients."""
    m = _trained_like(name, **kw).double()
    blocks = residual_blocks(m)
    n = len(blocks)
    assert 3 <= n <= 4
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 10, (6,))
    reference = _trained_like(name, **kw).double()
    seen = {}

    def grab(mod, args):  # the first block's input, as a leaf the gradient is read at
        seen["x"] = args[0].detach().requires_grad_(True)
        return (seen["x"],)
    handle = residual_blocks(reference)[0][2].register_forward_pre_hook(grab)
    full = torch.autograd.grad(torch.nn.functional.cross_entropy(reference(x), y), seen["x"])[0]
    handle.remove()
    paths = [path_gradient(m, x, y, [d for d in range(n) if mask >> d & 1]) for mask in range(2 ** n)]
    torch.testing.assert_close(sum(paths), full)
    with routed(m, [0]):  # the forward values are unchanged by the routing
        torch.testing.assert_close(m(x), reference(x))
    assert not any(isinstance(b, RoutedBlock) for _, _, b in residual_blocks(m))  # the model is restored
    assert paths[0].norm() > 0 and paths[-1].norm() > 0


def test_gradient_per_path_length_rows_and_plain_nets_are_refused():
    m = _trained_like("resnet20", depth=14)  # 6 blocks
    rows = gradient_per_path_length(m, torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), draws=3)
    assert [r["k"] for r in rows] == list(range(7)) and [r["paths"] for r in rows] == [1, 6, 15, 20, 15, 6, 1]
    assert rows[0]["grad_norm_std"] == 0 and rows[3]["grad_norm_std"] > 0  # one path of length 0; 3 draws of k=3
    assert sum(r["share"] for r in rows) == pytest.approx(1)
    lo, hi = effective_lengths(rows, 0.9)
    assert sum(r["share"] for r in rows[lo:hi + 1]) >= 0.9 - 1e-9 and 0 <= lo <= hi <= 6
    with pytest.raises(ReslabError, match="plain net has one path"):
        gradient_per_path_length(_trained_like("plain20", depth=8), torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))


@pytest.mark.parametrize("name,kw", [("resnet20", {"depth": 8}), ("preact_resnet110", {"depth": 8}),
                                     ("resnet50", dict(widths=(8, 8, 16, 16), stem_width=8))])
def test_cam_averaged_over_positions_is_the_logit_minus_the_bias(name, kw):
    m = _trained_like(name, num_classes=7, **kw)
    x = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([[0, 3], [6, 1], [2, 2]])
    cams = class_activation_maps(m, x, classes)
    with torch.no_grad():
        logits = m(x)
    expected = logits.gather(1, classes) - m.fc.bias[classes]
    torch.testing.assert_close(cams.mean(dim=(2, 3)), expected, atol=1e-4, rtol=1e-4)


def test_grad_cam_of_the_last_stage_is_the_rectified_cam():
    m = _trained_like("resnet20", depth=8, num_classes=5)
    x = torch.randn(2, 3, 16, 16)
    classes = torch.tensor([[1, 4], [0, 2]])
    g = grad_cam(m, x, classes, stage=3)
    cam = class_activation_maps(m, x, classes)
    torch.testing.assert_close(g, torch.relu(cam) / (cam.shape[-1] * cam.shape[-2]), atol=1e-5, rtol=1e-4)
    assert grad_cam(m, x, classes, stage=1).shape == (2, 2, 16, 16)
    with pytest.raises(ReslabError, match="stages 1..3"):
        grad_cam(m, x, classes, stage=4)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    assert main(["train", "--model-arg", "depth=8", "--steps", "30", "--out", str(root), "--name", "r",
                 "--run.progress", "false", "--run.tensorboard", "false"]) == 0
    assert main(["train", "--model", "plain20", "--model-arg", "depth=8", "--steps", "30", "--out", str(root),
                 "--name", "p", "--run.progress", "false", "--run.tensorboard", "false"]) == 0
    return root


def test_landscape_command_end_to_end(tiny_run, tmp_path, capsys):
    out = tmp_path / "land"
    assert main(["analyze", "landscape", str(tiny_run / "r"), str(tiny_run / "p"), "--steps", "5", "--images", "64",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "landscape.csv")))
    assert len(rows) == 2 * 25 and {r["model"] for r in rows} == {"resnet20", "plain20"}
    assert (out / "landscape.png").stat().st_size > 10_000 and (out / "landscape_1d.png").is_file()
    assert "local_minima" in (out / "summary.md").read_text() and "resnet20" in capsys.readouterr().out


def test_lesion_command_end_to_end(tiny_run, tmp_path):
    out = tmp_path / "les"
    assert main(["analyze", "lesion", str(tiny_run / "r"), "--images", "5000", "--draws", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "lesion.csv")))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("none") == 1 and kinds.count("single") == 3 and kinds.count("random_k") == 3
    import json
    summary = json.loads((tiny_run / "r" / "summary.json").read_text())
    assert float(rows[0]["top1_err_mean"]) == pytest.approx(summary["test/top1_err"], abs=1e-6)  # nothing deleted
    assert (out / "lesion.png").is_file() and (out / "path_lengths.png").is_file()
    grads = list(csv.DictReader(open(out / "path_gradients.csv")))
    assert [int(r["k"]) for r in grads] == [0, 1, 2, 3] and (out / "path_gradients.png").is_file()
    assert "grad_90%_lengths" in (out / "summary.md").read_text()


def test_predict_cam_writes_one_png_per_image(tmp_path, capsys):
    weights = tmp_path / "m.safetensors"
    save_weights(create_model("resnet20", depth=8), weights, name="resnet20",
                 extra={"classes": [f"c{i}" for i in range(10)],
                        "preprocess": {"mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 32, "crop": 32}})
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    out = tmp_path / "cams"
    assert main(["predict", str(tmp_path / "0.png"), str(tmp_path / "1.png"), "--weights", str(weights), "--cam",
                 "--cam-dir", str(out), "--top-k", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0.cam.png", "1.cam.png"]
    assert main(["predict", str(tmp_path / "0.png"), "--weights", str(weights), "--cam", "--cam-dir", str(out / "g"),
                 "--gradcam-stage", "2"]) == 0
    assert (out / "g" / "0.cam.png").stat().st_size > 5_000
