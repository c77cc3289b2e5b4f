"""Journey language, round two, in the pure core: experiments (split, holdout, global control), keyed instances
and waits until a moment taken from the data."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from harness import START, Customer, journey

from omnicanal.journey.effects import TimerFired

OFFER_TEST = journey("""
id: offer_test
trigger: {event: cart_abandoned}
re_entry: always
goal: {event: order_placed, within: 3d}
steps:
  - id: offer_test
    split:
      - {weight: 45, goto: push_offer}
      - {weight: 45, goto: email_offer}
      - {weight: 10, holdout: true}
  - id: push_offer
    send: {template: offer, channels: [sms]}
  - exit
  - id: email_offer
    send: {template: offer, channels: [email]}
""")


def _arm(customer: Customer) -> str:
    return next(e["arm"] for e in reversed(customer.timeline) if e["kind"] == "split")


def test_split_proportions_over_ten_thousand_customers_are_within_statistical_bounds() -> None:
    counts = {"push_offer": 0, "email_offer": 0, "holdout": 0}
    n = 10_000
    for number in range(n):
        customer = Customer([OFFER_TEST], customer_id=f"c{number}")
        customer.event("cart_abandoned")
        counts[_arm(customer)] += 1
    for arm, weight in (("push_offer", 0.45), ("email_offer", 0.45), ("holdout", 0.10)):
        bound = 4 * math.sqrt(n * weight * (1 - weight))  # four standard deviations
        assert abs(counts[arm] - n * weight) < bound, counts


def test_the_arm_is_sticky_on_re_entry_and_the_same_in_every_process() -> None:
    customer = Customer([OFFER_TEST], customer_id="sticky-7")
    arms = set()
    for _ in range(5):
        customer.event("cart_abandoned")
        arms.add(_arm(customer))
        customer.pass_time(4 * 86400)
    again = Customer([OFFER_TEST], customer_id="sticky-7")
    again.event("cart_abandoned")
    assert arms == {_arm(again)}


def _holdout_customer() -> Customer:
    number = 0
    while True:
        customer = Customer([OFFER_TEST], customer_id=f"h{number}")
        customer.event("cart_abandoned")
        if _arm(customer) == "holdout":
            return customer
        number += 1


def test_the_holdout_gets_no_message_and_its_conversion_counts() -> None:
    customer = _holdout_customer()
    assert customer.messages() == []
    instance = customer.instance("offer_test")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "holdout"
    customer.pass_time(86400)
    customer.event("order_placed")
    [conversion] = [e for e in customer.timeline if e["kind"] == "conversion"]
    assert conversion["arms"] == {"offer_test": "holdout"} and conversion["attributed_to"] == []
    assert customer.last.stats["offer_test"]["step:offer_test:arm:holdout:converted"] == 1
    customer.pass_time(3 * 86400)
    assert customer.milestones() == ["started", "exited (holdout)"]


def test_a_holdout_without_a_goal_window_exits_at_once() -> None:
    no_goal = journey("""
id: plain_test
trigger: {event: go}
steps:
  - split: [{weight: 1, goto: send_it}, {weight: 1000000, holdout: true}]
  - id: send_it
    send: {template: offer, channels: [email]}
""")
    customer = Customer([no_goal])
    customer.event("go")
    assert customer.milestones() == ["started", "exited (holdout)"]


def test_the_global_control_group_gets_no_marketing_and_its_goals_count() -> None:
    shop = journey("""
id: shop
trigger: {event: go}
goal: {event: order_placed}
steps:
  - send: {template: offer, channels: [email]}
  - send: {template: email_only, channels: [email], purpose: transactional}
  - wait: 1d
""")
    controlled = sent = 0
    for number in range(400):
        customer = Customer([shop], customer_id=f"g{number}", global_control=0.25)
        customer.event("go")
        customer.event("order_placed")
        assert customer.sent()[-1] == ("email_only", "email")  # transactional messages still go
        if customer.messages("control"):
            controlled += 1
            assert len(customer.sent()) == 1
        else:
            sent += 1
        assert [e["kind"] for e in customer.timeline].count("conversion") == 1
    assert 60 < controlled < 140 and controlled + sent == 400


APPOINTMENTS = journey("""
id: appointment
trigger: {event: appointment_booked, key: "event.properties.appointment_id"}
re_entry: never
exit_on: [{event: appointment_cancelled}]
steps:
  - wait_for: {event: appointment_cancelled, timeout: 1d, on_timeout: remind}
  - send: {template: email_only, channels: [email], purpose: transactional}
  - exit: {reason: cancelled}
  - id: remind
    send: {template: offer, channels: [email]}
""")


def test_two_keys_run_in_parallel_and_a_cancellation_reaches_only_its_own() -> None:
    customer = Customer([APPOINTMENTS])
    customer.event("appointment_booked", appointment_id="a1")
    customer.event("appointment_booked", appointment_id="a2")
    assert len(customer.state.instances) == 2
    customer.event("appointment_cancelled", appointment_id="a1")
    customer.pass_time(2 * 86400)
    assert len(customer.messages()) == 1  # a1 exited on its cancellation before its wait_for saw it
    assert [i.key for i in customer.state.instances.values()] == []
    keys = [e.get("key") for e in customer.timeline if e["kind"] == "journey" and e["status"] == "started"]
    assert keys == ["a1", "a2"]


def test_a_cancellation_without_exit_on_resumes_only_its_own_wait() -> None:
    waits_only = journey(APPOINTMENTS.source.replace("exit_on: [{event: appointment_cancelled}]\n", ""))
    customer = Customer([waits_only])
    customer.event("appointment_booked", appointment_id="a1")
    customer.event("appointment_booked", appointment_id="a2")
    customer.event("appointment_cancelled", appointment_id="a1")
    customer.pass_time(2 * 86400)
    assert sorted(t for t, _ in customer.sent()) == ["email_only", "offer"]  # a1 cancelled, a2 reminded
    assert len(customer.sent()) == 2


def test_an_event_without_a_key_reaches_every_key_and_any_key_sees_them_all() -> None:
    customer = Customer([journey("""
