"""Scheduled journeys in the pure parts: when a schedule's occurrences fall (APScheduler's cron read in a zone,
DST included), and, with `timezone: customer`, each customer's instance held at its first step until their own
clock shows the schedule's time — and run then only if they are still in the audience."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from harness import HOUR, Customer, journey, profile

from omnicanal.journey.effects import EvaluateSegments, StartJourney
from omnicanal.journey.schedules import check_cron, cron_of, due, local_time, next_after
from omnicanal.journey.segments import Segment, Segments
from omnicanal.policy.choice import Rules

MONDAYS = journey("""
id: j
trigger: {schedule: "0 9 * * MON", timezone: customer, audience: lapsed_gold}
re_entry: always
steps:
  - send: {template: offer, channels: [sms]}
""")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def occurrences(expression: str, timezone: str, after: float, until: float) -> list[float]:
    found, moment = [], next_after(cron_of(expression, timezone), after)
    while moment is not None and moment <= until:
        found.append(moment)
        moment = next_after(cron_of(expression, timezone), moment)
    return found


def test_occurrences_are_read_in_the_zone_across_a_change_of_clocks() -> None:
    found = occurrences("0 9 * * SUN", "Europe/Paris", at("2027-03-20T00:00:00+00:00"), at("2027-04-04T00:00:00+00:00"))
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC once the clocks went forward (28 March)
    assert [datetime.fromtimestamp(t, UTC).isoformat() for t in found] == [
        "2027-03-21T08:00:00+00:00", "2027-03-28T07:00:00+00:00"]


def test_a_time_the_clocks_go_back_over_fires_once_as_cron_does() -> None:
    # New York goes back from 02:00 EDT to 01:00 EST on 1 November 2026: 01:30 comes twice that night. A daily
    # 01:30 is one occurrence a day (cron runs a job at a fixed time once); a job every 30 minutes runs in both
    # hours, since each is half an hour of real time
    found = occurrences("30 1 * * *", "America/New_York", at("2026-10-31T12:00:00+00:00"),
                        at("2026-11-02T12:00:00+00:00"))
    assert [datetime.fromtimestamp(t, UTC).isoformat() for t in found] == [
        "2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
    half_hours = occurrences("0,30 * * * *", "America/New_York", at("2026-11-01T04:45:00+00:00"),
                             at("2026-11-01T07:00:00+00:00"))
    assert [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in half_hours] == [
        "05:00", "05:30", "06:00", "06:30", "07:00"]


def test_for_each_customer_the_occurrence_comes_first_where_the_day_begins_first() -> None:
    (first,) = occurrences("0 9 * * MON", "customer", at("2027-01-16T00:00:00+00:00"), at("2027-01-18T00:00:00+00:00"))
    assert datetime.fromtimestamp(first, UTC).isoformat() == "2027-01-17T19:00:00+00:00"  # 09:00 at UTC+14
    assert local_time("customer", first) == "2027-01-18T09:00:00"
    assert local_time("Europe/Paris", first) is None


@pytest.mark.parametrize(("text", "says"), [
    ("0 9 * * 1", "write the days of the week as names"),  # APScheduler 3 reads 1 as Tuesday, crontab as Monday
    ("0 9 * * MON-5", "write the days of the week as names"),
    ("0 25 * * MON", "higher than the maximum value (23)"),
])
def test_a_bad_cron_expression_says_what_and_shows_the_form(text: str, says: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_cron(text)
    assert says in str(raised.value) and '"0 9 * * MON"' in str(raised.value)


def test_a_customer_clock_schedule_loads() -> None:
    assert MONDAYS.trigger.timezone == "customer" and MONDAYS.events() == frozenset()
    assert MONDAYS.trigger.label == "every 0 9 * * MON (customer) for lapsed_gold"


OCCURRENCE = at("2027-01-17T19:00:00+00:00")  # Monday 18 January, 09:00 at UTC+14
LAPSED_GOLD = Segments.of({"lapsed_gold": Segment.model_validate({"id": "lapsed_gold",
                                                                  "where": "customer.tier == 'gold'"})})


def member(**fields: Any) -> Customer:
    """A customer in MONDAYS' audience at the occurrence (their memberships evaluated, as a backfill does)."""
    customer = Customer([MONDAYS], attributes={"tier": "gold"}, segments=LAPSED_GOLD, now=OCCURRENCE, **fields)
    customer.apply(EvaluateSegments())
    assert customer.state.audience["s"] == ["lapsed_gold"]
    return customer


