"""Waits in the pure core: `wait: {until}` on the customer's clock (time zones, DST), and `wait_for` — which
events resume it (correlation, only those after the wait began), and what a timeout leads to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from harness import DAY, HOUR, START, Customer, flow, journey, profile

from omnicanal.journey.effects import EventArrived, TimerFired
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _waits_until(clock: str, now: float = START, timezone: str | None = None, default: str = "UTC") -> float:
    customer = Customer([flow(f"""
- wait: {{until: "{clock}"}}
- send: {{template: offer, channels: [sms]}}
""")], profile=profile(timezone=timezone), rules=Rules(default_timezone=default), now=now)
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.until is not None
    return instance.waiting.until


# START is 2027-01-15 08:00 UTC.
@pytest.mark.parametrize(("timezone", "clock", "due"), [
    ("UTC", "09:30", "2027-01-15 09:30"),
    ("UTC", "08:00", "2027-01-16 08:00"),  # the next 08:00, not now
    ("UTC", "07:59", "2027-01-16 07:59"),
    ("UTC", "08:01", "2027-01-15 08:01"),
    ("UTC", "00:00", "2027-01-16 00:00"),
    ("Europe/Paris", "09:30", "2027-01-15 08:30"),  # 09:00 in Paris: half an hour to go
    ("Europe/Paris", "08:00", "2027-01-16 07:00"),
    ("America/New_York", "09:30", "2027-01-15 14:30"),  # 03:00 in New York
    ("America/New_York", "02:00", "2027-01-16 07:00"),
    ("Asia/Tokyo", "09:30", "2027-01-16 00:30"),  # 17:00 in Tokyo
    ("Asia/Kolkata", "18:00", "2027-01-15 12:30"),  # a half-hour offset
])
def test_wait_until_is_the_next_time_the_customers_clock_shows_it(timezone: str, clock: str, due: str) -> None:
    assert _waits_until(clock, timezone=timezone) == _utc(due)


@pytest.mark.parametrize(("timezone", "default", "due"), [
    (None, "Europe/Paris", "2027-01-15 08:30"),
    ("Mars/Olympus_Mons", "Europe/Paris", "2027-01-15 08:30"),
    ("", "America/New_York", "2027-01-15 14:30"),
    ("Asia/Tokyo", "Europe/Paris", "2027-01-16 00:30"),  # the customer's own zone wins
])
def test_without_a_known_zone_the_brands_default_zone_decides(timezone: str | None, default: str, due: str) -> None:
    assert _waits_until("09:30", timezone=timezone, default=default) == _utc(due)


@pytest.mark.parametrize(("timezone", "now", "clock", "due"), [
    # Paris springs forward on 2027-03-28 at 02:00 (to 03:00): 02:30 does not exist, it moves to 03:30 CEST.
    ("Europe/Paris", "2027-03-27 12:00", "02:30", "2027-03-28 01:30"),
    ("Europe/Paris", "2027-03-27 12:00", "09:30", "2027-03-28 07:30"),
    ("Europe/Paris", "2027-03-27 07:00", "09:30", "2027-03-27 08:30"),  # the day before, still CET
    # Paris falls back on 2027-10-31 at 03:00 (to 02:00): 02:30 happens twice, the first one counts.
    ("Europe/Paris", "2027-10-30 12:00", "02:30", "2027-10-31 00:30"),
    ("Europe/Paris", "2027-10-30 12:00", "09:30", "2027-10-31 08:30"),
    # New York springs forward on 2027-03-14 at 02:00.
    ("America/New_York", "2027-03-13 17:00", "09:30", "2027-03-14 13:30"),
    ("America/New_York", "2027-03-13 17:00", "02:15", "2027-03-14 07:15"),
])
def test_wait_until_across_a_daylight_saving_change(timezone: str, now: str, clock: str, due: str) -> None:
    assert _waits_until(clock, now=_utc(now), timezone=timezone) == _utc(due)


def test_a_daily_wait_until_keeps_the_wall_clock_time_through_dst() -> None:
    customer = Customer([flow("""
- id: daily
  wait: {until: "09:30"}
