"""Digests in the pure core: the matching events of a window (or until a time of day) collected, oldest first, at
most `max_items` listed but all counted, then one message; nothing collected, nothing sent."""

from __future__ import annotations

import pytest
from harness import HOUR, START, Customer, flow, journey, profile

from omnicanal.journey.effects import EventArrived
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours


def _digest(window: str = "window: 1h", extra: str = "", channels: str = "[email]", after: str = "",
            template: str = "listing") -> Customer:
    """Journey `d`: a `viewed` starts a digest of `viewed` events, then the steps `after` (YAML) run."""
    return Customer([journey(f"""
id: d
trigger: {{event: viewed}}
re_entry: always
exit_on: [{{event: unsubscribed}}]
steps:
  - digest: {{event: viewed, {window}, template: {template}, channels: {channels}{extra}}}
{after}
""")])


def _texts(customer: Customer) -> list[str]:
    return [a.content["text"] if "text" in a.content else a.content["body"] for a in customer.attempts]


def test_one_message_lists_the_events_of_the_window_oldest_first() -> None:
    customer = _digest()
    for sku in "ABC":
        customer.event("viewed", sku=sku)
        customer.pass_time(HOUR / 4)
    assert customer.attempts == []
    customer.pass_time(HOUR / 4)
    [attempt] = customer.attempts
    assert attempt.content == {"subject": "3 items", "text": "A,B,C"}
    assert customer.milestones() == ["started", "completed"]


def test_the_window_starts_with_the_first_event() -> None:
    customer = _digest()
    customer.event("viewed", sku="A")
    instance = customer.instance("d")
    assert instance is not None and instance.waiting is not None
    assert (instance.waiting.kind, instance.waiting.until) == ("digest", START + HOUR)


@pytest.mark.parametrize(("max_items", "views", "subject", "text"), [
    (2, 4, "4 items", "A,B"),
    (3, 3, "3 items", "A,B,C"),
    (1, 5, "5 items", "A"),
    (5, 2, "2 items", "A,B"),
])
def test_max_items_bounds_the_list_not_the_count(max_items: int, views: int, subject: str, text: str) -> None:
    customer = _digest(extra=f", max_items: {max_items}")
    for sku in "ABCDE"[:views]:
        customer.event("viewed", sku=sku)
    customer.pass_time(HOUR)
    assert customer.attempts[0].content == {"subject": subject, "text": text}


def test_where_filters_what_is_collected() -> None:
    customer = _digest(extra=", where: \"event.properties.sale\"")
    customer.event("viewed", sku="A", sale=True)
    customer.event("viewed", sku="B")
    customer.event("viewed", sku="C", sale=True)
    customer.event("searched", sku="D", sale=True)
    customer.pass_time(HOUR)
    assert _texts(customer) == ["A,C"]


def test_events_after_the_window_go_to_the_next_digest() -> None:
    customer = _digest()
    customer.event("viewed", sku="A")
    customer.pass_time(HOUR)
    customer.event("viewed", sku="B")
    customer.pass_time(HOUR)
    assert _texts(customer) == ["A", "B"]
    assert customer.milestones() == ["started", "completed"] * 2


def test_events_of_one_batch_after_the_trigger_are_collected() -> None:
    customer = _digest()
    customer.apply(*(EventArrived(customer.make_event("viewed", sku=sku)) for sku in "AB"))
    customer.pass_time(HOUR)
    assert _texts(customer) == ["A,B"]


