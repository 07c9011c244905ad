"""Fine-tuning: freezing (weights and BN statistics), the backbone learning-rate multiplier, new heads,
the checkpoint's normalisation, `reslab finetune` and its errors."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from reslab import ReslabError, create_model
from reslab.cli.main import main
from reslab.training import build_config, train
from reslab.training.setup import build_run

QUIET = ["--run.progress", "false", "--run.tensorboard", "false"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A ResNet-8 trained briefly on the bundled digits (10 classes), as the 'pretrained' model."""
    out = tmp_path_factory.mktemp("base")
    res = train(build_config("default", {"model": "resnet20", "model_args.depth": 8, "schedule.steps": 30,
                                         "run.out": str(out), "run.name": "base", "run.progress": False,
                                         "run.tensorboard": False}))
    return res.dir


def _bn_stats(module):
    return [b.clone() for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d) for b in (m.running_mean, m.running_var)]


def test_freeze_fixes_weights_and_bn_statistics_of_the_first_stages():
    m = create_model("resnet20", depth=8).freeze(2)
    frozen = [m.conv1, m.bn1, m.layer1, m.layer2]
    assert all(not p.requires_grad for f in frozen for p in f.parameters())
    assert all(p.requires_grad for p in list(m.layer3.parameters()) + list(m.fc.parameters()))
    m.train()  # what the trainer, DDP and torch.compile call: frozen parts stay in eval mode
    assert all(not mod.training for f in frozen for mod in f.modules()) and m.layer3.training
    before_frozen, before_free = _bn_stats(torch.nn.Sequential(*frozen)), _bn_stats(m.layer3)
    m(torch.randn(8, 3, 16, 16)).sum().backward()
    assert all(torch.equal(a, b) for a, b in zip(before_frozen, _bn_stats(torch.nn.Sequential(*frozen))))
    assert not all(torch.equal(a, b) for a, b in zip(before_free, _bn_stats(m.layer3)))
    assert m.conv1.weight.grad is None and m.layer3[0].conv1.weight.grad is not None


def test_freeze_bn_keeps_every_statistic_but_trains_the_affine_part():
    m = create_model("resnet20", depth=8).freeze(0, bn_stats=True).train()
    before = _bn_stats(m)
    m(torch.randn(8, 3, 16, 16)).sum().backward()
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_stats(m)))
    assert m.bn1.weight.requires_grad and m.bn1.weight.grad is not None


def test_freeze_rejects_more_stages_than_the_model_has():
    with pytest.raises(ReslabError, match="has 3"):
        create_model("resnet20", depth=8).freeze(4)


def test_finetune_new_head_frozen_stages_and_backbone_lr(tmp_path, base_run):
    """A 10-class digits model fine-tuned to a 4-class subset of classes (other names): new head; stem and
    layer1 bit-identical after training; the rest moves; the backbone's lr is 0.1x the head's."""
    cfg = build_config("finetune", {"finetune.weights": str(base_run), "model": "resnet20", "schedule.steps": 6,
                                    "finetune.freeze_stages": 1, "finetune.backbone_lr": 0.1, "run.out": str(tmp_path),
                                    "run.name": "ft", "run.progress": False, "run.tensorboard": False,
                                    "data.source": "digits"})
    run = build_run(cfg, tmp_path / "probe")
    scales = sorted({g["lr_scale"] for g in run.optimizer.param_groups})
    assert scales == [0.1, 1.0]
    head = [g for g in run.optimizer.param_groups if g["lr_scale"] == 1.0]
    assert {id(p) for g in head for p in g["params"]} == {id(p) for p in run.raw_model.fc.parameters()}
    assert all(not p.requires_grad for p in run.raw_model.layer1.parameters())
    res = train(cfg)
    pre = load_file(str(base_run / "checkpoints/last/model.safetensors"))
    post = load_file(str(res.dir / "checkpoints/last/model.safetensors"))
    for k in pre:
        if k.startswith(("conv1.", "bn1.", "layer1.")):
            assert torch.equal(pre[k], post[k]), k
    assert not torch.equal(pre["layer3.0.conv1.weight"], post["layer3.0.conv1.weight"])


def test_finetune_keeps_the_head_for_the_same_classes_and_the_checkpoint_normalisation(tmp_path, base_run):
    cfg = build_config("finetune", {"finetune.weights": str(base_run), "schedule.steps": 1, "run.out": str(tmp_path),
                                    "run.progress": False, "run.tensorboard": False})
    run = build_run(cfg, tmp_path / "r")
    pre = load_file(str(base_run / "checkpoints/best/model.safetensors"))
    assert torch.equal(run.raw_model.fc.weight.detach().cpu(), pre["fc.weight"])
    assert run.raw_model.cfg.layers == (1, 1, 1)  # the recorded architecture (ResNet-8), not the preset's
    meta_pre = json.loads(safe_open(str(base_run / "checkpoints/best/model.safetensors"), "pt").metadata()["preprocess"])
    assert list(run.pipeline.preprocess.mean) == meta_pre["mean"]


