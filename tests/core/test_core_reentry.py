"""Entering a journey: the trigger and its `where`, one running instance per journey and customer, and the
re-entry rules (`never`, `always`, `after <duration>` counted from the start of the last instance)."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, START, Customer, flow, journey

from omnicanal.journey.effects import EventArrived


def _started(customer: Customer) -> int:
    return customer.milestones().count("started")


SHORT = "- send: {template: offer, channels: [sms]}"  # completes at once
LONG = """
- send: {template: offer, channels: [sms]}
- wait: 3d
"""


@pytest.mark.parametrize("head", ["", "re_entry: never"])
def test_never_is_the_default_and_refuses_a_second_entry(head: str) -> None:
    customer = Customer([flow(SHORT, head)])
    customer.event("go")
    customer.pass_time(365 * DAY)
    customer.event("go")
    assert customer.milestones() == ["started", "completed"]
    assert customer.channels() == ["sms"]


@pytest.mark.parametrize("end", ["exit_on", "drain", "failed"])
def test_never_counts_every_way_an_instance_ends(end: str) -> None:
    customer = Customer([flow("""
- branch: [{when: "event.properties.spin", goto: spin}, {else: rest}]
- id: rest
  wait: 1d
- id: spin
  goto: spin
""", "exit_on: [{event: stop}]")])
    customer.event("go", spin=end == "failed")
    if end == "exit_on":
        customer.event("stop")
    elif end == "drain":
        customer.drain("j")
    assert customer.instance("j") is None
    customer.event("go")
    assert _started(customer) == 1


def test_always_lets_a_customer_in_again_once_the_instance_ended() -> None:
    customer = Customer([flow(SHORT, "re_entry: always")])
    for _ in range(3):
        customer.event("go")
    assert _started(customer) == 3 and customer.channels() == ["sms"] * 3


@pytest.mark.parametrize("rule", ["never", "always", "after 1h"])
def test_one_running_instance_per_journey_and_customer_whatever_the_rule(rule: str) -> None:
    customer = Customer([flow(LONG, f"re_entry: {rule}")])
    customer.event("go")
    customer.pass_time(2 * DAY)
    changes = customer.event("go")
    assert _started(customer) == 1 and customer.channels() == ["sms"]
    assert changes.saved == set() and changes.new_timers == []


def test_two_triggers_in_one_batch_start_one_instance() -> None:
    customer = Customer([flow(LONG, "re_entry: always")])
    customer.apply(EventArrived(customer.make_event("go")), EventArrived(customer.make_event("go")))
    assert _started(customer) == 1 and len(customer.state.instances) == 1


def test_two_triggers_in_one_batch_start_two_instances_when_the_first_completes_at_once() -> None:
    customer = Customer([flow(SHORT, "re_entry: always")])
    customer.apply(EventArrived(customer.make_event("go")), EventArrived(customer.make_event("go")))
    assert customer.milestones() == ["started", "completed"] * 2
    assert len({a.message_id for a in customer.attempts}) == 2


# `after 7d` counts from when the last instance began: this one runs 3 days (the LONG steps).
@pytest.mark.parametrize(("since_start", "enters"), [
    (3 * DAY, False),  # just ended
    (7 * DAY - 1, False),
    (7 * DAY, True),
    (7 * DAY + 1, True),
    (30 * DAY, True),
])
def test_after_counts_from_the_start_of_the_last_instance(since_start: float, enters: bool) -> None:
    customer = Customer([flow(LONG, "re_entry: after 7d")])
    customer.event("go")
    customer.pass_time(since_start)
    assert customer.instance("j") is None
    customer.event("go")
    assert _started(customer) == (2 if enters else 1)


def test_after_counts_from_the_latest_instance_not_the_first() -> None:
    customer = Customer([flow(SHORT, "re_entry: after 1d")])
    customer.event("go")
    customer.pass_time(DAY)
    customer.event("go")  # second instance at START + 1d
    customer.pass_time(DAY - 1)
    customer.event("go")
    assert _started(customer) == 2
    customer.pass_time(1)
    customer.event("go")
    assert _started(customer) == 3
    assert customer.state.entries == {"j": START + 2 * DAY}


def test_re_entry_rules_are_per_journey() -> None:
    other = journey("""
id: other
trigger: {event: go}
re_entry: always
steps:
  - send: {template: offer, channels: [email]}
""")
    customer = Customer([flow(SHORT), other])
    customer.event("go")
    customer.event("go")
    assert customer.channels() == ["sms", "email", "email"]


def test_one_event_starts_every_journey_it_triggers() -> None:
    other = journey("""
id: other
trigger: {event: go}
steps:
  - send: {template: offer, channels: [email]}
""")
    customer = Customer([flow(SHORT), other])
    customer.event("go")
    assert sorted(customer.channels()) == ["email", "sms"]


GATED = journey(f"""
id: j
trigger: {{event: go, where: "event.properties.total >= 20"}}
steps:
  {SHORT}
""")


@pytest.mark.parametrize(("properties", "enters"), [
    ({"total": 20}, True), ({"total": 19}, False), ({"total": 1e9}, True), ({}, False),
])
def test_the_trigger_where_decides_entry(properties: dict[str, Any], enters: bool) -> None:
    customer = Customer([GATED])
    customer.event("go", **properties)
    assert _started(customer) == int(enters) and customer.errors() == []


def test_a_refused_entry_leaves_no_trace_and_a_later_one_still_enters() -> None:
    customer = Customer([GATED])
    customer.event("go", total=5)
    assert "j" not in customer.state.entries
    customer.event("go", total=25)
    assert _started(customer) == 1


def test_a_trigger_where_that_fails_is_recorded_and_does_not_enter() -> None:
    customer = Customer([GATED])
    customer.event("go", total="twenty")
    assert _started(customer) == 0
    assert [e.split(":")[0] for e in customer.errors()] == ["j.trigger.where"]


def test_the_trigger_where_sees_the_customer() -> None:
    customer = Customer([journey(f"""
id: j
trigger: {{event: go, where: "customer.vip"}}
steps:
  {SHORT}
""")], attributes={"vip": True})
    customer.event("go")
    assert _started(customer) == 1


def test_an_instance_starts_at_the_event_and_keeps_it() -> None:
    customer = Customer([flow(LONG)])
    customer.pass_time(HOUR)
    customer.event("go", cart="K1")
    instance = customer.instance("j")
    assert instance is not None
    assert instance.started_at == START + HOUR and instance.customer_id == "c1"
    assert instance.event["properties"] == {"cart": "K1"}
    [started] = [e for e in customer.of_kind("journey") if e["status"] == "started"]
    assert started["instance_id"] == instance.id and started["version"] == instance.version


def test_a_running_instance_of_an_older_version_still_counts_as_running() -> None:
    v2 = flow("""
- send: {template: offer, channels: [email]}
- wait: 3d
""", "re_entry: always")
    customer = Customer([flow(LONG, "re_entry: always")])
    customer.event("go")
    customer.reload(v2)
    customer.event("go")
    assert _started(customer) == 1 and customer.channels() == ["sms"]
    customer.pass_time(3 * DAY)
    customer.event("go")
    assert customer.channels() == ["sms", "email"]
