"""Rows of the results table, printed as text and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured value beside its limit (what Redis or a bare handler allows), its peer and its target.

    `ratio` is value / limit: for rates, the share of the limit reached (1.0 = at the limit); for latencies,
    lateness and memory, how many times the floor (1.0 = at the floor)."""

    scenario: str
    metric: str
    value: float | None
    unit: str
    limit: float | None = None
    limit_how: str = ""
    peer: float | None = None
    peer_how: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.limit is None or not self.limit:
            return None
        if not math.isfinite(self.value) or not math.isfinite(self.limit):
            return None
        return self.value / self.limit


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


COLUMNS = ("scenario", "metric", "value", "limit", "ratio", "peer", "target", "met?")


def table(rows: list[Row]) -> str:
    cells = [COLUMNS]
    for row in rows:
        peer = fmt(row.peer, row.unit) + (f" ({row.peer_how})" if row.peer_how else "")
        ratio = row.ratio
        cells.append((row.scenario, row.metric, fmt(row.value, row.unit), fmt(row.limit, row.unit),
                      "n/a" if ratio is None else f"{ratio:.2f}", peer if row.peer is not None else "n/a",
                      row.target or "-", met_text(row.met)))
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append(" | ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        ratio = row.ratio
        peer = (fmt(row.peer, row.unit) + (f" ({row.peer_how})" if row.peer_how else "")) if row.peer is not None \
            else "n/a"
        lines.append("| " + " | ".join((row.scenario, row.metric, fmt(row.value, row.unit), fmt(row.limit, row.unit),
                                        "n/a" if ratio is None else f"{ratio:.2f}", peer, row.target or "-",
                                        met_text(row.met))) + " |")
    return "\n".join(lines)


def limits_legend(rows: list[Row]) -> str:
    seen: dict[str, str] = {}
    for row in rows:
        if row.limit_how and row.limit_how not in seen.values():
            seen[f"{row.scenario} / {row.metric}"] = row.limit_how
    return "limits:\n" + "\n".join(f"  {name}: {how}" for name, how in seen.items())


def write_json(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None if math.isnan(value) else str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    payload = {"meta": meta, "rows": [clean({**asdict(row), "ratio": row.ratio}) for row in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> tuple[list[Row], dict[str, Any]]:
    """The rows and meta of a run written by `write_json` (infinities, written as text, come back as floats)."""
    payload = json.loads(path.read_text(encoding="utf-8"))

    def number(value: Any) -> Any:
        return float(value) if isinstance(value, str) else value

    rows = [Row(**{**{k: v for k, v in row.items() if k != "ratio"}, "value": number(row["value"]),
                   "limit": number(row["limit"]), "peer": number(row["peer"])}) for row in payload["rows"]]
    return rows, payload["meta"]


LAST_START, LAST_END, HISTORY_NEXT = "<!-- last-run:start -->", "<!-- last-run:end -->", "<!-- history:next -->"
HISTORY_HEADER = ("| date | commit | run | label | steps/s 2w | msgs/s 2w | × peer | p99 @1000/s | "
                  "/v1/events (× bare) | batch ev/s | B/waiting | timers fired in | other CPU |")


def _pick(rows: list[Row], scenario: str, prefix: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.metric.startswith(prefix)
                 and "unloaded" not in r.metric), None)


def history_line(rows: list[Row], meta: dict[str, Any], label: str) -> str:
    def cell(row: Row | None, unit: str = "", with_ratio: bool = False) -> str:
        if row is None:
            return "-"
        text = fmt(row.value, unit)
        if with_ratio and row.ratio is not None:
            text += f" ({row.ratio:.2f})"
        return text

    busy = meta.get("background_cores_busy") or {}
    timers = _pick(rows, "timers", "")
    # All fired: the time; the time limit hit: the note's first part says how many were
    all_fired = timers is not None and math.isfinite(timers.value)
    fired = cell(timers, "s") if all_fired else (timers.note.split(";")[0] if timers else "-")
    return "| " + " | ".join([
        str(meta.get("date", "")), str(meta.get("commit", "")), "quick" if meta.get("quick") else "full", label,
        cell(_pick(rows, "steps", "journey steps/s, 2")),
        cell(_pick(rows, "steps", "messages/s end to end, 2")),
        cell(_pick(rows, "steps", "messages/s, 2 workers"), "x"),
        cell(_pick(rows, "latency", "event → provider p99 at"), "ms"),
        cell(_pick(rows, "ingest", "POST /v1/events,"), with_ratio=True),
        cell(_pick(rows, "ingest", "POST /v1/events/b")),
        cell(_pick(rows, "waiting", "Redis bytes")),
        fired,
        " ".join(f"{v:.1f}" for v in busy.values()) or "-",
    ]) + " |"


def record_results(path: Path, rows: list[Row], meta: dict[str, Any], label: str) -> None:
    """Replace the last-run section of RESULTS.md with this run, and add this run to its history."""
    busy = meta.get("background_cores_busy") or {}
    section = "\n".join([
        LAST_START,
        f"**{meta['date']}**, commit `{meta['commit']}`, {'quick' if meta.get('quick') else 'full'} run "
        f"({meta['seconds']:.0f} s), label: {label}  ",
        f"machine: `{meta['uname']}`, {meta['nproc']} cores, Python {meta['python']}, Redis {meta['redis']}, CPU "
        f"probe {meta.get('cpu_probe_s', 'not measured')} s (a 5·10^6-step Python loop; lower is faster)  ",
        "other processes' CPU before each scenario (cores): "
        + (", ".join(f"{name} {cores:.2f}" for name, cores in busy.items()) or "not measured"),
        "",
        markdown(rows),
        "",
        *[f"- {row.scenario} / {row.metric}: {row.note}" for row in rows if row.note],
        *[f"- engine log: {line}" for line in (meta.get("engine_log") or [])[:8]],
        *([f"- peers skipped in {', '.join(meta['peers_skipped_in'])}: the run was past its peer budget"]
          if meta.get("peers_skipped_in") else []),
        *[f"- {name}: {sum(mix.values()):.1f} — " + ", ".join(f"{c} {v:.2f}" for c, v in list(mix.items())[:10])
          for name, mix in (meta.get("redis_mix") or {}).items()],
        LAST_END,
    ])
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if LAST_START in text and LAST_END in text:
        head, rest = text.split(LAST_START, 1)
        text = head + section + rest.split(LAST_END, 1)[1]
    else:
        text += f"\n## Last run\n\n{section}\n"
    if HISTORY_NEXT not in text:
        text += f"\n## History\n\n{HISTORY_HEADER}\n|{'---|' * HISTORY_HEADER.count(' | ')}---|\n{HISTORY_NEXT}\n"
    text = text.replace(HISTORY_NEXT, history_line(rows, meta, label) + "\n" + HISTORY_NEXT)
    path.write_text(text, encoding="utf-8")
