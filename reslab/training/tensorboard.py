"""A minimal TensorBoard event-file writer (scalars only), so reslab needs no tensorboard/protobuf.

The format is TFRecord framing (length, masked CRC32C, payload, masked CRC32C) around `Event`
protocol buffers; the few fields used are encoded by hand below. `read_scalars` parses them back.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint((num << 3) | wire) + payload


def _event(wall_time: float, step: int = 0, file_version: str | None = None, summary: bytes | None = None) -> bytes:
    msg = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        v = file_version.encode()
        msg += _field(3, 2, _varint(len(v)) + v)
    if summary is not None:
        msg += _field(5, 2, _varint(len(summary)) + summary)
    return msg


def _scalar_summary(tag: str, value: float) -> bytes:
    t = tag.encode()
    val = _field(1, 2, _varint(len(t)) + t) + _field(2, 5, struct.pack("<f", value))
    return _field(1, 2, _varint(len(val)) + val)


class EventWriter:
    def __init__(self, logdir: str | os.PathLike) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.reslab"
        self.path = Path(logdir) / name
        self._f = open(self.path, "ab")
        self._write(_event(time.time(), file_version="brain.Event:2"))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._f.write(header + struct.pack("<I", _masked(header)) + record + struct.pack("<I", _masked(record)))

    def add_scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        for tag, v in values.items():
            self._write(_event(now, step, summary=_scalar_summary(tag, float(v))))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_scalars(path: str | os.PathLike) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in an event file; checks both CRCs of every record."""
    data, out, i = Path(path).read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        if struct.unpack_from("<I", data, i + 8)[0] != _masked(data[i:i + 8]):
            raise ValueError("bad length CRC")
        rec = data[i + 12:i + 12 + n]
        if struct.unpack_from("<I", data, i + 12 + n)[0] != _masked(rec):
            raise ValueError("bad record CRC")
        i += 16 + n
        step, summary = _parse_event(rec)
        for tag, value in summary:
            out.append((step, tag, value))
    return out


def _read_varint(b: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        c = b[i]
        n |= (c & 0x7F) << shift
        i += 1
        shift += 7
        if not c & 0x80:
            return n, i


def _fields(b: bytes):
    i = 0
    while i < len(b):
        key, i = _read_varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _read_varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        else:
            n, i = _read_varint(b, i)
            v, i = b[i:i + n], i + n
        yield num, v


def _parse_event(rec: bytes) -> tuple[int, list[tuple[str, float]]]:
    step, values = 0, []
    for num, v in _fields(rec):
        if num == 2:
            step = v
        elif num == 5:
            for _, val in _fields(v):
                tag, value = "", 0.0
                for n2, v2 in _fields(val):
                    if n2 == 1:
                        tag = v2.decode()
                    elif n2 == 2:
                        value = struct.unpack("<f", v2)[0]
                values.append((tag, value))
    return step, values
