"""`branch` (the first case that holds wins, `else` otherwise) and `update` (vars and profile attributes, visible
to the steps after; a value that fails is an error on the timeline, the others are still set)."""

from __future__ import annotations

from typing import Any

import pytest
from harness import Customer, flow

from omnicanal.errors import JourneyError
from omnicanal.journey.effects import EventArrived

SIZES = flow("""
- branch:
    - {when: "event.properties.total >= 100", goto: big}
    - {when: "event.properties.total >= 50", goto: medium}
    - {else: small}
- id: big
  exit: {reason: big}
- id: medium
  exit: {reason: medium}
- id: small
  exit: {reason: small}
""")


@pytest.mark.parametrize(("properties", "path"), [
    ({"total": 150}, "big"),  # the second case holds too: the first one wins
    ({"total": 100}, "big"),
    ({"total": 99.99}, "medium"),
    ({"total": 50}, "medium"),
    ({"total": 49}, "small"),
    ({"total": 0}, "small"),
    ({}, "small"),  # no total: every case is false, quietly
    ({"total": None}, "small"),
])
def test_the_first_case_that_holds_wins_else_otherwise(properties: dict[str, Any], path: str) -> None:
    customer = Customer([SIZES])
    customer.event("go", **properties)
    assert customer.milestones() == ["started", f"exited ({path})"]


def test_a_case_that_fails_is_recorded_and_counts_as_false() -> None:
    customer = Customer([SIZES])
    customer.event("go", total="lots")
    assert customer.milestones() == ["started", "exited (small)"]
    assert [error.split(":")[0] for error in customer.errors()] == ["j.1_branch[0]", "j.1_branch[1]"]


@pytest.mark.parametrize(("condition", "attributes", "properties", "holds"), [
    ("customer.vip", {"vip": True}, {}, True),
    ("customer.vip", {"vip": False}, {}, False),
    ("customer.vip", {}, {}, False),
    ("customer.tier == 'gold'", {"tier": "gold"}, {}, True),
    ("event.properties.coupon == 'X'", {}, {}, False),
    ("event.properties.coupon == 'X'", {}, {"coupon": "X"}, True),
    ("'shoes' in event.properties.tags", {}, {"tags": ["shoes", "bags"]}, True),
    ("event.properties.tags | length > 2", {}, {"tags": ["a", "b"]}, False),
    ("event.name == 'go'", {}, {}, True),
    ("customer.id == 'c1'", {}, {}, True),
    ("customer.locale == 'en'", {}, {}, True),
    ("now.hour == 8", {}, {}, True),  # journey time: 08:00 UTC
    ("event.properties.total >= 100 or customer.vip", {}, {"total": 150}, True),
    ("customer.vip and event.properties.total >= 100", {}, {"total": 150}, False),
    ("customer.vip is not defined", {}, {}, True),
    ("not customer.vip | default(false)", {}, {}, True),
    ("customer.vip or event.properties.total >= 100", {}, {"total": 150}, True),
    ("not customer.vip", {}, {}, True),
])
def test_branch_conditions_over_customer_event_and_now(condition: str, attributes: dict[str, Any],
                                                       properties: dict[str, Any], holds: bool) -> None:
    customer = Customer([flow(f"""
- branch:
    - {{when: "{condition}", goto: hit}}
    - {{else: miss}}
- id: hit
  exit: {{reason: hit}}
- id: miss
  exit: {{reason: miss}}
""")], attributes=attributes)
    customer.event("go", **properties)
    assert customer.milestones()[-1] == ("exited (hit)" if holds else "exited (miss)")
    assert customer.errors() == []


# -- update -----------------------------------------------------------------------------------------------------


def test_update_vars_are_seen_by_later_steps() -> None:
    customer = Customer([flow("""
- update: {vars: {code: "'SAVE' ~ event.properties.pct", big: "event.properties.pct >= 20"}}
- branch:
    - {when: "vars.big", goto: big}
    - {else: small}
- id: big
  send: {template: offer, channels: [sms], data: {code: "vars.code"}}
- id: small
  send: {template: offer, channels: [email], data: {code: "vars.code"}}
""")])
    customer.event("go", pct=25)
    assert [(a.channel, a.content) for a in customer.attempts] == [
        ("sms", {"body": "offer SAVE25"}), ("email", {"subject": "offer", "text": "offer SAVE25"})]


@pytest.mark.parametrize(("written", "value"), [
    ("15", 15), ("2.5", 2.5), ("true", True), ("false", False), ("\"'text'\"", "text"),
    ("\"[1, 2] | sum\"", 3), ("\"{'a': 1}\"", {"a": 1}), ("\"event.properties.items | length\"", 2),
    ("\"event.properties.nothing | default('fallback')\"", "fallback"),
])
def test_update_values_literal_or_computed(written: str, value: Any) -> None:
    customer = Customer([flow(f"""
- update: {{vars: {{x: {written}}}, customer: {{y: {written}}}}}
- wait: 1h
""")])
    customer.event("go", items=["a", "b"])
    instance = customer.instance("j")
    assert instance is not None and instance.vars == {"x": value}
    assert customer.last.attributes == {"y": value}
    assert customer.state.customer["y"] == customer.state.customer["attributes"]["y"] == value


