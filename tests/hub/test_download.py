"""Pretrained weights over a loopback HTTP server: download with progress, cache hits, hash checks of
downloaded and cached files, dropped connections, 404s, no network; a Hugging Face cache used offline."""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from reslab import ReslabError, create_model
from reslab.hub import WeightSet, open_checkpoint, register_weights, unregister_weights

CIFAR_PRE = {"resize": 32, "crop": 32, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
             "std": [0.229, 0.224, 0.225]}


class Server:
    """Serves `files` (name -> bytes); `mode` "drop" sends half a file then closes; counts GETs."""

    def __init__(self):
        self.files, self.mode, self.gets = {}, "ok", 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.gets += 1
                name = self.path.rsplit("/", 1)[-1]
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.mode == "drop" else body)
                if outer.mode == "drop":
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/weights/{name}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    server = Server()
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    # the community (akamaster) layout: DataParallel prefix, `linear` head, nested in a training checkpoint
    state = {f"module.{k.replace('fc.', 'linear.')}": v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    src = tmp_path / "src.th"
    torch.save({"state_dict": state, "best_prec1": 91.0}, src)
    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"tinynet-{digest[:8]}.th"
    server.files[name] = data
    ws = register_weights(WeightSet(arch="resnet20", tag="loopback", source="test", url=server.url(name),
                                    sha256=digest, top1=90.0, eval_data="-", preprocess=CIFAR_PRE, classes="cifar10",
                                    license="mit", aliases=("loopback",)))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    yield {"server": server, "ws": ws, "model": model, "name": name, "cache": cache, "data": data}
    unregister_weights(ws.name)
    server.stop()


def _logits_equal(net, reference):
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference(x))


def test_download_progress_cache_hit_and_same_model(env, capfd):
    net = create_model("resnet20", weights="resnet20.loopback")
    _logits_equal(net, env["model"])
    assert (env["cache"] / env["name"]).is_file() and env["server"].gets == 1
    assert "%" in capfd.readouterr().err  # torch.hub's progress bar
    net2 = create_model("resnet20", weights="loopback")  # the alias, for this architecture; a cache hit
    _logits_equal(net2, env["model"])
    assert env["server"].gets == 1
    env["server"].stop()  # offline from here on: the cached, verified file still serves
    _logits_equal(create_model("resnet20", weights="resnet20.loopback"), env["model"])
    meta = open_checkpoint("resnet20.loopback").checkpoint
    assert meta.classes[0] == "airplane" and meta.preprocess["input_size"] == 32


def _left_in_cache(cache: Path):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_a_file_whose_hash_does_not_match_is_refused_and_not_cached(env):
    env["server"].files[env["name"]] = env["data"][:-10] + b"0123456789"
    with pytest.raises(ReslabError, match="downloaded from .* does not match its sha256"):
        open_checkpoint("resnet20.loopback")
    assert _left_in_cache(env["cache"]) == []


def test_a_server_that_drops_mid_file_leaves_nothing(env):
    env["server"].mode = "drop"
    with pytest.raises(ReslabError):
        open_checkpoint("resnet20.loopback")
    assert _left_in_cache(env["cache"]) == []


def test_404_and_no_server_are_one_line_errors_naming_where_to_put_the_file(env):
    env["server"].files.clear()
    with pytest.raises(ReslabError, match="HTTP 404"):
        open_checkpoint("resnet20.loopback")
    env["server"].stop()
    with pytest.raises(ReslabError, match=f"without a network, put the file at {env['cache'] / env['name']}"):
        open_checkpoint("resnet20.loopback")
    assert _left_in_cache(env["cache"]) == []


