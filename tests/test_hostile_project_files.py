"""Project files as a careless or hostile operator leaves them: a very long journey, links that lead nowhere,
huge files. Each must come out as located problems (`file:line`), never an exception or minutes of parsing."""

from __future__ import annotations

from omnicanal.journey.graph import to_mermaid
from omnicanal.journey.loader import parse_journey


def _long_journey(steps: int) -> str:
    """A journey of `steps` waits in a row, the last jumping back to the first: one loop through all of them."""
    lines = ["id: long", "trigger: {event: e}", "steps:", "  - id: first", "    wait: 1h"]
    lines += ["  - wait: 1h"] * (steps - 2)
    lines += ["  - goto: first"]
    return "\n".join(lines) + "\n"


def test_a_journey_of_thousands_of_steps_is_checked_without_running_out_of_stack() -> None:
    journey = parse_journey(_long_journey(5000), "journeys/long.yaml")
    assert len(journey.steps) == 5000
    assert to_mermaid(journey).count("-->") >= 5000

