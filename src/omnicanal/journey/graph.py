"""The control flow of a journey: which step can follow which, and a Mermaid drawing of it.

One definition of the edges serves both the loader (a step no edge reaches is an authoring mistake) and
`omnicanal graph` (what people look at to check a journey does what they meant), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from omnicanal.journey.durations import format_duration
from omnicanal.journey.model import (
    BranchStep,
    DigestStep,
    ExitStep,
    FetchStep,
    GotoStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
)


class Edge(NamedTuple):
    """From step `source` (an index) to the step with id `target`; `None` is the end of the journey.

    `loc` is where a jump target is written inside the step payload (`("cases", 0, "goto")`), `None` for the
    implicit move to the next step, so that a wrong target can be reported on its own line.
    """

    source: int
    target: str | None
    label: str | None = None
    loc: tuple[str | int, ...] | None = None


def step_edges(step: Step, following: str | None) -> list[Edge]:
    """Every way out of `step`, jumps first, as written; `following` is the next step's id, if any."""
    index = step.index
    action = step.action
    if isinstance(action, ExitStep):
        return [Edge(index, None)]
    if isinstance(action, GotoStep):
        return [Edge(index, action.target, loc=("target",))]
    if isinstance(action, BranchStep):
        cases = [
            Edge(index, case.goto, case.when.source, ("cases", number, "goto"))
            for number, case in enumerate(action.cases)
        ]
        return [*cases, Edge(index, action.otherwise, "else", ("otherwise",))]
    if isinstance(action, FetchStep) and action.on_error != "skip":
        return [Edge(index, action.on_error, "fetch failed", ("on_error",)), Edge(index, following)]
    if isinstance(action, SplitStep):
        total = sum(arm.weight for arm in action.arms)
        return [Edge(index, arm.goto, f"{arm.name} {100 * arm.weight / total:g}%",
                     ("arms", number, "goto") if arm.goto is not None else None)
                for number, arm in enumerate(action.arms)]
    if isinstance(action, WaitStep) and action.at is not None:
        jumps = [Edge(index, target, label, (key,)) for key, target, label in (
            ("on_past", action.on_past, "already past"), ("on_error", action.on_error, "not a date")) if target]
        return [*jumps, Edge(index, following, f"at {action.at.source}")]
    if isinstance(action, WaitForStep) and action.on_timeout is not None and action.timeout is not None:
        label = f"timeout {format_duration(action.timeout)}"
        return [Edge(index, action.on_timeout, label, ("on_timeout",)), Edge(index, following, action.event)]
    return [Edge(index, following)]


def all_edges(steps: Sequence[Step]) -> list[Edge]:
    """The edges of every step, `steps` being a journey's complete list in order."""
    following: list[str | None] = [step.id for step in steps[1:]]
    pairs = zip(steps, [*following, None], strict=False)  # an empty journey has one `None` too many
    return [edge for step, after in pairs for edge in step_edges(step, after)]


def reachable(steps: Sequence[Step]) -> set[int]:
    """Indexes of the steps some path from the first step leads to (jumps to unknown ids lead nowhere)."""
    index_of = {step.id: step.index for step in steps}
    exits: dict[int, list[int]] = {}
    for edge in all_edges(steps):
        if edge.target is not None and edge.target in index_of:
            exits.setdefault(edge.source, []).append(index_of[edge.target])
    seen: set[int] = set()
    pending = [0] if steps else []
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(exits.get(current, []))
    return seen


