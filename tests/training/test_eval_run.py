"""`reslab eval` on a run reproduces the run's own figures, and never writes into a checkpoint."""
import json

import pytest
import torch
from safetensors.torch import load_file

from reslab import ReslabError, read_checkpoint
from reslab.data.sources import load_data
from reslab.training import build_config, train
from reslab.training.eval_run import evaluate_checkpoint
from reslab.training.setup import _load_data_rank0_first

FAST = {"model": "resnet20", "model_args.depth": 8, "batch_size": 32, "run.progress": False,
        "schedule.steps": 60, "run.eval_every": 30, "run.tensorboard": False}


def _train(tmp_path, name, **over):
    return train(build_config("default", {**FAST, "run.out": str(tmp_path), "run.name": name, **over}))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_eval_of_a_run_reproduces_its_final_and_best_error_exactly(tmp_path, ema):
    r = _train(tmp_path, f"ema{ema}", **{"optim.ema_decay": ema})
    last = tmp_path / f"ema{ema}" / "checkpoints" / "last"
    assert evaluate_checkpoint(str(last)).result.top1_err == r.final["test/top1_err"]
    assert evaluate_checkpoint(str(r.dir)).result.top1_err == r.best_err  # a run folder: its best checkpoint
    meta = read_checkpoint(last / "model.safetensors").metadata
    assert meta["weights"] == ("ema" if ema else "raw")
    raw = torch.load(last / "state.pt", weights_only=True)["raw_model"]
    if ema:  # the file holds the averaged weights; the raw ones (to resume) are in state.pt, and they differ
        saved = load_file(str(last / "model.safetensors"))
        assert any(not torch.equal(saved[k], raw[k]) for k in saved if saved[k].is_floating_point())
    else:
        assert raw is None


def test_eval_writes_under_the_run_folder_not_into_the_checkpoint(tmp_path):
    r = _train(tmp_path, "out")
    rep = evaluate_checkpoint(str(r.dir))
    step = (r.dir / "checkpoints" / "best").resolve().name
    assert rep.out == r.dir / "eval" / step
    assert (rep.out / "confusion_test.png").is_file() and (rep.out / "metrics_test.json").is_file()
    assert sorted(p.name for p in (r.dir / "checkpoints" / step).iterdir()) == ["model.safetensors", "state.pt"]


def test_val_split_is_refused_when_absent_and_reproduced_when_the_run_held_one_out(tmp_path):
    plain = _train(tmp_path, "noval")
    with pytest.raises(ReslabError, match="has no val split .*pass --val-split"):
        evaluate_checkpoint(str(plain.dir), split="val")
    held = _train(tmp_path, "val", **{"data.val_split": 300})
    assert "val/top1_err" in held.final
    again = evaluate_checkpoint(str(held.dir / "checkpoints" / "last"), split="val")
    assert again.result.n == 300 and again.result.top1_err == held.final["val/top1_err"]


def test_other_data_goes_through_the_checkpoints_own_evaluation_transform(tmp_path, cifar_small):
    from tests.data.test_cifar import write_cifar10
    r = _train(tmp_path, "small", **{"data.source": str(cifar_small), "data.cache_size": 16, "schedule.steps": 10})
    pre = json.loads(read_checkpoint(r.dir / "checkpoints/last/model.safetensors").metadata["preprocess"])
    assert (pre["input_size"], pre["resize"]) == (16, 16)  # trained on 16-pixel images
    write_cifar10(tmp_path / "cifar")  # official format: always 32x32, same class names: resized to 16 as recorded
    assert evaluate_checkpoint(str(r.dir), f"cifar10:{tmp_path / 'cifar'}").result.n == 20


def test_the_validation_split_follows_data_seed_not_run_seed(tmp_path):
    def val_labels(**over):
        c = build_config("default", {**FAST, "data.val_split": 200, **over})
        return _load_data_rank0_first(c).val.labels

    assert torch.equal(val_labels(**{"run.seed": 0}), val_labels(**{"run.seed": 5}))  # seeds share one split
    assert not torch.equal(val_labels(**{"data.seed": 0}), val_labels(**{"data.seed": 1}))
    assert torch.equal(val_labels(**{"data.seed": 1}), load_data("digits", val_split=200, seed=1).val.labels)


def test_eval_without_data_uses_what_the_checkpoint_was_trained_on(tmp_path):
    r = _train(tmp_path, "d")
    rep = evaluate_checkpoint(str(r.dir))
    assert rep.classes == [str(i) for i in range(10)]
    assert json.loads((rep.out / "metrics_test.json").read_text())["images"] == 359


def test_ten_crop_evaluation_averages_the_logits_of_the_ten_crops():
    from reslab import create_model
    from reslab.data.sources import Split
    from reslab.training.evaluate import evaluate
    torch.manual_seed(0)
    model = create_model("resnet20", depth=8, num_classes=4).eval()
    images = torch.randint(0, 256, (6, 3, 20, 22), dtype=torch.uint8)
    split = Split(images, torch.tensor([0, 1, 2, 3, 0, 1]), "test")
    prepare = lambda x: x.float() / 255  # noqa: E731
    res = evaluate(model, split, 4, prepare, torch.device("cpu"), batch_size=4, ten_crop_size=16)
    x = prepare(images)
    boxes = [(0, 0), (0, 6), (4, 0), (4, 6), (2, 3)]  # corners and centre of a 20 x 22 image, crop 16
    crops = [x[:, :, t:t + 16, l:l + 16] for t, l in boxes]
    crops += [c.flip(-1) for c in crops]
    with torch.no_grad():
        logits = torch.stack([model(c) for c in crops]).mean(0)
    expected_loss = torch.nn.functional.cross_entropy(logits, split.labels).item()
    assert res.loss == pytest.approx(expected_loss, rel=1e-5)
    assert res.top1 == pytest.approx((logits.argmax(1) == split.labels).double().mean().item())


def test_eval_uses_the_runs_evaluation_subset_and_refuses_seeds_with_resume(tmp_path):
    r = _train(tmp_path, "sub", **{"data.eval_subset": 50})
    rep = evaluate_checkpoint(str(r.dir / "checkpoints" / "last"))
    assert rep.result.n == 50 and rep.result.top1_err == r.final["test/top1_err"]
    from reslab.cli.main import main
    assert main(["train", "--resume", str(r.dir), "--seeds", "0,1"]) == 2
