"""One step as the author wrote it → a Step: its kind, its id, and its payload reshaped into the model's fields.

Authors write steps in short forms (`wait: 1h`, `goto: x`, `- exit`, `channel: push`, a branch as a list ending
with `else`); they are reshaped here before pydantic validates them, and `Document.alias` keeps line numbers
pointing at what the author wrote.
"""

from __future__ import annotations

from typing import Any

from omnicanal.journey.model import KIND_MODELS, Step, check_id
from omnicanal.journey.report import FileReport
from omnicanal.suggest import did_you_mean

STEP_KEYS: tuple[str, ...] = ("id", *KIND_MODELS)


class StepReader:
    """Reads the steps of one file, recording every step id declared (even of broken steps) and its line,
    so that jumps and duplicates are checked against what the author wrote."""

    def __init__(self, report: FileReport) -> None:
        self.report = report
        self.step_lines: dict[str, int] = {}

    def read(self, index: int, raw: object) -> Step | None:
        """One step, or None if it is too broken to build (its problems are recorded)."""
        base = ("steps", index)
        if raw == "exit":
            raw = {"exit": None}
        if not isinstance(raw, dict):
            self.report.add(base, f"a step is a mapping such as `- wait: 1h`, or the word `exit`; got {raw!r}")
            return None
        unknown = [key for key in raw if key not in STEP_KEYS]
        expected = ", ".join(sorted(STEP_KEYS))
        for key in unknown:
            self.report.add((*base, key), f"unknown key {key!r} in step; expected one of: {expected}"
                                          f"{did_you_mean(key, STEP_KEYS)}")
        kinds = [key for key in raw if key in KIND_MODELS]
        step_id = self._step_id(raw, index, kinds[0] if len(kinds) == 1 else None)
        if len(kinds) != 1 or step_id is None:
            if kinds or not unknown:
                found = f"has {' and '.join(map(repr, kinds))}" if kinds else "has none"
                self.report.add(base, f"a step needs exactly one of {', '.join(KIND_MODELS)}; this one {found}"
                                      + (": split it into one step per action" if kinds else ""))
            return None
        kind = kinds[0]
        payload = self._reshape(kind, raw[kind], (*base, kind))
        action = self.report.validate(KIND_MODELS[kind], payload, (*base, kind)) if payload is not None else None
        if action is None:
            return None
        return Step.model_validate(
            {"id": step_id, "index": index, "line": self.report.doc.line_of(base), "kind": kind, "action": action}
        )

    def _step_id(self, raw: dict[Any, Any], index: int, kind: str | None) -> str | None:
        """The step's id, written or automatic (`3_send`), recorded with its line."""
        where = ("steps", index, "id")
        if "id" in raw:
            step_id = str(raw["id"])
            try:
                check_id(step_id)
            except ValueError as exc:
                self.report.add(where, f"id: {exc}")
        elif kind is not None:
            step_id = f"{index + 1}_{kind}"
        else:
            return None
        if step_id in self.step_lines:
            self.report.add(where, f"duplicate step id {step_id!r} (also used at line "
                                   f"{self.step_lines[step_id]}): step ids must be unique")
        self.step_lines.setdefault(step_id, self.report.doc.line_of(where[:2]))
        return step_id

    def _reshape(self, kind: str, value: Any, where: tuple[Any, ...]) -> object:
        """The author's shape of a step payload → the model's; None if it is too wrong to validate."""
        if kind == "wait" and isinstance(value, dict):
            return value
        if kind in ("wait", "goto"):
            return {"seconds" if kind == "wait" else "target": value}
        if kind == "exit":
            return {} if value is None else value
        if kind == "send" and isinstance(value, dict) and "channel" in value:
            if "channels" in value:
                self.report.add((*where, "channel"), "use either 'channel' (one) or 'channels' (a list), not both")
                return None
            self.report.doc.alias((*where, "channel"), (*where, "channels"))
            return {**{k: v for k, v in value.items() if k != "channel"}, "channels": [value["channel"]]}
        if kind == "branch":
            return self._reshape_branch(value, where)
        if kind == "split":
            if not isinstance(value, list):
                self.report.add(where, "a split is a list of arms: `- {weight: 45, goto: <step id>}`, and at most "
                                       "one `- {weight: 10, holdout: true}`")
                return None
            for number in range(len(value)):
                self.report.doc.alias((*where, number), (*where, "arms", number))
            return {"arms": value}
        return value

    def _reshape_branch(self, items: Any, where: tuple[Any, ...]) -> object:
        """A branch as written, a list of cases ending with `else`, → `cases` and `otherwise`."""
        if not isinstance(items, list) or not items:
            self.report.add(where, "a branch is a list of `- {when: <condition>, goto: <step id>}` cases "
                                   "ending with `- {else: <step id>}`")
            return None
        payload: dict[str, Any] = {"cases": []}
        for number, item in enumerate(items):
            if not (isinstance(item, dict) and "else" in item):
                self.report.doc.alias((*where, number), (*where, "cases", len(payload["cases"])))
                payload["cases"].append(item)
                continue
            if number != len(items) - 1:
                self.report.add((*where, number, "else"), "'else' must be the last item of a branch; move it down")
            if len(item) > 1:
                self.report.add((*where, number), "an else item has only the 'else' key: `- {else: <step id>}`")
            self.report.doc.alias((*where, number, "else"), (*where, "otherwise"))
            payload["otherwise"] = item["else"]
        return payload