def test_finetune_with_new_classes_replaces_the_head(tmp_path, base_run, cifar_small, caplog):
    cfg = build_config("finetune", {"finetune.weights": str(base_run), "schedule.steps": 2, "data.source": str(cifar_small),
                                    "run.out": str(tmp_path), "run.progress": False, "run.tensorboard": False,
                                    "batch_size": 16})
    with caplog.at_level("INFO"):
        run = build_run(cfg, tmp_path / "r")
    assert "same number of classes, different class names" in caplog.text and "another shape" not in caplog.text
    pre = load_file(str(base_run / "checkpoints/best/model.safetensors"))
    assert not torch.equal(run.raw_model.fc.weight.detach().cpu(), pre["fc.weight"])  # same count, other names
    assert torch.equal(run.raw_model.layer3[0].conv1.weight.detach().cpu(), pre["layer3.0.conv1.weight"])


def test_backbone_lr_zero_trains_only_the_classifier(tmp_path, base_run):
    res = train(build_config("finetune", {"finetune.weights": str(base_run), "finetune.backbone_lr": 0.0,
                                          "schedule.steps": 3, "run.out": str(tmp_path), "run.progress": False,
                                          "run.tensorboard": False}))
    pre = load_file(str(base_run / "checkpoints/best/model.safetensors"))
    post = load_file(str(res.dir / "checkpoints/last/model.safetensors"))
    assert all(torch.equal(pre[k], post[k]) for k in pre if not k.startswith("fc."))
    assert not torch.equal(pre["fc.weight"], post["fc.weight"])


def test_cli_finetune_akamaster_checkpoint_on_real_cifar(tmp_path, shared_weights, cifar_small, capsys):
    rc = main(["finetune", "--model", "resnet20", "--weights", str(shared_weights / "resnet20-12fca82f.th"),
               "--data", str(cifar_small), "--steps", "4", "--batch-size", "32", "--freeze-stages", "2",
               "--out", str(tmp_path), "--name", "ft", *QUIET])
    assert rc == 0
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert main(["train", "--model", "resnet20", "--data", str(cifar_small), "--steps", "4", "--batch-size", "32",
                 "--out", str(tmp_path), "--name", "scratch", *QUIET]) == 0
    scratch = json.loads((tmp_path / "scratch" / "summary.json").read_text())
    # the same budget from random weights stays near chance (90 % error); the pretrained start does not
    assert summary["test/top1_err"] < 0.5 < scratch["test/top1_err"]
    meta = safe_open(str(tmp_path / "ft/checkpoints/last/model.safetensors"), "pt").metadata()
    assert json.loads(meta["preprocess"])["mean"] == [0.485, 0.456, 0.406]  # the checkpoint's (ImageNet) statistics


def test_cli_finetune_errors(tmp_path, shared_weights, capsys):
    assert main(["finetune", "--steps", "1"]) == 2
    assert "needs --weights" in capsys.readouterr().err
    assert main(["finetune", "--weights", str(shared_weights / "resnet20-12fca82f.th"), "--steps", "1"]) == 2
    assert "pass --model" in capsys.readouterr().err
    assert main(["finetune", "--weights", str(tmp_path / "nope.pth"), "--model", "resnet20"]) == 2
    assert "no weights at" in capsys.readouterr().err


def test_finetune_resumes_to_the_same_weights(tmp_path, base_run):
    """Resuming a fine-tuning run (frozen stages, backbone lr) from a mid-run checkpoint ends where an
    uninterrupted run ends: the pretrained weights are reloaded, then the checkpoint wins."""
    common = {"finetune.weights": str(base_run), "finetune.freeze_stages": 1, "finetune.backbone_lr": 0.3,
              "schedule.steps": 4, "run.ckpt_every": 2, "run.eval_every": 2, "run.out": str(tmp_path),
              "run.progress": False, "run.tensorboard": False}
    straight = train(build_config("finetune", {**common, "run.name": "straight"}))
    cut = train(build_config("finetune", {**common, "run.name": "cut"}))
    ckpts = cut.dir / "checkpoints"
    import shutil
    shutil.rmtree(ckpts / "step-00000004")
    for link in ("last", "best"):
        (ckpts / link).unlink(missing_ok=True)
        (ckpts / link).symlink_to("step-00000002")
    resumed = train(build_config(str(cut.dir / "config.yaml")), resume=str(cut.dir))
    a = load_file(str(straight.dir / "checkpoints/last/model.safetensors"))
    b = load_file(str(resumed.dir / "checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_param_groups_split_by_weight_decay_and_lr_scale():
    from reslab.training.optim import param_groups
    m = create_model("resnet20", depth=8)
    groups = param_groups(m, 5e-4, decay_norm_and_bias=False, backbone_lr=0.1)
    by_key = {(g["weight_decay"], g["lr_scale"]): g["params"] for g in groups}
    assert set(by_key) == {(5e-4, 0.1), (0.0, 0.1), (5e-4, 1.0), (0.0, 1.0)}
    assert by_key[(5e-4, 1.0)] == [m.fc.weight] and by_key[(0.0, 1.0)] == [m.fc.bias]
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
