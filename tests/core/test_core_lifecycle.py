"""Pausing, resuming and stopping a journey, and cancelling what an event started, in the pure core."""

from __future__ import annotations

import dataclasses

from harness import HOUR, Customer, flow

from omnicanal.journey.core import instance_id_of
from omnicanal.journey.effects import CancelEvent, DrainJourney, ResumeJourney

JOURNEY = flow("""
- wait_for: {event: order, timeout: 2h, on_timeout: remind}
- exit: {reason: bought}
- id: remind
  send: {template: offer, channels: [sms]}
""")


def paused(customer: Customer, on: bool = True) -> None:
    customer.context = dataclasses.replace(customer.context, paused=frozenset({"j"} if on else ()))


def test_a_paused_journey_takes_no_new_entry_and_says_so() -> None:
    customer = Customer([JOURNEY])
    paused(customer)
    customer.event("go")
    assert customer.state.instances == {}
    assert customer.milestones() == ["skipped (paused)"]
    assert customer.stats["j"]["skipped:paused"] == 1


def test_events_and_timers_that_came_while_paused_apply_in_order_on_resume() -> None:
    customer = Customer([JOURNEY])
    customer.event("go")
    paused(customer)
    customer.pass_time(3 * HOUR)  # the timeout falls due while paused: kept
    customer.event("order")  # then the order: kept too, after it
    assert customer.attempts == [] and customer.milestones() == ["started"]
    paused(customer, on=False)
    customer.apply(ResumeJourney("j"))
    assert customer.milestones() == ["started", "completed"]  # the timeout first: the reminder, then the end
    assert [a.channel for a in customer.attempts] == ["sms"]


def test_on_resume_an_order_that_came_first_wins() -> None:
    customer = Customer([JOURNEY])
    customer.event("go")
    paused(customer)
    customer.event("order")
    customer.pass_time(3 * HOUR)
    paused(customer, on=False)
    customer.apply(ResumeJourney("j"))
    assert customer.milestones() == ["started", "exited (bought)"]
    assert customer.attempts == []


def test_stop_ends_every_instance_with_its_reason() -> None:
    customer = Customer([JOURNEY])
    customer.event("go")
    customer.apply(DrainJourney("j", "stopped"))
    assert customer.milestones() == ["started", "exited (stopped)"]


def test_cancelling_an_event_ends_what_it_started_and_nothing_else() -> None:
    waits = flow("- wait: 1d").model_copy(update={"id": "waits"})
    customer = Customer([JOURNEY, waits])
    customer.event("go", event_id="evt_first")
    assert {i.journey: i.id for i in customer.state.instances.values()} == {
        "j": instance_id_of("j", "evt_first"), "waits": instance_id_of("waits", "evt_first")}
    customer.apply(CancelEvent("evt_other"))  # another event's cancellation: nothing of this one
    assert len(customer.state.instances) == 2
    customer.apply(CancelEvent("evt_first"))
    assert customer.state.instances == {}
    assert customer.milestones().count("exited (cancelled)") == 2
    customer.pass_time(3 * HOUR)
    assert customer.attempts == []  # no further sends


def test_one_purchase_while_paused_converts_the_latest_entry_once_on_resume() -> None:
    """An earlier entry ended within its goal window, the customer entered again, the journey is paused when they
    buy: the running entry keeps the order for the resume and converts then; the ended one does not convert on the
    same order meanwhile (one purchase, one conversion of the journey)."""
    customer = Customer([flow("- send: {template: offer, channels: [sms]}\n- wait: 1h", """
re_entry: always
goal: {event: order, within: 3d}
""")])
    customer.event("go")
    customer.pass_time(2 * HOUR)  # the first entry completed, its goal window still open
    customer.event("go")
    paused(customer)
    customer.event("order", total=80)
    assert customer.of_kind("conversion") == []
    paused(customer, on=False)
    customer.apply(ResumeJourney("j"))
    [conversion] = customer.of_kind("conversion")
    assert conversion["revenue"] == 80
    assert customer.stats["j"]["converted"] == 1