def test_nothing_collected_sends_nothing_and_the_journey_goes_on() -> None:
    customer = Customer([flow("""
- digest: {event: viewed, window: 1h, template: listing, channels: [email]}
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")  # not a `viewed`: the window opens empty
    customer.pass_time(HOUR)
    assert customer.channels() == ["sms"]
    assert customer.milestones() == ["started", "completed"]


def test_the_step_after_a_digest_runs_once_it_is_sent() -> None:
    customer = _digest(after="  - send: {template: offer, channels: [sms]}")
    customer.event("viewed", sku="A")
    customer.pass_time(HOUR)
    assert customer.channels() == ["email", "sms"]


def test_digest_data_is_computed_and_items_and_count_are_added() -> None:
    customer = _digest(extra=", data: {note: \"'for ' ~ customer.first_name\"}")
    customer.state.customer["first_name"] = "Alex"
    customer.event("viewed", sku="A")
    customer.pass_time(HOUR)
    assert _texts(customer) == ["A for Alex"]


@pytest.mark.parametrize(("timezone", "due"), [
    ("UTC", START + 10 * HOUR),  # 08:00 → 18:00
    ("Europe/Paris", START + 9 * HOUR),  # 09:00 → 18:00
    ("Asia/Tokyo", START + HOUR),  # 17:00 → 18:00
    ("America/New_York", START + 15 * HOUR),  # 03:00 → 18:00
])
def test_until_collects_to_the_customers_next_clock_time(timezone: str, due: float) -> None:
    customer = _digest(window="until: \"18:00\"")
    customer.state.customer["timezone"] = timezone
    customer.event("viewed", sku="A")
    instance = customer.instance("d")
    assert instance is not None and instance.waiting is not None
    assert instance.waiting.until == due


def test_a_digest_due_in_quiet_hours_is_held_then_sent_with_everything() -> None:
    customer = Customer([journey("""
id: d
trigger: {event: viewed}
steps:
  - digest: {event: viewed, window: 12h, template: listing, channels: [email]}
""")], rules=Rules(quiet_hours=QuietHours.parse("20:00-08:00")))
    customer.event("viewed", sku="A")
    customer.pass_time(12 * HOUR)  # 20:00: quiet
    assert customer.attempts == [] and customer.messages("held")
    customer.event("viewed", sku="B")  # held: the window is closed, B is not in this digest
    customer.pass_time(12 * HOUR)
    assert _texts(customer) == ["A"]


@pytest.mark.parametrize("how", ["exit_on", "drain"])
def test_a_digest_ended_early_sends_nothing(how: str) -> None:
    customer = _digest()
    customer.event("viewed", sku="A")
    if how == "drain":
        customer.drain("d")
    else:
        customer.event("unsubscribed")
    customer.pass_time(2 * HOUR)
    assert customer.attempts == []
    assert customer.timers == {}


def test_a_digest_goes_on_the_first_channel_that_qualifies() -> None:
    customer = Customer(_digest(channels="[email, push]").journeys, profile=profile(addresses={"push": ["t"]}))
    customer.event("viewed", sku="A")
    customer.pass_time(HOUR)
    assert [(a.channel, a.content["body"]) for a in customer.attempts] == [("push", "A")]


def test_a_digest_that_failed_falls_back_to_the_next_channel() -> None:
    customer = _digest(template="offer", channels="[sms, email]", after="  - wait: 1d")
    customer.event("viewed", sku="A")
    customer.pass_time(HOUR)
    customer.event("message.failed", message_id=customer.attempts[0].message_id)
    assert customer.of_kind("fallback")
    assert [a.channel for a in customer.attempts] == ["sms", "email"]


def test_a_digest_in_a_loop_lists_each_event_once() -> None:
    customer = _digest(after="  - wait: 1h\n  - goto: 1_digest")
    customer.event("viewed", sku="A")
    customer.pass_time(2 * HOUR)
    customer.event("viewed", sku="B")
    customer.pass_time(2 * HOUR)
    assert _texts(customer) == ["A", "B"]


def test_a_digest_where_that_fails_is_recorded_under_its_step() -> None:
    customer = _digest(extra=", where: \"event.properties.price > 3\"")
    customer.event("viewed", price="cheap")
    assert [error.split(":")[0] for error in customer.errors()] == ["d.1_digest.where"]
