"""CIFAR official python format: bytes or str keys, safe unpickling, download with checksum."""
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

from reslab import ReslabError
from reslab.data.archives import safe_extract
from reslab.data.cifar import download_cifar, load_cifar


def write_cifar10(root, n=20, str_keys=False, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    k = (lambda s: s) if str_keys else (lambda s: s.encode())
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {k("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8), k("labels"): list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({k("label_names"): [x.decode() if str_keys else x for x in names]}))
    return folder


@pytest.mark.parametrize("str_keys", [False, True])
def test_reads_official_format(tmp_path, str_keys):
    write_cifar10(tmp_path, str_keys=str_keys)
    x, y, names = load_cifar(tmp_path, "cifar10", "train")
    assert x.shape == (100, 3, 32, 32) and x.dtype.is_floating_point is False and len(y) == 100
    assert names[0] == "airplane" and names[9] == "truck"
    xt, _, _ = load_cifar(tmp_path / "cifar-10-batches-py", "cifar10", "test")
    assert xt.shape == (20, 3, 32, 32)


def test_missing_data_says_what_to_put_where(tmp_path):
    with pytest.raises(ReslabError, match="put the official 'cifar-10-batches-py' folder there"):
        load_cifar(tmp_path, "cifar10")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_hostile_batch_is_refused(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": _Evil()}))
    with pytest.raises(ReslabError, match="refusing to load posix.system|refusing to load os.system|objects other than arrays"):
        load_cifar(tmp_path, "cifar10")


def _archive(tmp_path):
    src = tmp_path / "src"
    write_cifar10(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server on loopback serving files from tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_checksum_and_extracts(tmp_path, server):
    www, base = server
    data = _archive(tmp_path)
    (www / "cifar-10-python.tar.gz").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    folder = download_cifar(tmp_path / "dl", "cifar10", url=f"{base}/cifar-10-python.tar.gz", md5=md5)
    assert (folder / "data_batch_1").is_file()
    assert not list((tmp_path / "dl").glob("*.tar.gz")) and not list((tmp_path / "dl").glob("*.part"))
    x, _, _ = load_cifar(tmp_path / "dl", "cifar10", "train")
    assert len(x) == 100


def test_download_with_wrong_checksum_is_refused(tmp_path, server):
    www, base = server
    (www / "cifar-10-python.tar.gz").write_bytes(_archive(tmp_path))
    with pytest.raises(ReslabError, match="corrupt: md5"):
        download_cifar(tmp_path / "dl", "cifar10", url=f"{base}/cifar-10-python.tar.gz", md5="0" * 32)
    assert not (tmp_path / "dl" / "cifar-10-batches-py").exists()


def test_no_network_is_a_one_line_error(tmp_path, server):
    _, base = server
    with pytest.raises(ReslabError, match="cannot download cifar10 .* put the official") as e:
        download_cifar(tmp_path / "dl", "cifar10", url=f"{base}/missing.tar.gz", md5="0" * 32)
    assert "\n" not in str(e.value)


def test_safe_extract_refuses_path_traversal_and_links(tmp_path):
    for name, kind in [("../evil.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            info.size = 0
            tar.addfile(info, io.BytesIO(b""))
        path = tmp_path / f"bad-{kind!r}.tar"
        path.write_bytes(buf.getvalue())
        with pytest.raises(ReslabError, match="unsafe member"):
            safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
