"""Checkpoints: torchvision/timm layouts (.pth, .safetensors), reslab's own format, bad and hostile files."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from reslab import ReslabError, create_model, load_model, save_weights
from reslab.models.weights import read_checkpoint

from .reference_nets import randomise_bn, torchvision_resnet

ECOSYSTEM = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]


@pytest.mark.parametrize("name", ECOSYSTEM)
def test_torchvision_layout_has_identical_keys_and_shapes(name):
    with torch.device("meta"):
        ref = torchvision_resnet(name).state_dict()
        own = create_model(name).state_dict()
    assert list(ref) == list(own)
    assert all(ref[k].shape == own[k].shape for k in ref)


@pytest.mark.parametrize("name,fmt", [("resnet18", "pth"), ("resnet50", "safetensors"),
                                      ("resnext50_32x4d", "pth"), ("resnet34", "safetensors")])
def test_torchvision_checkpoint_loads_and_computes_the_same_function(tmp_path, name, fmt):
    ref = randomise_bn(torchvision_resnet(name)).eval()
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "pth":
        torch.save(ref.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    model = create_model(name, weights=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)


def test_timm_training_checkpoint_with_nested_state_dict_and_prefixes(tmp_path):
    ref = randomise_bn(torchvision_resnet("resnet18")).eval()
    wrapped = {"epoch": 3, "arch": "resnet18", "state_dict": {f"module._orig_mod.{k}": v for k, v in ref.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pth.tar")
    model = create_model("resnet18", weights=tmp_path / "ckpt.pth.tar").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)


def test_new_head_when_num_classes_differs(tmp_path):
    ref = torchvision_resnet("resnet18")
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    model = create_model("resnet18", num_classes=10, weights=tmp_path / "r18.pth")
    assert model.fc.out_features == 10
    torch.testing.assert_close(model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)


def test_in_chans_adapted_from_rgb_weights(tmp_path):
    ref = torchvision_resnet("resnet18")
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    gray = create_model("resnet18", in_chans=1, weights=tmp_path / "r18.pth")
    torch.testing.assert_close(gray.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("in_chans", [1, 4])
def test_in_chans_adaptation_of_fp16_weights_is_computed_in_fp32(tmp_path, in_chans):
    ref = torchvision_resnet("resnet18")
    torch.save({k: v.half() for k, v in ref.state_dict().items()}, tmp_path / "r18_fp16.pth")
    model = create_model("resnet18", in_chans=in_chans, weights=tmp_path / "r18_fp16.pth")
    w = ref.conv1.weight.detach().half().float()  # what the file holds, read exactly
    want = w.sum(1, keepdim=True) if in_chans == 1 else torch.cat([w, w[:, :1]], 1) * (3 / 4)
    assert model.conv1.weight.dtype == torch.float32
    torch.testing.assert_close(model.conv1.weight.detach(), want, rtol=0, atol=1e-7)


def test_mismatch_gives_a_one_line_diff(tmp_path):
    torch.save(create_model("resnet20").state_dict(), tmp_path / "r20.pth")
    with pytest.raises(ReslabError) as e:
        create_model("resnet32", weights=tmp_path / "r20.pth")
    msg = str(e.value)
    assert "\n" not in msg and "missing (layer1.3.conv1.weight" in msg
    torch.save({"conv1.weight": torch.zeros(16, 3, 5, 5), "extra.w": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(ReslabError, match=r"unexpected \(extra.w\).*wrong shape \(conv1.weight: checkpoint \[16, 3, 5, 5\] vs model \[16, 3, 3, 3\]"):
        create_model("resnet20", weights=tmp_path / "odd.pth")


def test_the_number_of_classes_follows_the_weights_unless_given(tmp_path):
    torch.save(create_model("resnet20", num_classes=3).state_dict(), tmp_path / "r20_3.pth")
    assert create_model("resnet20", weights=tmp_path / "r20_3.pth").cfg.num_classes == 3
    assert create_model("resnet20", weights=tmp_path / "r20_3.pth", num_classes=5).cfg.num_classes == 5  # new head


def test_reslab_format_round_trip_rebuilds_the_model(tmp_path):
    m = create_model("preact_resnet110", depth=20, num_classes=4, drop_path_rate=0.1).eval()
    save_weights(m, tmp_path / "m.safetensors", name="preact_resnet110", extra={"classes": ["a", "b", "c", "d"]})
    ckpt = read_checkpoint(tmp_path / "m.safetensors")
    assert ckpt.source == "reslab" and ckpt.metadata["model"] == "preact_resnet110"
    again = load_model(tmp_path / "m.safetensors").eval()
    assert again.cfg == m.cfg
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), m(x), rtol=0, atol=0)


def test_load_model_needs_reslab_metadata(tmp_path):
    torch.save(create_model("resnet20").state_dict(), tmp_path / "plain.pth")
    with pytest.raises(ReslabError, match="carries no reslab model config"):
        load_model(tmp_path / "plain.pth")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    with pytest.raises(ReslabError, match="refusing to load") as e:
        create_model("resnet20", weights=path)
    assert not marker.exists()
    msg = str(e.value)  # the whole refusal, in reslab's words (not torch's message cut mid-sentence)
    assert "system" in msg and "can run arbitrary code" in msg and "weights_only=True" in msg and "\n" not in msg
    assert "Re-running" not in msg and msg.endswith("as safetensors")
    # a raw pickle (not torch's zip format) is refused too
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(ReslabError):
        create_model("resnet20", weights=tmp_path / "raw.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, fmt):
    path = tmp_path / f"r20.{fmt}"
    m = create_model("resnet20")
    if fmt == "pth":
        torch.save(m.state_dict(), path)
    else:
        save_weights(m, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReslabError, match="corrupt or truncated"):
        create_model("resnet20", weights=path)


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"hello world, not a checkpoint", "not a readable"),
                                             (None, "no weights at")])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "w.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReslabError, match=message):
        create_model("resnet20", weights=path)


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ReslabError, match="holds no state dict"):
        create_model("resnet20", weights=tmp_path / "list.pth")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_weights(create_model("resnet20"), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(ReslabError, match="disk full"):
        save_weights(create_model("resnet20"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