def loops(steps: Sequence[Step]) -> list[set[int]]:
    """The step indexes of each loop: the strongly connected parts of the step graph that can come back to a
    step (more than one step, or a step that jumps to itself)."""
    index_of = {step.id: step.index for step in steps}
    exits: dict[int, set[int]] = {step.index: set() for step in steps}
    for edge in all_edges(steps):
        if edge.target is not None and edge.target in index_of:
            exits[edge.source].add(index_of[edge.target])
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[set[int]] = []

    def close(node: int) -> None:
        """`node` has no exit left to follow: if it roots a strongly connected part, take that part off."""
        if low[node] != order[node]:
            return
        part: set[int] = set()
        while True:
            member = stack.pop()
            on_stack.discard(member)
            part.add(member)
            if member == node:
                break
        if len(part) > 1 or node in exits[node]:
            found.append(part)

    for step in steps:  # Tarjan's algorithm, without recursion: a journey may have thousands of steps
        if step.index in order:
            continue
        path = [(step.index, iter(exits[step.index]))]
        order[step.index] = low[step.index] = len(order)
        stack.append(step.index)
        on_stack.add(step.index)
        while path:
            node, pending = path[-1]
            nxt = next(pending, None)
            if nxt is None:
                path.pop()
                close(node)
                if path:
                    low[path[-1][0]] = min(low[path[-1][0]], low[node])
            elif nxt not in order:
                order[nxt] = low[nxt] = len(order)
                stack.append(nxt)
                on_stack.add(nxt)
                path.append((nxt, iter(exits[nxt])))
            elif nxt in on_stack:
                low[node] = min(low[node], order[nxt])
    return found


def describe(step: Step) -> str:
    """A one-line summary of what a step does, for graphs and listings."""
    action = step.action
    if isinstance(action, SendStep):
        return f"send {action.template} via {', '.join(action.channels)}"
    if isinstance(action, WaitStep):
        if action.at is not None:
            offset = f" {'+' if action.offset > 0 else '-'}{format_duration(abs(action.offset))}" \
                if action.offset else ""
            return f"wait until {action.at.source}{offset}"
        return f"wait {format_duration(action.seconds)}" if action.seconds else f"wait until {action.until}"
    if isinstance(action, DigestStep):
        period = format_duration(action.window) if action.window else f"until {action.until}"
        return f"digest {action.event} ({period}) into {action.template} via {', '.join(action.channels)}"
    if isinstance(action, WaitForStep):
        return f"wait for {action.event}"
    if isinstance(action, UpdateStep):
        names = [f"vars.{name}" for name in action.vars] + [f"customer.{name}" for name in action.customer]
        return f"update {', '.join(names)}"
    if isinstance(action, GotoStep):
        return f"goto {action.target}"
    if isinstance(action, ExitStep):
        return f"exit ({action.reason})" if action.reason else "exit"
    if isinstance(action, FetchStep):
        return f"fetch {action.method} {action.url.source} into vars.{action.into}"
    if isinstance(action, SplitStep):
        return "split " + " / ".join(f"{arm.name} {arm.weight}" for arm in action.arms)
    return "branch"


def _text(text: str) -> str:
    """Quote text for a Mermaid label: entity-encode what would end the label or read as markup."""
    for char, entity in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, entity)
    return f'"{text}"'


def to_mermaid(journey: Journey) -> str:
    """A `flowchart TD` of the journey: a node per step, labelled edges for jumps, a start and an end node."""
    node = {step.id: f"s{step.index}" for step in journey.steps}
    lines = ["flowchart TD", f"    start([{_text(journey.trigger.label)}])"]
    for step in journey.steps:
        label = _text(f"{step.id}: {describe(step)}")
        shape = f"{{{label}}}" if step.kind == "branch" else f"[{label}]"  # decisions are diamonds
        lines.append(f"    {node[step.id]}{shape}")
    lines.append(f"    finish([{_text('end')}])")
    if journey.steps:
        lines.append(f"    start --> {node[journey.steps[0].id]}")
    for edge in all_edges(journey.steps):
        target = node[edge.target] if edge.target is not None else "finish"
        arrow = f"-->|{_text(edge.label)}|" if edge.label else "-->"
        lines.append(f"    s{edge.source} {arrow} {target}")
    return "\n".join(lines) + "\n"
