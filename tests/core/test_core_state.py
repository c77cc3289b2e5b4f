"""What the core leaves for the engine to write: instances as stored (`to_dict`/`from_dict`), where their event
sits on the timeline (and a copy when the timeline trims it), the changes' sets and counters, journey versions."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, START, Customer, flow

from omnicanal.journey.effects import EventArrived
from omnicanal.journey.state import Instance, Wait, customer_view
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours
from omnicanal.timestamps import iso

EVENT = {"id": "evt_1", "name": "go", "customer_id": "c1", "properties": {"total": 12.5},
         "timestamp": "2027-01-15T08:00:00.000Z"}


def _instance(**fields: Any) -> Instance:
    return Instance(id="i1", journey="j", version="v1", customer_id="c1", started_at=START, event=EVENT, **fields)


INSTANCES = {
    "defaults": _instance(),
    "waiting": _instance(position=2, seq=3, waiting=Wait("wait_for", "3", START + DAY)),
    "waiting without timer": _instance(waiting=Wait("wait_for", "1")),
    "vars": _instance(vars={"skus": ["A", "B"], "total": 12.5, "nested": {"k": [1, {"x": None}]}}),
    "converted with messages": _instance(converted=True, messages=["i1.1.sms", "i1.3.email"]),
    "digest": _instance(digest={"items": [{"sku": "A"}], "total": 3, "ready": False}),
    "retry": _instance(retry={"since": START, "attempts": 2, "exhausted": ["sms"]}),
    "fallbacks": _instance(fallbacks={"i1.1.sms": {"step": "1_send", "channels": ["email"], "due": START + HOUR}}),
    "event on the timeline": _instance(event_at=41),
}


@pytest.mark.parametrize("name", list(INSTANCES))
def test_an_instance_survives_the_stored_round_trip(name: str) -> None:
    instance = INSTANCES[name]
    stored = instance.to_dict()
    restored = Instance.from_dict({**stored, "id": instance.id, "customer_id": instance.customer_id,
                                   **({} if "event" in stored else {"event": EVENT})})
    assert restored == instance


def test_a_stored_instance_holds_only_what_differs_from_the_defaults() -> None:
    assert _instance().to_dict() == {"journey": "j", "version": "v1", "started_at": START, "position": 0,
                                     "seq": 0, "vars": {}, "event": EVENT}


def test_with_its_timeline_position_the_event_is_not_stored_and_the_position_comes_first() -> None:
    stored = _instance(event_at=7).to_dict()
    assert "event" not in stored and next(iter(stored)) == "event_at"


# -- the event's place on the timeline ---------------------------------------------------------------------------

WAITING = flow("- wait_for: {event: order}")


def test_an_instance_points_at_its_event_on_the_timeline() -> None:
    customer = Customer([WAITING])
    customer.state.timeline_end = 100  # entries before this session
    customer.apply(EventArrived(customer.make_event("noise")), EventArrived(customer.make_event("go", cart="K1")))
    instance = customer.instance("j")
    assert instance is not None and instance.event_at == 101
    assert customer.timeline[instance.event_at - 100]["event_id"] == instance.event["id"]


def test_the_resuming_event_becomes_the_one_pointed_at() -> None:
    customer = Customer([flow("""