- send: {template: offer, channels: [sms]}
- goto: daily
""")], profile=profile(timezone="Europe/Paris"), now=_utc("2027-03-26 12:00"))
    customer.event("go")
    customer.pass_time(3 * DAY)
    assert [m["at"] for m in customer.messages()] == [
        "2027-03-27T08:30:00.000Z", "2027-03-28T07:30:00.000Z", "2027-03-29T07:30:00.000Z"]


# -- wait_for: which event resumes it -------------------------------------------------------------------------

CART = journey("""
id: cart
trigger: {event: cart}
re_entry: always
steps:
  - update: {vars: {cart: "event.properties.cart_id"}}
  - wait_for: {event: order, where: "event.properties.cart_id == vars.cart", timeout: 2d, on_timeout: reminder}
  - send: {template: echo, channels: [sms]}
  - exit: {reason: bought}
  - id: reminder
    send: {template: offer, channels: [email]}
""")


@pytest.mark.parametrize(("name", "properties", "resumes"), [
    ("order", {"cart_id": "K1"}, True),
    ("order", {"cart_id": "K2"}, False),  # another cart's order
    ("order", {}, False),  # no cart id: false, not an error
    ("order", {"cart_id": None}, False),
    ("refund", {"cart_id": "K1"}, False),  # another event
])
def test_wait_for_resumes_on_the_correlated_event_only(name: str, properties: dict[str, Any], resumes: bool) -> None:
    customer = Customer([CART])
    customer.event("cart", cart_id="K1")
    customer.event(name, **properties)
    assert customer.milestones() == (["started", "exited (bought)"] if resumes else ["started"])
    assert customer.errors() == []


def test_the_resuming_event_becomes_the_event_of_the_steps_after() -> None:
    customer = Customer([CART])
    customer.event("cart", cart_id="K1", order_id="not this one")
    customer.event("order", cart_id="K1", order_id="O-7")
    assert customer.attempts[0].content["body"].startswith("order O-7 ")


def test_on_timeout_goes_to_its_step_and_the_event_stays_the_trigger() -> None:
    customer = Customer([CART])
    customer.event("cart", cart_id="K1")
    customer.pass_time(2 * DAY)
    assert customer.channels() == ["email"]
    assert customer.milestones() == ["started", "completed"]


@pytest.mark.parametrize(("after", "resumed"), [(2 * DAY - 1, True), (2 * DAY, False)])
def test_the_timeout_is_exact(after: float, resumed: bool) -> None:
    customer = Customer([CART])
    customer.event("cart", cart_id="K1")
    customer.pass_time(after)
    customer.event("order", cart_id="K1")
    assert customer.channels() == (["sms"] if resumed else ["email"])


def test_a_resumed_wait_removes_its_timer_and_a_late_firing_is_ignored() -> None:
    customer = Customer([CART])
    customer.event("cart", cart_id="K1")
    [(instance_id, token)] = customer.timers
    changes = customer.event("order", cart_id="K1")
    assert [(t.instance_id, t.token) for t in changes.old_timers] == [(instance_id, token)]
    customer.apply(TimerFired(instance_id, token))  # fired just before the removal reached the store
    customer.pass_time(3 * DAY)
    assert customer.channels() == ["sms"]


def test_two_journeys_waiting_for_the_same_event_both_resume() -> None:
    other = journey("""
id: other
trigger: {event: cart}
steps:
  - wait_for: {event: order}
  - send: {template: offer, channels: [push]}
""")
    customer = Customer([CART, other])
    customer.event("cart", cart_id="K1")
    customer.event("order", cart_id="K1")
    assert sorted(customer.channels()) == ["push", "sms"]


def test_a_wait_for_resumes_once_later_events_do_nothing() -> None:
    customer = Customer([journey("""
id: j
trigger: {event: go}
steps:
  - wait_for: {event: order}
  - send: {template: offer, channels: [sms]}
  - wait: 1d
""")])
    customer.event("go")
    customer.event("order")
    customer.event("order")
    assert customer.channels() == ["sms"]


# -- only events after the wait began --------------------------------------------------------------------------

LATER = flow("""
- wait: 1h
- wait_for: {event: order, timeout: 1d}
- send: {template: echo, channels: [sms]}
""")


def test_an_event_before_the_wait_began_does_not_count() -> None:
    customer = Customer([LATER])
    customer.event("go")
    customer.pass_time(HOUR / 2)
    customer.event("order", order_id="early")
    customer.pass_time(HOUR)
    assert customer.sent() == []
    customer.event("order", order_id="late")
    assert customer.attempts[0].content["body"].startswith("order late ")


def test_the_event_that_started_the_journey_does_not_resume_its_first_wait_for() -> None:
    customer = Customer([journey("""
