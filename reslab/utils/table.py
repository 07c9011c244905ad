"""Plain-text tables for the terminal."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], right: Sequence[str] = ()) -> str:
    """columns: (key, header) pairs; keys listed in `right` are right-aligned (numbers)."""
    cells = [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    headers = [h for _, h in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        out = []
        for (key, _), v, w in zip(columns, values, widths):
            out.append(v.rjust(w) if key in right else v.ljust(w))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])


def human(n: float, digits: int = 2) -> str:
    """12_345_678 -> '12.35M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return str(int(n))
