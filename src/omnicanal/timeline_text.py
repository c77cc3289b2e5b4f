"""A customer's timeline as text people read: one line per event, message or journey milestone."""

from __future__ import annotations

import json
import textwrap
from typing import Any

_ICONS = {"event": "●", "message": "✉", "journey": "◆", "conversion": "★", "error": "!"}
_CONTENT_ORDER = ("title", "subject", "body", "text")


def _message_lines(entry: dict[str, Any]) -> list[str]:
    status = entry["status"]
    head = f"{entry.get('channel', '-')} · {entry['template']} · {status}  ({entry['journey']}/{entry['step']})"
    lines = [head]
    content = entry.get("content") or {}
    for name in _CONTENT_ORDER:
        if name in content:
            text = " ".join(str(content[name]).split())
            lines.extend(textwrap.wrap(f"{name}: {text}", 96, subsequent_indent="    ", max_lines=4))
    for skipped in entry.get("skipped", []):
        lines.append(f"skipped {skipped['channel']}: {skipped['reason']}")
    if entry.get("error"):
        lines.append(f"error: {entry['error']}")
    return lines


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    kind = entry["kind"]
    if kind == "event":
        return [f"{entry['name']} {json.dumps(entry['properties'], ensure_ascii=False)[:90]}"]
    if kind == "message":
        return _message_lines(entry)
    if kind == "journey":
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        return [f"journey {entry['journey']} {entry['status']}{reason}"]
    if kind == "conversion":
        return [f"conversion: {entry['event']} reached the goal of {entry['journey']}, "
                f"after {len(entry['attributed_to'])} message(s)"]
    return [f"{entry.get('where', '')}: {entry.get('message', '')}"]


def format_timeline(timeline: dict[str, Any]) -> str:
    out = [f"── {timeline['customer_id']} " + "─" * 60]
    for entry in timeline["entries"]:
        first, *rest = _entry_lines(entry)
        out.append(f"{entry['at'][:19].replace('T', ' ')}  {_ICONS.get(entry['kind'], '·')} {first}")
        out.extend(f"{'':23}{line}" for line in rest)
    return "\n".join(out) + "\n"