id: j
trigger: {event: order}
steps:
  - wait_for: {event: order}
  - send: {template: offer, channels: [sms]}
""")])
    customer.event("order")
    assert customer.sent() == []
    customer.event("order")
    assert customer.channels() == ["sms"]


def test_an_event_applied_before_the_trigger_in_the_same_batch_does_not_count() -> None:
    customer = Customer([CART])
    customer.apply(EventArrived(customer.make_event("order", cart_id="K1")),
                   EventArrived(customer.make_event("cart", cart_id="K1")))
    assert customer.milestones() == ["started"]
    customer.apply(EventArrived(customer.make_event("order", cart_id="K1")),
                   EventArrived(customer.make_event("order", cart_id="K1")))
    assert customer.channels() == ["sms"]


# -- timeouts and vars.timed_out -----------------------------------------------------------------------------

TIMED = flow("""
- wait_for: {event: order, timeout: 1h}
- branch:
    - {when: "vars.timed_out", goto: late}
    - {else: early}
- id: early
  exit: {reason: early}
- id: late
  exit: {reason: late}
""")


@pytest.mark.parametrize(("order_after", "reason"), [(HOUR / 2, "early"), (None, "late")])
def test_vars_timed_out_says_how_the_wait_ended(order_after: float | None, reason: str) -> None:
    customer = Customer([TIMED])
    customer.event("go")
    if order_after is not None:
        customer.pass_time(order_after)
        customer.event("order")
    customer.pass_time(2 * HOUR)
    assert customer.milestones() == ["started", f"exited ({reason})"]


def test_vars_timed_out_is_reset_by_the_next_wait_for_that_resumes() -> None:
    customer = Customer([flow("""
- wait_for: {event: order, timeout: 1h}
- wait_for: {event: order, timeout: 1h}
- send: {template: echo, channels: [sms]}
""")])
    customer.event("go")
    customer.pass_time(HOUR)
    customer.event("order")
    assert "('timed_out', False)" in customer.attempts[0].content["body"]


def test_a_timeout_without_on_timeout_continues_with_the_next_step() -> None:
    customer = Customer([flow("""
- wait_for: {event: order, timeout: 1h}
- send: {template: echo, channels: [sms]}
""")])
    customer.event("go")
    customer.pass_time(HOUR)
    [attempt] = customer.attempts
    assert attempt.content["body"] == "go - vars=[('timed_out', True)] vip=-"


def test_wait_for_where_sees_vars_and_the_customer() -> None:
    customer = Customer([flow("""
- update: {vars: {minimum: 20}}
- wait_for: {event: order, where: "event.properties.total >= vars.minimum and customer.vip"}
- send: {template: offer, channels: [sms]}
""")], attributes={"vip": True})
    customer.event("go")
    customer.event("order", total=10)
    assert customer.sent() == []
    customer.event("order", total=20)
    assert customer.channels() == ["sms"]


def test_a_where_that_fails_is_recorded_and_does_not_resume() -> None:
    customer = Customer([flow("""
- wait_for: {event: order, where: "event.properties.total > 10"}
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    customer.event("order", total="a lot")
    assert customer.sent() == []
    [error] = customer.errors()
    assert error.startswith("j.1_wait_for.where: ")
    customer.event("order", total=11)
    assert customer.channels() == ["sms"]


def test_two_wait_fors_in_a_row_need_two_events() -> None:
    customer = Customer([flow("""
- wait_for: {event: order}
- wait_for: {event: order}
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    customer.event("order")
    assert customer.sent() == []
    customer.event("order")
    assert customer.channels() == ["sms"]


def test_an_event_during_a_held_send_does_not_count_for_the_wait_for_after_it() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms]}
- wait_for: {event: order, timeout: 1d}
- exit: {reason: bought}
""")], rules=Rules(quiet_hours=QuietHours.parse("07:00-09:00")))
    customer.event("go")  # 08:00: held until 09:00
    customer.event("order")
    customer.pass_time(HOUR)
    assert customer.channels() == ["sms"] and customer.milestones() == ["started"]
    customer.event("order")
    assert customer.milestones() == ["started", "exited (bought)"]
