"""Durations as journey authors write them (`30s`, `15m`, `1h30m`, `2d`, `1w`) and back.

Journeys wait hours and days, so authors write units; the engine only ever deals in seconds. Plain numbers are
accepted as seconds because that is what a number without a unit most plausibly means. Bare words such as
`1 hour` are refused rather than guessed at: a typo in a wait must not silently become a different wait.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}

_PART = r"(\d+(?:\.\d+)?)([smhdw])"
_COMPOUND = re.compile(rf"(?:{_PART})+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HINT = "use a number followed by s, m, h, d or w, e.g. 30s, 15m, 2d"
MAX_SECONDS = 100 * 365 * UNITS["d"]
"""The longest duration: a century. Longer ones are mistakes, and a moment computed from one can lie past the
year 9999 that dates can show (`99999999d` was taken, and failed only when an instance reached it)."""


def parse_duration(value: object) -> float:
    """Seconds for a duration written as `1h30m`, `2d` or a plain number of seconds; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"bad duration {value!r}: {_HINT}")
    text = str(value).strip()
    if _NUMBER.fullmatch(text):
        seconds = float(text)
    elif _COMPOUND.fullmatch(text):
        seconds = sum(float(amount) * UNITS[unit] for amount, unit in re.findall(_PART, text))
    else:
        raise ValueError(f"bad duration {text!r}: {_HINT}")
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: it must be greater than zero")
    if not seconds <= MAX_SECONDS:  # inf too: `9` * 400 days is a float overflow, not an error
        raise ValueError(f"bad duration {text[:40]!r}: at most 100 years ({MAX_SECONDS // UNITS['d']}d)")
    return seconds


def parse_offset(value: object) -> float:
    """Seconds for a signed duration (`-1d`, `+2h`, `30m`): how far before or after a moment."""
    text = str(value).strip() if isinstance(value, str) else value
    if isinstance(text, str) and text[:1] in "-+":
        return (-1.0 if text[0] == "-" else 1.0) * parse_duration(text[1:])
    return parse_duration(text)


def format_duration(seconds: float) -> str:
    """A compound spelling of a duration (`5400` → `1h30m`), for graphs and messages.

    Below three days it counts in hours, the way people say "24h" or "48h"; from there on in days and weeks.
    """
    remaining = round(seconds)
    if remaining != seconds or remaining <= 0:
        return f"{seconds:g}s"
    units = UNITS if remaining >= 3 * UNITS["d"] else {u: s for u, s in UNITS.items() if u in "hms"}
    parts: list[str] = []
    for unit, size in units.items():
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
