"""Scheduled journeys on real Redis: a cron trigger read in a time zone, each occurrence fired once (as a
broadcast of a deterministic id) however many processes run, each customer started once per occurrence, and
schedule mistakes reported at their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_journey
from omnicanal.errors import JourneyError
from omnicanal.journey.loader import load_journeys

DAILY = """\
id: daily_tip
trigger: {schedule: "0 9 * * *", timezone: Europe/Paris, audience: everyone}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""


def problems_of(project: Path, text: str) -> list[str]:
    write_journey(project, "daily_tip", text)
    with pytest.raises(JourneyError) as caught:
        load_journeys(project / "journeys")
    path = project / "journeys" / "daily_tip.yaml"
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems if p.path == str(path)]


def test_a_schedule_journey_loads_and_is_triggered_by_no_event(project: Path) -> None:
    write_journey(project, "daily_tip", DAILY)
    journey = load_journeys(project / "journeys")["daily_tip"]
    assert (journey.trigger.schedule, journey.trigger.timezone, journey.trigger.audience) == (
        "0 9 * * *", "Europe/Paris", "everyone")
    assert journey.trigger.event is None and journey.events() == frozenset()


@pytest.mark.parametrize(("change", "problem"), [
    (("0 9 * * *", "0 25 * * *"), "2: trigger.schedule: invalid cron expression '0 25 * * *'"),
    (("0 9 * * *", "0 9 * *"), "2: trigger.schedule: invalid cron expression '0 9 * *' (Wrong number of fields"),
    (("Europe/Paris", "Europe/Lutece"), "2: trigger.timezone: unknown time zone 'Europe/Lutece'"),
    (("Europe/Paris", "customer"), "2: trigger.timezone: `customer` (each customer at that time in their own "
                                   "zone) is not supported yet"),
    (("audience: everyone", "audience: Lapsed Gold"), "2: trigger.audience: invalid audience 'Lapsed Gold'"),
    ((", audience: everyone", ""), "2: trigger: a schedule needs `timezone`"),
    (("audience: everyone", "audience: everyone, event: order_placed"), "2: trigger: a trigger is an event"),
    (("audience: everyone", "audience: everyone, where: \"true\""),
     "2: trigger: a scheduled journey has no event to test or key"),
])
def test_schedule_mistakes_are_reported_at_their_line(project: Path, change: tuple[str, str], problem: str) -> None:
    found = problems_of(project, DAILY.replace(*change))
    assert len(found) == 1 and found[0].startswith(problem), found


def test_an_event_trigger_takes_no_schedule_options(project: Path) -> None:
    found = problems_of(project, DAILY.replace('schedule: "0 9 * * *"', "event: order_placed"))
    assert found == ["2: trigger: timezone and audience go with `schedule`: add a schedule instead of the event, "
                     "or remove them"]
