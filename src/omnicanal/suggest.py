"""The correction offered when a name is misspelt: a key, a channel, a template, a step id.

Every message about an unknown name offers the closest known one, worded the same way wherever it comes from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to `word`, if any is near enough to be a likely typo."""
    return next(iter(difflib.get_close_matches(str(word), list(candidates), n=1)), None)


def did_you_mean(word: object, candidates: Iterable[str], *, listing: bool = False) -> str:
    """` (did you mean 'x'?)`, or nothing; with `listing`, the candidates follow in the same parentheses:
    ` (did you mean 'x'? expected one of: a, b)`, for messages that do not list them already."""
    choices = list(candidates)
    close = closest(word, choices)
    hint = f"did you mean {close!r}?" if close else ""
    if listing:
        return f" ({hint}{' ' if hint else ''}expected one of: {', '.join(sorted(choices))})"
    return f" ({hint})" if hint else ""