def started_on_schedule(customer: Customer) -> str:
    event = {"id": "broadcast:s_j_1", "name": "broadcast", "customer_id": customer.customer_id,
             "properties": {"broadcast": "s_j_1"}, "timestamp": "2027-01-17T19:00:00.000Z"}
    return customer.apply(StartJourney("j", event, local_time="2027-01-18T09:00:00")).broadcasts["s_j_1"]


@pytest.mark.parametrize(("zone", "nine_utc"), [
    ("Europe/Paris", "2027-01-18T08:00:00+00:00"),
    ("America/New_York", "2027-01-18T14:00:00+00:00"),
])
def test_each_customer_starts_at_nine_on_their_own_clock(zone: str, nine_utc: str) -> None:
    customer = member(profile=profile(timezone=zone))
    assert started_on_schedule(customer) == "started"
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "local_time"
    assert customer.milestones() == ["started"] and customer.sent() == []
    customer.pass_time(at(nine_utc) - OCCURRENCE - 1)
    assert customer.sent() == []  # a second before their 09:00
    customer.pass_time(1)
    assert customer.sent() == [("offer", "sms")] and customer.milestones() == ["started", "completed"]


def test_a_customer_whose_nine_has_come_starts_at_once() -> None:
    customer = Customer([MONDAYS], profile=profile(timezone="Pacific/Kiritimati"), now=OCCURRENCE)  # UTC+14
    assert started_on_schedule(customer) == "started"
    assert customer.sent() == [("offer", "sms")]
    late = Customer([MONDAYS], profile=profile(timezone="Europe/Paris"), now=at("2027-01-18T08:30:00+00:00"))
    assert started_on_schedule(late) == "started" and late.sent() == [("offer", "sms")]  # a walk that came late


def test_a_customer_without_a_zone_starts_at_nine_in_the_default_one() -> None:
    customer = member(rules=Rules(default_timezone="Asia/Tokyo"))
    started_on_schedule(customer)
    customer.pass_time(at("2027-01-18T00:00:00+00:00") - OCCURRENCE - 1)  # 08:59:59 in Tokyo
    assert customer.sent() == []
    customer.pass_time(1)
    assert customer.sent() == [("offer", "sms")]


def test_the_start_of_an_occurrence_met_twice_holds_one_instance() -> None:
    customer = member(profile=profile(timezone="Europe/Paris"))
    assert started_on_schedule(customer) == "started"
    assert started_on_schedule(customer) == "duplicate"
    assert len(customer.state.instances) == 1 and len(customer.timers) == 1
    customer.pass_time(14 * HOUR)
    assert customer.sent() == [("offer", "sms")]


def test_a_member_who_left_the_audience_before_their_nine_exits_then_without_a_message() -> None:
    customer = member(profile=profile(timezone="America/New_York"))
    assert started_on_schedule(customer) == "started"
    customer.state.customer["tier"] = customer.state.customer["attributes"]["tier"] = "silver"  # PUT wrote it
    customer.event("customer.updated", changes={"tier": {"from": "gold", "to": "silver"}}, source="api")
    assert customer.state.audience["s"] == []
    customer.pass_time(at("2027-01-18T14:00:00+00:00") - OCCURRENCE)  # 09:00 in New York
    assert customer.sent() == [] and customer.milestones() == ["started", "exited (left_audience)"]
    assert customer.stats["j"]["exited:left_audience"] == 1 and customer.instance("j") is None


def test_on_a_fast_clock_an_occurrence_between_two_looks_fires_one_missed_while_down_does_not() -> None:
    cron = cron_of("0 9 * * *", "UTC")
    nine = at("2027-01-18T09:00:00+00:00")
    last_look, now = nine - 60, nine + 9000  # 0.25 real seconds apart at 36000x: more than an hour of grace
    assert due(cron, last_look, now, grace=3600, looking=36_000).fire == (nine,)
    assert due(cron, last_look, now, grace=3600).fire == ()  # no look for 2.5 h: missed, past the grace
    assert due(cron, last_look, now, grace=3600).skipped
