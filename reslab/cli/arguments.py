"""Argument types and the parser class shared by every `reslab` command: a bad value is one line
on stderr and exit code 2, never a usage dump or a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _integer(text: str, low: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} {rule}")
    return value


def positive(text: str) -> int:
    """An integer >= 1 (batch sizes, counts)."""
    return _integer(text, 1, "must be >= 1")


def positive_or_zero(text: str) -> int:
    return _integer(text, 0, "must be >= 0")


def _number(text: str, ok, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{value:g} {rule}")
    return value


def positive_float(text: str) -> float:
    return _number(text, lambda v: v > 0, "must be > 0")


def non_negative_float(text: str) -> float:
    return _number(text, lambda v: v >= 0, "must be >= 0")


def parse_seeds(text: str | None) -> list[int] | None:
    """"0,1,2" -> [0, 1, 2]; a one-line error for anything else."""
    if text is None:
        return None
    from ..errors import ReslabError
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ReslabError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ReslabError(f"--seeds {text!r}: expected comma-separated integers >= 0, e.g. 0,1,2")
    return seeds


def parse_assignments(items: list[str], flag: str) -> dict:
    """["a.b=1", "c=x"] -> {"a.b": 1, "c": "x"} (values parsed as YAML scalars)."""
    import yaml

    from ..errors import ReslabError
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReslabError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ReslabError(f"{flag} {item!r}: cannot parse the value {value!r}") from None
    return out