- wait_for: {event: order}
- wait: 1d
""")])
    customer.event("go")
    customer.event("order", order_id="O-1")
    instance = customer.instance("j")
    assert instance is not None and instance.event_at is not None
    assert customer.timeline[instance.event_at]["properties"] == {"order_id": "O-1"}


@pytest.mark.parametrize(("limit", "noise", "copied"), [(3, 1, False), (3, 2, True), (10, 8, False), (10, 9, True)])
def test_an_instance_keeps_a_copy_of_its_event_when_the_timeline_trims_it(limit: int, noise: int,
                                                                           copied: bool) -> None:
    customer = Customer([WAITING], timeline_limit=limit)
    customer.event("go")  # timeline: the event (0), started (1)
    for _ in range(noise):
        changes = customer.event("noise")  # one entry each
    instance = customer.instance("j")
    assert instance is not None
    assert (instance.event_at is None) is copied
    assert ("event" in instance.to_dict()) is copied
    assert (instance.id in changes.saved) is copied  # written again, with its event


# -- the changes ----------------------------------------------------------------------------------------------


def test_a_started_instance_that_waits_is_saved_and_one_that_ends_is_ended() -> None:
    customer = Customer([flow("- wait: 1h")])
    changes = customer.event("go")
    instance = customer.instance("j")
    assert instance is not None
    assert (changes.saved, changes.ended, changes.entries) == ({instance.id}, set(), {})
    customer.pass_time(HOUR)
    assert (customer.last.saved, customer.last.ended, customer.last.entries) == (set(), {instance.id}, {"j": START})
    assert customer.state.instances == {} and customer.state.entries == {"j": START}


def test_an_instance_that_starts_and_ends_at_once_is_only_ended() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")])
    changes = customer.event("go")
    assert changes.saved == set() and len(changes.ended) == 1


def test_every_entry_of_a_session_is_at_the_sessions_moment() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")], now=START + 0.123456)
    customer.event("go", total=3)
    assert {e["at"] for e in customer.timeline} == {iso(START + 0.123456)} == {"2027-01-15T08:00:00.123Z"}
    [event] = customer.of_kind("event")
    assert {k: event[k] for k in ("name", "event_id", "properties", "occurred_at")} == {
        "name": "go", "event_id": "evt_1", "properties": {"total": 3}, "occurred_at": "2027-01-15T08:00:00.000Z"}


@pytest.mark.parametrize(("properties", "identified"), [
    ({"anonymous_id": "anon-7"}, ["anon-7"]),
    ({"anonymous_id": "c1"}, []),  # the customer themself
    ({"anonymous_id": 7}, []),
    ({}, []),
])
def test_identify_names_the_visitor_to_merge(properties: dict[str, Any], identified: list[str]) -> None:
    customer = Customer([])
    assert customer.event("identify", **properties).identified == identified


def test_an_anonymous_id_on_another_event_merges_nothing() -> None:
    customer = Customer([])
    assert customer.event("page_viewed", anonymous_id="anon-7").identified == []


@pytest.mark.parametrize(("ending", "status"), [
    ("resume", "completed"), ("timeout", "completed"), ("exit_on", "exited"), ("drain", "exited"),
])
def test_the_waiting_counter_comes_back_to_zero_however_the_wait_ends(ending: str, status: str) -> None:
    customer = Customer([flow("- wait_for: {event: order, timeout: 1d}", "exit_on: [{event: stop}]")])
    customer.event("go")
    assert customer.stats["j"]["step:1_wait_for:waiting"] == 1
    if ending == "resume":
        customer.event("order")
    elif ending == "timeout":
        customer.pass_time(DAY)
    elif ending == "exit_on":
        customer.event("stop")
    else:
        customer.drain("j")
    counters = customer.stats["j"]
    assert counters["step:1_wait_for:waiting"] == 0
    assert (counters["started"], counters[status]) == (1, 1)


def test_the_waiting_counter_of_a_hold_comes_back_to_zero() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")], now=START - 6 * HOUR,
                        rules=Rules(quiet_hours=QuietHours.parse("21:00-08:00")))
    customer.event("go")
    assert customer.stats["j"]["step:1_send:waiting"] == 1
    customer.pass_time(6 * HOUR)
    assert customer.stats["j"]["step:1_send:waiting"] == 0
    assert customer.stats["j"]["step:1_send:sent"] == customer.stats["j"]["completed"] == 1


def test_a_held_fallback_timer_is_added_again_not_removed() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms, email], fallback_after: 2h}
- wait: 1d
""")], rules=Rules(quiet_hours_by_channel={"sms": None}, quiet_hours=QuietHours.parse("09:00-12:00")))
    customer.event("go")
    message_id = customer.attempts[0].message_id
    customer.pass_time(2 * HOUR)  # 10:00: the e-mail is in quiet hours until 12:00
    token = f"fallback:{message_id}"
    assert all(t.token != token for t in customer.last.old_timers)
    assert [due for (_, t), due in customer.timers.items() if t == token] == [START + 4 * HOUR]


# -- journey versions ------------------------------------------------------------------------------------------


def test_an_instance_finishes_on_the_version_it_began_with() -> None:
    v1 = flow("""
- wait: 1d
- send: {template: offer, channels: [sms]}
""", "re_entry: always")
    v2 = flow("""
- wait: 1d
- send: {template: offer, channels: [email]}
""", "re_entry: always")
    customer = Customer([v1])
    customer.event("go")
    customer.reload(v2)
    customer.pass_time(DAY)
    customer.event("go")
    customer.pass_time(DAY)
    assert customer.channels() == ["sms", "email"]
    assert [e["version"] for e in customer.of_kind("journey") if e["status"] == "started"] == [v1.version, v2.version]


def test_the_customer_view_puts_profile_fields_over_attributes() -> None:
    view = customer_view("c1", {"locale": "fr", "timezone": "Europe/Paris"},
                         {"locale": "xx", "id": "forged", "tier": "gold"})
    assert (view["id"], view["locale"], view["timezone"], view["tier"]) == ("c1", "fr", "Europe/Paris", "gold")
    assert view["attributes"] == {"locale": "xx", "id": "forged", "tier": "gold"}
    assert (view["addresses"], view["consents"], view["channel_preference"]) == ({}, {}, [])

