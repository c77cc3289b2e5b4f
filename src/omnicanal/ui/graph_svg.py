"""A journey's graph laid out for an inline SVG: the edges of `omnicanal graph` (journey/graph.py), in layers.

Each step goes one layer below the longest forward path that reaches it, so a step that several paths join
(a thank-you after either wait) sits below all of them. Jumps back (a loop) or within a layer are drawn as
curves on the right. Only geometry and text are made here; the template writes the SVG, escaping every text.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from omnicanal.journey.graph import all_edges, describe
from omnicanal.journey.model import Journey

NODE_WIDTH = 270
NODE_HEIGHT = 64
GAP_X = 36
GAP_Y = 54
MARGIN = 16
LOOP_ROOM = 90
"""Room on the right for the curves of jumps back."""
DETAIL_CHARS = 38
LABEL_CHARS = 34

START, END = -1, -2
"""Node keys of the start and end of the journey; steps are keyed by their index."""

WAITING_KINDS = frozenset({"wait", "wait_for", "digest"})
SENDING_KINDS = frozenset({"send", "digest"})


@dataclass(frozen=True, slots=True)
class Node:
    key: int
    title: str
    detail: str
    """What the step does, cut to fit; `full` has all of it (the node's tooltip)."""
    full: str
    x: float
    y: float
    counters: tuple[str, ...]
    """Counter names (`entered`, `sent`, `waiting`) shown on the node, live."""


@dataclass(frozen=True, slots=True)
class Link:
    path: str
    label: str
    full_label: str
    label_x: float
    label_y: float
    back: bool


@dataclass(frozen=True, slots=True)
class Drawing:
    width: float
    height: float
    node_width: int
    node_height: int
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _layers(journey: Journey) -> dict[int, int]:
    """Layer of every node: start 0, each step one below the longest forward path to it, end last. Back edges
    (to a step on the current depth-first path) are left out, which makes the rest acyclic."""
    index_of = {step.id: step.index for step in journey.steps}
    out: dict[int, list[int]] = {START: [0] if journey.steps else [END]}
    for edge in all_edges(journey.steps):
        target = END if edge.target is None else index_of.get(edge.target)
        if target is not None:
            out.setdefault(edge.source, []).append(target)
    forward: dict[int, list[int]] = {}
    on_path: set[int] = {START}
    done: set[int] = set()
    path = [(START, iter(out[START]))]  # depth-first, without recursion: a journey may have many steps
    while path:
        node, targets = path[-1]
        target = next(targets, None)
        if target is None:
            path.pop()
            on_path.discard(node)
            done.add(node)
        elif target not in on_path:  # a jump back is drawn, but not layered
            forward.setdefault(node, []).append(target)
            if target not in done:
                on_path.add(target)
                path.append((target, iter(out.get(target, []))))
    incoming = {node: 0 for node in done}
    for reached in forward.values():
        for target in reached:
            incoming[target] += 1
    layer = dict.fromkeys(done, 0)
    ready = deque(node for node, count in incoming.items() if count == 0)
    while ready:
        node = ready.popleft()
        for target in forward.get(node, []):
            layer[target] = max(layer[target], layer[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    deepest = max((depth for node, depth in layer.items() if node != END), default=0)
    for step in journey.steps:  # unreachable steps (the loader refuses them) still get a place
        layer.setdefault(step.index, deepest + 1)
    layer[END] = max(depth for node, depth in layer.items() if node != END) + 1
    return layer


def _counters(kind: str) -> tuple[str, ...]:
    shown = ["entered"]
    if kind in SENDING_KINDS:
        shown.append("sent")
    if kind in WAITING_KINDS:
        shown.append("waiting")
    return tuple(shown)


def draw(journey: Journey) -> Drawing:
    layer = _layers(journey)
    rows: dict[int, list[int]] = {}
    order = [START, *(step.index for step in journey.steps), END]
    for node in order:
        rows.setdefault(layer[node], []).append(node)
    widest = max(len(row) for row in rows.values())
    inner = widest * NODE_WIDTH + (widest - 1) * GAP_X
    position: dict[int, tuple[float, float]] = {}
    for depth, row in rows.items():
        span = len(row) * NODE_WIDTH + (len(row) - 1) * GAP_X
        left = MARGIN + (inner - span) / 2
        for column, node in enumerate(row):
            position[node] = (left + column * (NODE_WIDTH + GAP_X), MARGIN + depth * (NODE_HEIGHT + GAP_Y))
    nodes = [Node(START, "start", _cut(journey.trigger.label, DETAIL_CHARS), journey.trigger.label,
                  *position[START], ()),
             Node(END, "end", "", "end of the journey", *position[END], ())]
    for step in journey.steps:
        text = describe(step)
        nodes.append(Node(step.index, step.id, _cut(text, DETAIL_CHARS), text, *position[step.index],
                          _counters(step.kind)))
    index_of = {step.id: step.index for step in journey.steps}
    edges: list[tuple[int, int, str | None]] = [(START, 0 if journey.steps else END, None)]
    edges += [(edge.source, END if edge.target is None else index_of[edge.target], edge.label)
              for edge in all_edges(journey.steps) if edge.target is None or edge.target in index_of]
    links = [_link(position[source], position[target], layer[target] <= layer[source], label or "")
             for source, target, label in edges]
    height = MARGIN * 2 + (max(rows) + 1) * (NODE_HEIGHT + GAP_Y) - GAP_Y
    return Drawing(MARGIN * 2 + inner + LOOP_ROOM, height, NODE_WIDTH, NODE_HEIGHT, tuple(nodes), tuple(links))


def _link(source: tuple[float, float], target: tuple[float, float], back: bool, label: str) -> Link:
    """A cubic curve: down from the bottom of the source to the top of the target, or, for a jump back or
    sideways, out of the source's right side and into the target's."""
    if back:
        x1, y1 = source[0] + NODE_WIDTH, source[1] + NODE_HEIGHT / 2
        x2, y2 = target[0] + NODE_WIDTH, target[1] + NODE_HEIGHT / 2
        bulge = max(x1, x2) + LOOP_ROOM * 0.8
        c1, c2 = (bulge, y1), (bulge, y2)
    else:
        x1, y1 = source[0] + NODE_WIDTH / 2, source[1] + NODE_HEIGHT
        x2, y2 = target[0] + NODE_WIDTH / 2, target[1]
        bend = max(GAP_Y / 2, (y2 - y1) / 3)
        c1, c2 = (x1, y1 + bend), (x2, y2 - bend)
    path = f"M{x1:.1f},{y1:.1f} C{c1[0]:.1f},{c1[1]:.1f} {c2[0]:.1f},{c2[1]:.1f} {x2:.1f},{y2:.1f}"
    middle_x = (x1 + 3 * c1[0] + 3 * c2[0] + x2) / 8  # the curve's point at t = 1/2
    middle_y = (y1 + 3 * c1[1] + 3 * c2[1] + y2) / 8
    return Link(path, _cut(label, LABEL_CHARS), label, middle_x, middle_y, back)
