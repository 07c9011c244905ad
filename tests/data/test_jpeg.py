"""The two JPEG decoders of the whole-image path give the same pixels; Pillow decides on odd files."""
import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reslab import ReslabError
from reslab.data import jpeg
from reslab.data.crops import sample_crop
from reslab.data.whole import decode_crop

SHARED_VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenette-224-val.tar"
needs_simplejpeg = pytest.mark.skipif(jpeg.simplejpeg is None, reason="simplejpeg is not installed (pip install reslab[fast])")


def _photo(w, h, seed=0, mode="RGB", subsampling=2, quality=90, progressive=False) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BICUBIC).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, progressive=progressive,
             **({"subsampling": subsampling} if mode == "RGB" else {}))
    return buf.getvalue()


def _pillow(data: bytes, want: tuple[int, int] | None = None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if want:
        img.draft("RGB", want)
    return np.asarray(img.convert("RGB"))


def test_draft_scale_is_pillows_choice():
    rng = np.random.default_rng(0)
    for _ in range(60):
        w, h = int(rng.integers(40, 900)), int(rng.integers(40, 900))
        want = (int(rng.integers(1, 2 * w)), int(rng.integers(1, 2 * h)))  # above the size: upsampled crops
        img = Image.open(io.BytesIO(_photo(w, h, subsampling=0, quality=50)))
        img.draft("RGB", want)
        s = jpeg.draft_scale(w, h, *want)
        assert img.size == (math.ceil(w / s), math.ceil(h / s)), (w, h, want, s, img.size)


@needs_simplejpeg
@pytest.mark.parametrize("mode,subsampling,progressive", [("RGB", 0, False), ("RGB", 1, False), ("RGB", 2, False),
                                                          ("L", 0, False), ("RGB", 2, True), ("RGB", 0, True)])
def test_simplejpeg_gives_pillows_pixels_at_every_dct_scale(mode, subsampling, progressive):
    for w, h in ((500, 375), (333, 500), (1999, 1501)):
        data = _photo(w, h, seed=w, mode=mode, subsampling=subsampling, progressive=progressive)
        for s in (1, 2, 4, 8):
            want = (math.ceil(w / s), math.ceil(h / s))
            got = jpeg.decode_scaled(data, lambda hh, ww: (None, *want))
            assert got is not None and got[1] == (w, h)
            assert np.array_equal(got[0], _pillow(data, want)), (mode, subsampling, w, h, s)


@needs_simplejpeg
def test_simplejpeg_gives_pillows_pixels_on_real_photos():
    if not SHARED_VAL.exists():
        pytest.skip(f"{SHARED_VAL} is absent (the shared data sits beside the project)")
    with tarfile.open(SHARED_VAL) as tar:
        blobs = [tar.extractfile(m).read() for m in tar.getmembers()[:400] if m.isfile()][:60]
    for i, data in enumerate(blobs):  # 224-pixel Imagenette files, and each at 500x375 re-encoded
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((500, 375), Image.BICUBIC)
        big = io.BytesIO()
        img.save(big, format="JPEG", quality=85)
        for d, want in ((data, (224, 224)), (data, (112, 112)), (big.getvalue(), (240, 180))):
            got = jpeg.decode_scaled(d, lambda hh, ww: (None, *want))
            assert got is not None and np.array_equal(got[0], _pillow(d, want)), i


def _crops(data_or_path, n=12, size=64):
    return [decode_crop(data_or_path() if callable(data_or_path) else data_or_path,
                        lambda h, w, i=i: sample_crop("rrc", 0, 0, i, h, w, size), size) for i in range(n)]


@needs_simplejpeg
def test_decode_crop_is_the_same_with_either_decoder(tmp_path, monkeypatch):
    files = {"photo.jpg": _photo(1200, 900, 1), "gray.jpg": _photo(640, 480, 2, mode="L"),
             "cmyk.jpg": _photo(300, 200, 3, mode="CMYK")}
    png = io.BytesIO()
    Image.open(io.BytesIO(_photo(300, 200, 4))).save(png, format="PNG")
    files["image.png"] = png.getvalue()
    warn = bytearray(files["photo.jpg"])  # extraneous bytes before a marker: libjpeg warns, Pillow decodes
    sos = warn.index(b"\xff\xda")
    files["warning.jpg"] = bytes(warn[:sos] + b"\x00\x00" + warn[sos:])
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    fast = {n: _crops(tmp_path / n) for n in files}
    shard = {n: _crops(lambda d=d: io.BytesIO(d)) for n, d in files.items()}  # the tar-shard reader's file objects
    monkeypatch.setenv("RESLAB_JPEG", "pillow")
    assert not jpeg.fast_decoder()
    for n in files:
        slow = _crops(tmp_path / n)
        assert all(torch.equal(a, b) for a, b in zip(fast[n], slow)), n
        assert all(torch.equal(a, b) for a, b in zip(shard[n], slow)), n


@pytest.mark.parametrize("decoder", ["pillow", "default"])
def test_damaged_jpegs_are_one_line_errors_with_either_decoder(tmp_path, monkeypatch, decoder):
    if decoder == "pillow":
        monkeypatch.setenv("RESLAB_JPEG", "pillow")
    data = _photo(400, 300)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    (tmp_path / "bomb.jpg").write_bytes(_photo(400, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400 * 300 // 3)  # Pillow's decompression-bomb limit
    for name in ("cut.jpg", "junk.jpg", "bomb.jpg"):
        with pytest.raises(ReslabError, match=f"cannot read image .*{name}"):
            decode_crop(tmp_path / name, lambda h, w: sample_crop("rrc", 0, 0, 0, h, w, 64), 64)


def test_without_simplejpeg_pillow_decodes(tmp_path, monkeypatch):
    (tmp_path / "a.jpg").write_bytes(_photo(800, 600, 5))
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    assert not jpeg.fast_decoder() and jpeg.decode_scaled(b"\xff\xd8\xff", lambda h, w: None) is None
    out = _crops(tmp_path / "a.jpg", n=3)
    assert all(o.shape == (3, 64, 64) and o.dtype == torch.uint8 for o in out)
