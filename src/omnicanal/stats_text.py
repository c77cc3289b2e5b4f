"""A journey's stats (stats.report) as tables people read in a terminal: the funnel per step, per channel,
conversions by where they happened, attribution by model, experiment arms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STEP_COLUMNS = ("entered", "sent", "delivered", "read", "clicked", "replied", "failed", "suppressed", "held")
CHANNEL_COLUMNS = ("sent", "queued", "delivered", "read", "clicked", "replied", "failed", "unknown")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned text columns, numbers right-aligned, a rule under the headers."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) and i > 0
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric,
                                                                              strict=True)).rstrip()
    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)]


def render(stats: dict[str, Any]) -> str:
    counts = stats["counts"]
    span = f"from {stats['from']} to {stats['to']}" if stats["from"] else f"all time to {stats['to']}"
    out = [f"{stats['journey']} (version {stats['version']}), {span}",
           "  ".join(f"{name} {_cell(value)}" for name, value in counts.items()), "", "steps"]
    out += table(("step", "kind", *STEP_COLUMNS),
                 [(s["id"], s["kind"], *(s["counts"].get(c, 0) for c in STEP_COLUMNS)) for s in stats["steps"]])
    if stats["channels"]:
        out += ["", "channels"]
        out += table(("channel", *CHANNEL_COLUMNS),
                     [(ch, *(c.get(col, 0) for col in CHANNEL_COLUMNS)) for ch, c in sorted(stats["channels"].items())])
    if stats["by_where"]:
        out += ["", "conversions by where the goal happened"]
        out += table(("where", "conversions", "revenue"),
                     [(w, v.get("conversions", 0), v.get("revenue", 0)) for w, v in sorted(stats["by_where"].items())])
    rows = [(model, r["where"], r["journey"], r["step"], r["channel"], r["conversions"], r["revenue"])
            for model, credited in stats["attribution"].items() for r in credited]
    if rows:
        out += ["", "credit by attribution model (conversions and revenue each step and channel earned)"]
        out += table(("model", "where", "journey", "step", "channel", "conversions", "revenue"), rows)
    arms = [(s["id"], arm, a.get("entered", 0), a["converted"], a["revenue"], a["conversion_rate"], a.get("lift"))
            for s in stats["steps"] for arm, a in s["arms"].items()]
    if arms:
        out += ["", "experiments"]
        out += table(("step", "arm", "entered", "converted", "revenue", "rate", "lift"), arms)
    return "\n".join(out) + "\n"