def test_update_customer_is_seen_by_later_steps_and_written_to_the_profile() -> None:
    customer = Customer([flow("""
- update: {customer: {vip: true, last_total: "event.properties.total"}}
- branch:
    - {when: "customer.vip and customer.last_total == 80", goto: vip}
    - {else: other}
- id: vip
  send: {template: echo, channels: [sms]}
- id: other
  exit: {reason: not vip}
""")], attributes={"first_name": "Alex"})
    changes = customer.event("go", total=80)
    assert changes.attributes == {"vip": True, "last_total": 80}
    assert customer.attempts[0].content["body"].endswith("vip=True")
    assert customer.state.customer["attributes"] == {"first_name": "Alex", "vip": True, "last_total": 80}


def test_update_overwrites_a_var_and_an_attribute() -> None:
    customer = Customer([flow("""
- update: {vars: {n: 1}}
- update: {vars: {n: "vars.n + 1"}, customer: {tier: "'gold'"}}
- wait: 1h
""")], attributes={"tier": "silver"})
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None and instance.vars == {"n": 2}
    assert customer.state.customer["tier"] == "gold"


def test_every_value_of_an_update_sees_the_scope_as_it_was_before_the_step() -> None:
    customer = Customer([flow("""
- update: {vars: {a: 10}}
- update: {vars: {a: 1, b: "vars.a + 1"}}
- wait: 1h
""")])
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None and instance.vars == {"a": 1, "b": 11}


def test_a_value_that_fails_is_an_error_and_the_others_are_set() -> None:
    customer = Customer([flow("""
- update:
    vars: {a: 1, b: "event.properties.missing", c: "'ok'"}
    customer: {d: "1 / 0", e: "'kept'"}
- send: {template: offer, channels: [sms]}
- wait: 1h
""")])
    changes = customer.event("go")
    assert [error.split(":")[0] for error in customer.errors()] == ["j.1_update.vars.b", "j.1_update.customer.d"]
    instance = customer.instance("j")
    assert instance is not None and instance.vars == {"a": 1, "c": "ok"}
    assert changes.attributes == {"e": "kept"}
    assert customer.channels() == ["sms"]  # the journey went on


def test_a_var_set_in_the_same_update_is_not_visible_to_its_neighbours() -> None:
    customer = Customer([flow("""
- update: {vars: {a: 1, b: "vars.a + 1"}}
- wait: 1h
""")])
    customer.event("go")
    assert customer.errors()[0].startswith("j.1_update.vars.b: ")
    instance = customer.instance("j")
    assert instance is not None and instance.vars == {"a": 1}


def test_an_attribute_named_like_a_profile_field_is_refused_at_load() -> None:
    """It would shadow the profile's field (`update: {customer: {consents: ...}}` would let marketing through an
    opt-out): the loader refuses it, naming the field and where consents change."""
    with pytest.raises(JourneyError, match=r"customer\.consents is a profile field, not an attribute"):
        flow("""
- update: {customer: {consents: "{}"}}
- send: {template: offer, channels: [sms, email]}
""")
    with pytest.raises(JourneyError, match=r"customer\.locale, customer\.timezone are profile fields"):
        flow("- update: {customer: {timezone: \"'Europe/Paris'\", locale: \"'fr'\", tier: \"'gold'\"}}")


def test_a_case_that_fails_does_not_stop_a_later_case_from_winning() -> None:
    customer = Customer([flow("""
- branch:
    - {when: "event.properties.total > 100", goto: big}
    - {when: "event.properties.vip", goto: vip}
    - {else: other}
- id: big
  exit: {reason: big}
- id: vip
  exit: {reason: vip}
- id: other
  exit: {reason: other}
""")])
    customer.event("go", total="a lot", vip=True)
    assert customer.milestones() == ["started", "exited (vip)"]
    assert len(customer.errors()) == 1


def test_an_update_that_changes_attributes_emits_customer_updated_once_per_visit() -> None:
    listener = flow("- wait: 1d").model_copy(update={"id": "on_gold", "trigger": flow("- wait: 1h").trigger.model_copy(
        update={"event": "customer.updated"})})
    updater = flow("""
- update: {customer: {tier: "'gold'", points: "10"}}
""")
    quiet = Customer([updater], attributes={"tier": "silver", "points": 10})
    quiet.event("go")
    assert quiet.last.emitted == []  # no journey listens: nothing to emit
    customer = Customer([updater, listener], attributes={"tier": "silver", "points": 10})
    customer.event("go")
    [event] = customer.last.emitted
    assert event["name"] == "customer.updated" and event["id"].startswith("evt_upd_")
    assert event["properties"]["changes"] == {"tier": {"from": "silver", "to": "gold"}}  # points did not change
    assert (event["properties"]["journey"], event["properties"]["step"]) == ("j", "1_update")


def test_a_journey_does_not_start_itself_from_its_own_update() -> None:
    loop = flow("""
- update: {customer: {visits: "(customer.visits | default(0)) + 1"}}
""", "re_entry: always").model_copy(update={"trigger": flow("- wait: 1h").trigger.model_copy(
        update={"event": "customer.updated"})})
    customer = Customer([loop])
    customer.apply(EventArrived({"id": "e1", "name": "customer.updated", "customer_id": "c1", "timestamp": "t",
                                 "properties": {"changes": {"x": {"from": 1, "to": 2}}, "source": "api"}}))
    [emitted] = customer.last.emitted
    customer.apply(EventArrived(emitted))
    assert customer.milestones() == ["started", "completed"]  # not started again by its own update
