"""Every image mode Pillow opens decodes to the right 8-bit values; damaged archives are one-line errors
that leave nothing in the cache."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from reslab import ReslabError
from reslab.data.decode import decode_image
from reslab.data.sources import load_data
from tests.conftest import DATA, assert_one_line_error, need

RAMP16 = (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
EXPECTED = ((RAMP16.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_is_scaled_not_saturated(tmp_path, suffix):
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode == "I;16"
    x = decode_image(path)
    assert x.shape == (3, 64, 64) and np.array_equal(x[0].numpy(), EXPECTED) and np.array_equal(x[1], x[2])
    assert 120 < x.float().mean() < 135  # Pillow's convert("RGB") makes this ramp almost all white (255)


def test_32_bit_integer_and_float_images(tmp_path):
    Image.fromarray(RAMP16.astype(np.int32)).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i32.tif").mode == "I"
    assert np.array_equal(decode_image(tmp_path / "i32.tif")[0].numpy(), EXPECTED)
    f = (np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4095)
    Image.fromarray(f).save(tmp_path / "f.tif")
    assert np.array_equal(decode_image(tmp_path / "f.tif")[0].numpy(), np.rint(f.astype(np.float64) * 255))
    Image.fromarray(f * 3).save(tmp_path / "f3.tif")
    with pytest.raises(ReslabError, match="f3.tif: floating-point pixels outside"):
        decode_image(tmp_path / "f3.tif")
    Image.fromarray((RAMP16.astype(np.int32) * 100)).save(tmp_path / "big.tif")
    with pytest.raises(ReslabError, match="outside 0..65535"):
        decode_image(tmp_path / "big.tif")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16B"])
def test_every_8_bit_mode_matches_pillows_rgb(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    big_endian = RAMP16[:20, :24].astype(">u2").tobytes()
    img = rgb.convert(mode) if mode != "I;16B" else Image.frombytes("I;16B", (24, 20), big_endian)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "YCbCr", "I;16B", "LA") else "x.png")
    img.save(path)
    x = decode_image(path)
    assert x.shape == (3, 20, 24)
    if mode == "I;16B":
        assert np.array_equal(x[0].numpy(), EXPECTED[:20, :24])
    else:
        assert np.array_equal(x.permute(1, 2, 0).numpy(), np.asarray(Image.open(path).convert("RGB")))


def _truncated(src, dst, size):
    with open(src, "rb") as f:
        dst.write_bytes(f.read(size))
    return dst


@pytest.mark.parametrize("kind", ["truncated tar", "truncated tar.gz", "text named .tar"])
def test_damaged_archives_are_one_line_errors_and_leave_nothing_in_the_cache(tmp_path, kind):
    if kind == "truncated tar":
        bad = _truncated(need(DATA / "imagenette-224-val.tar"), tmp_path / "trunc.tar", 5_000_000)
    elif kind == "truncated tar.gz":
        bad = _truncated(need(DATA / "cifar10-jpeg.tar.gz"), tmp_path / "trunc.tar.gz", 4_000_000)
    else:
        bad = tmp_path / "notes.tar"
        bad.write_text("these are not the images you are looking for\n" * 100)
    cache = tmp_path / "cache"
    with pytest.raises(ReslabError, match=f"{bad.name} is not a readable tar archive .*Nothing was kept"):
        load_data(str(bad), cache_dir=str(cache))
    leftovers = [p for p in (cache / "extracted").iterdir()] if (cache / "extracted").exists() else []
    assert leftovers == []
    out = subprocess.run([sys.executable, "-m", "reslab", "train", "--data", str(bad), "--data.cache_dir", str(cache)],
                         capture_output=True, text=True, timeout=120)
    assert_one_line_error(out, "is not a readable tar archive")
