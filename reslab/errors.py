"""One exception type for every user-facing error, and the helper that suggests close matches."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReslabError(Exception):
    """A problem with the user's input (name, config, file). The CLI prints its message on one line."""


def choices_hint(value: str, choices: Iterable[str]) -> str:
    """'valid choices, closest first: a, b, c, ...' (every choice, the close matches leading)."""
    choices = list(choices)
    close = difflib.get_close_matches(str(value), choices, n=5, cutoff=0.5)
    ordered = close + [c for c in choices if c not in close]
    return f"valid choices, closest first: {', '.join(ordered)}"