id: orders
trigger: {event: order_ready, key: "event.properties.order_id"}
exit_on: [{event: unsubscribed_all}, {event: store_closed, any_key: true}]
steps:
  - wait: 7d
""")])
    customer.event("order_ready", order_id=1)
    customer.event("order_ready", order_id=2)
    customer.event("order_ready", order_id="1")  # the same key as 1: no second instance
    assert len(customer.state.instances) == 2
    customer.event("store_closed", order_id=1)
    assert customer.state.instances == {}


def test_re_entry_applies_per_key() -> None:
    customer = Customer([APPOINTMENTS])
    customer.event("appointment_booked", appointment_id="a1")
    customer.event("appointment_cancelled", appointment_id="a1")
    customer.event("appointment_booked", appointment_id="a1")  # never again for a1
    customer.event("appointment_booked", appointment_id="a2")
    assert [i.key for i in customer.state.instances.values()] == ["a2"]


def test_a_keyed_trigger_without_its_key_does_not_start_and_says_why() -> None:
    customer = Customer([APPOINTMENTS])
    customer.event("appointment_booked")
    assert customer.state.instances == {}
    [error] = [e for e in customer.timeline if e["kind"] == "error"]
    assert error["where"] == "appointment.trigger.key"


PICKUP = journey("""
id: pickup
trigger: {event: order_ready}
steps:
  - wait: {at: "event.properties.pickup_deadline", offset: -1d, on_past: remind_now, on_error: bad_date}
  - send: {template: offer, channels: [email]}
  - exit: {reason: reminded}
  - id: remind_now
    send: {template: email_only, channels: [email], purpose: transactional}
  - exit: {reason: late}
  - id: bad_date
    exit: {reason: bad date}
""")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


@pytest.mark.parametrize("deadline", [
    _iso(START + 3 * 86400), START + 3 * 86400, int(START + 3 * 86400), _iso(START + 3 * 86400).replace("+00:00", "Z"),
])
def test_a_date_from_the_data_waits_until_the_day_before(deadline: object) -> None:
    customer = Customer([PICKUP])
    customer.event("order_ready", pickup_deadline=deadline)
    [due] = customer.timers.values()
    assert due == START + 2 * 86400
    customer.pass_time(2 * 86400)
    assert customer.milestones() == ["started", "exited (reminded)"]


def test_a_date_already_past_goes_to_on_past() -> None:
    customer = Customer([PICKUP])
    customer.event("order_ready", pickup_deadline=_iso(START + 3600))  # the day before is already past
    assert customer.sent() == [("email_only", "email")]
    assert customer.milestones() == ["started", "exited (late)"]


@pytest.mark.parametrize("bad", ["next tuesday", "", True, None, [1], float("nan"), 10 ** 30])
def test_a_malformed_or_missing_date_is_shown_and_goes_to_on_error(bad: object) -> None:
    customer = Customer([PICKUP])
    customer.event("order_ready", **({} if bad is None else {"pickup_deadline": bad}))
    assert customer.milestones() == ["started", "exited (bad date)"]
    [error] = [e for e in customer.timeline if e["kind"] == "error"]
    assert error["where"] == "pickup.1_wait.at"
    if bad is not None:
        assert repr(bad) in error["message"]


def test_without_on_error_a_bad_date_fails_the_journey() -> None:
    strict = journey("""
id: strict
trigger: {event: go}
steps:
  - wait: {at: "event.properties.when"}
  - send: {template: email_only, channels: [email]}
""")
    customer = Customer([strict])
    customer.event("go", when="soon")
    assert customer.milestones() == ["started", "failed (1_wait: not a date)"]


def test_a_whole_day_offset_keeps_the_wall_clock_time_across_a_dst_change() -> None:
    customer = Customer([PICKUP], profile={"addresses": {"email": "a@example.com"}, "timezone": "Europe/Paris"})
    customer.now = datetime(2027, 3, 20, 9, 0, tzinfo=UTC).timestamp()
    # Monday 29 March 2027 at 10:00 in Paris (CEST, UTC+2); the day before is Sunday 28 at 10:00 (CEST too, the
    # change is at 02:00 that night), and from Saturday's clock that is 23 h after Saturday 10:00 CET.
    customer.event("order_ready", pickup_deadline="2027-03-29T10:00:00+02:00")
    [due] = customer.timers.values()
    assert datetime.fromtimestamp(due, UTC) == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    customer2 = Customer([PICKUP], profile={"addresses": {"email": "a@example.com"}, "timezone": "Europe/Paris"})
    customer2.now = customer.now
    customer2.event("order_ready", pickup_deadline="2027-03-28T10:00:00")  # no offset: Paris time, CEST
    [due2] = customer2.timers.values()
    assert datetime.fromtimestamp(due2, UTC) == datetime(2027, 3, 27, 9, 0, tzinfo=UTC)  # Saturday 10:00 CET


def test_a_dated_wait_is_stale_once_the_instance_moved_on() -> None:
    customer = Customer([PICKUP])
    customer.event("order_ready", pickup_deadline=_iso(START + 3 * 86400))
    [(instance_id, token)] = customer.timers
    customer.pass_time(2 * 86400)
    customer.apply(TimerFired(instance_id, token))  # fired again (a re-delivered entry): nothing more
    assert len(customer.sent()) == 1
