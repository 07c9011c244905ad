"""One exception type for every user-facing error, and the helper that suggests close matches."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReslabError(Exception):
    """A problem with the user's input (name, config, file). The CLI prints its message on one line."""


def choices_hint(value: str, choices: Iterable[str], limit: int | None = None) -> str:
    """'valid choices, closest first: a, b, c, ...' (the close matches leading; at most `limit` shown)."""
    choices = list(choices)
    close = difflib.get_close_matches(str(value), choices, n=5, cutoff=0.5)
    ordered = close + [c for c in choices if c not in close]
    if limit is not None and len(ordered) > limit:
        shown = close or ordered[:limit]
        return f"{'closest' if close else 'e.g.'}: {', '.join(shown[:limit])} ({len(ordered)} in all)"
    return f"valid choices, closest first: {', '.join(ordered)}"