def test_a_cached_file_corrupted_later_is_detected(env):
    open_checkpoint("resnet20.loopback")
    cached = env["cache"] / env["name"]
    blob = bytearray(cached.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cached.write_bytes(bytes(blob))
    with pytest.raises(ReslabError, match="cached file .* does not match its sha256 .* delete it"):
        open_checkpoint("resnet20.loopback")


def test_files_already_in_torch_hubs_cache_are_used_offline(env):
    env["cache"].mkdir(parents=True)
    (env["cache"] / env["name"]).write_bytes(env["data"])  # e.g. downloaded earlier by torchvision
    env["server"].stop()
    _logits_equal(create_model("resnet20", weights="resnet20.loopback"), env["model"])


HF_SCRIPT = r"""
import json, sys, time, torch
from reslab import create_model, ReslabError
from reslab.hub import WeightSet, register_weights
out = {}
pre, digest = json.loads(sys.argv[1]), sys.argv[2]
register_weights(WeightSet(arch="resnet20", tag="pinned", source="test", hf_hub="someone/resnet20.pinned", sha256=digest,
                           top1=90.0, preprocess=pre, classes="cifar10", license="mit"))
register_weights(WeightSet(arch="resnet20", tag="unpinned", source="test", hf_hub="someone/resnet20.unpinned",
                           top1=90.0, preprocess=pre, classes="cifar10", license="mit"))
torch.manual_seed(0)
x = torch.randn(2, 3, 32, 32)
for spec in ("hf-hub:someone/resnet20.pinned", "resnet20.pinned", "resnet20.unpinned", "hf-hub:someone/resnet20.unlisted",
             "hf-hub:someone/resnet20.absent"):
    t0 = time.time()
    try:
        net = create_model("resnet20", weights=spec).eval()
        out[spec] = net(x).tolist()
    except ReslabError as e:
        out[spec] = "error: " + str(e)
    out[spec + " s"] = time.time() - t0
out["x"] = x.tolist()
print(json.dumps(out))
"""


def _hf_cache(root: Path, repo: str, payload: bytes, corrupt: bool = False, symlinks: bool = True) -> Path:
    """huggingface_hub's cache layout: blobs/<sha256>, refs/main, snapshots/<commit>/model.safetensors (a
    symlink to the blob; without symlinks, as on Windows or with HF_HUB_DISABLE_SYMLINKS, the file itself)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    digest = hashlib.sha256(payload).hexdigest()
    commit = "0123456789abcdef0123456789abcdef01234567"
    data = payload if not corrupt else payload[:-1] + b"\0"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    if not symlinks:
        (snap / "model.safetensors").write_bytes(data)
        return snap / "model.safetensors"
    (folder / "blobs").mkdir()
    (folder / "blobs" / digest).write_bytes(data)
    os.symlink(f"../../blobs/{digest}", snap / "model.safetensors")
    return folder / "blobs" / digest


@pytest.mark.parametrize("corrupt,symlinks", [(False, True), (True, True), (False, False), (True, False)],
                         ids=["intact", "corrupt", "intact-nosymlinks", "tampered-nosymlinks"])
def test_hugging_face_cache_offline(tmp_path, corrupt, symlinks):
    """Registered sets are verified against the registry's hash however they arrive (a set without one is
    refused); an unlisted Hub id is checked against its blob's name where the cache keeps one; an uncached
    id offline fails at once, naming the cache."""
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (pip install 'reslab[hub]')")
    from safetensors.torch import save

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    payload = save({k: v.contiguous() for k, v in model.state_dict().items()})  # timm layout = torchvision names
    files = [_hf_cache(tmp_path / "hf", repo, payload, corrupt, symlinks)
             for repo in ("someone/resnet20.pinned", "someone/resnet20.unpinned", "someone/resnet20.unlisted")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", HF_SCRIPT, json.dumps(CIFAR_PRE), hashlib.sha256(payload).hexdigest()],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    x = torch.tensor(res.pop("x"))
    with torch.no_grad():
        expected = model(x)

    def loaded(spec):
        torch.testing.assert_close(torch.tensor(res[spec]), expected, msg=spec)

    def refused(spec, why):
        assert isinstance(res[spec], str) and why in res[spec], (spec, res[spec])

    refused("resnet20.unpinned", "cannot be verified")  # a registered name never loads an unchecked file
    refused("hf-hub:someone/resnet20.absent", "is not in the local Hugging Face cache")
    assert res["hf-hub:someone/resnet20.absent s"] < 5  # at once, not after minutes of retries
    if not corrupt:
        loaded("hf-hub:someone/resnet20.pinned"), loaded("resnet20.pinned"), loaded("hf-hub:someone/resnet20.unlisted")
        if not symlinks:
            assert "loading it unverified" in out.stderr  # said out loud
        return
    refused("hf-hub:someone/resnet20.pinned", "does not match its sha256")  # the registry's hash catches it
    assert not files[0].exists()  # and the file that failed is not left in the cache
    if symlinks:  # the blob's name (the Hub's sha256) catches it too
        refused("hf-hub:someone/resnet20.unlisted", "does not match its sha256")
    else:  # nothing to check an unlisted id against: loaded, with a warning (as the user asked for that file)
        assert "loading it unverified" in out.stderr


def test_missing_huggingface_hub_is_a_one_line_install_hint(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_hub(name, *a, **k):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(ReslabError, match=r"needs huggingface_hub: pip install 'reslab\[hub\]'"):
        open_checkpoint("hf-hub:someone/resnet20.anything")
