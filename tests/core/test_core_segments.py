"""Segments in the pure core: aggregates kept from events, windows that expire by a timer, memberships evaluated
when the profile or an aggregate changes, and segment.entered / segment.left for the journeys that listen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from harness import DAY, Customer, flow, journey

from omnicanal.errors import SegmentError
from omnicanal.journey.audience import TIMER
from omnicanal.journey.effects import EventArrived
from omnicanal.journey.segments import Segments, load_segments

LAPSED_GOLD = """\
id: lapsed_gold
where: "customer.tier == 'gold' and aggregates.orders_90d == 0"
aggregates:
  orders_90d: {event: order_placed, count: true, within: 90d}
  spend_365d: {event: order_placed, sum: "event.properties.total", within: 365d}
  last_visit: {event: page_viewed, last: "event.properties.page"}
"""
BIG_SPENDER = """\
id: big_spender
where: "aggregates.spend_365d >= 100"
aggregates:
  spend_365d: {event: order_placed, sum: "event.properties.total", within: 365d}
"""

WELCOME_GOLD = journey("""
id: on_enter
trigger: {event: segment.entered, where: "event.properties.segment == 'lapsed_gold'"}
re_entry: always
steps:
  - wait: 1h
""")


def segments(tmp_path: Path, *texts: str) -> Segments:
    for n, text in enumerate(texts):
        (tmp_path / f"s{n}.yaml").write_text(text, encoding="utf-8")
    return load_segments(tmp_path)


def order(customer: Customer, total: float) -> None:
    customer.event("order_placed", total=total)


def test_counts_sums_and_last_values_are_kept_from_the_events_they_name(tmp_path: Path) -> None:
    customer = Customer([], attributes={"tier": "gold"}, segments=segments(tmp_path, LAPSED_GOLD))
    order(customer, 40)
    order(customer, 60.5)
    customer.event("page_viewed", page="/shoes")
    customer.event("page_viewed", page="/bags")
    customer.event("cart_abandoned")
    kept = customer.state.audience["a"]
    assert sum(kept["orders_90d"]["b"].values()) == 2
    assert sum(kept["spend_365d"]["b"].values()) == 100.5
    assert kept["last_visit"]["v"] == "/bags"
    assert customer.last.audience is False  # an event no aggregate counts changes nothing


def test_a_sum_of_something_that_is_not_a_number_is_an_error_on_the_timeline(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, BIG_SPENDER))
    order(customer, "a lot")  # type: ignore[arg-type]
    assert customer.errors() == ["aggregate spend_365d: event.properties.total gave 'a lot': a sum adds numbers"]
    assert "spend_365d" not in customer.state.audience.get("a", {})


def test_membership_follows_aggregates_and_the_index_is_told_of_every_segment_evaluated(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, LAPSED_GOLD, BIG_SPENDER))
    order(customer, 60)
    assert customer.state.audience["s"] == []
    assert customer.last.memberships == {"lapsed_gold": False, "big_spender": False}
    order(customer, 50)
    assert customer.state.audience["s"] == ["big_spender"]
    assert customer.last.memberships == {"lapsed_gold": False, "big_spender": True}


def test_a_90_day_window_expiring_with_no_event_moves_the_customer_in_on_the_90th_day(tmp_path: Path) -> None:
    customer = Customer([WELCOME_GOLD], attributes={"tier": "gold"}, segments=segments(tmp_path, LAPSED_GOLD))
    order(customer, 30)  # 2027-01-15 08:00 UTC
    assert customer.state.audience["s"] == []
    [due] = [due for (instance, _), due in customer.timers.items() if instance == TIMER]
    assert due == customer.now - 8 * 3600 + 90 * DAY  # the start of the order's day, plus 90 days
    customer.pass_time(90 * DAY - 9 * 3600)  # the evening before: still out
    assert customer.state.audience["s"] == []
    customer.pass_time(2 * 3600)
    assert customer.state.audience["s"] == ["lapsed_gold"]
    [entered] = customer.last.emitted
    assert (entered["name"], entered["properties"]) == ("segment.entered", {"segment": "lapsed_gold"})
    assert customer.last.memberships["lapsed_gold"] is True
    # the 365-day window of spend_365d keeps its own timer going
    assert [instance for instance, _ in customer.timers] == [TIMER]
    customer.apply(EventArrived(entered))
    assert customer.milestones() == ["started"]
    customer.pass_time(DAY)
    assert customer.last.emitted == []  # in already: entered once


def test_windowed_buckets_stay_bounded_however_many_events(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, LAPSED_GOLD))
    for _ in range(200):
        order(customer, 1)
        customer.pass_time(DAY)
    kept = customer.state.audience["a"]
    # one bucket a day; the order of 90 days ago left the window at midnight: the 89 of the days since remain
    assert len(kept["orders_90d"]["b"]) == 89 and sum(kept["orders_90d"]["b"].values()) == 89
    assert len(kept["spend_365d"]["b"]) == 200


def test_a_profile_change_re_evaluates_and_a_journey_listening_hears_it(tmp_path: Path) -> None:
    leaving = journey("""
id: on_leave
trigger: {event: segment.left}
steps:
  - exit
""")
    promote = flow("- update: {customer: {tier: \"'gold'\"}}")
    demote = flow("- update: {customer: {tier: \"'silver'\"}}").model_copy(update={"id": "k"})
    customer = Customer([WELCOME_GOLD, leaving, promote], segments=segments(tmp_path, LAPSED_GOLD))
    customer.event("go")
    assert customer.state.audience["s"] == ["lapsed_gold"]
    assert [e["name"] for e in customer.last.emitted] == ["segment.entered"]
    customer.reload(demote.model_copy(update={"trigger": demote.trigger.model_copy(update={"event": "stop"})}))
    customer.event("stop")
    assert customer.state.audience["s"] == []
    assert [e["name"] for e in customer.last.emitted] == ["segment.left"]


def test_customer_updated_from_the_api_re_evaluates(tmp_path: Path) -> None:
    customer = Customer([WELCOME_GOLD], attributes={"tier": "silver"}, segments=segments(tmp_path, LAPSED_GOLD))
    customer.state.customer["tier"] = customer.state.customer["attributes"]["tier"] = "gold"  # PUT wrote it
    customer.event("customer.updated", changes={"tier": {"from": "silver", "to": "gold"}}, source="api")
    assert customer.state.audience["s"] == ["lapsed_gold"]


def test_no_event_is_emitted_when_no_journey_listens(tmp_path: Path) -> None:
    customer = Customer([], attributes={"tier": "gold"}, segments=segments(tmp_path, LAPSED_GOLD))
    customer.event("customer.updated", changes={}, source="api")
    assert customer.state.audience["s"] == ["lapsed_gold"]
    assert customer.last.emitted == []


def test_an_event_applied_again_is_not_counted_again(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, BIG_SPENDER))
    customer.event("order_placed", unique=False, event_id="o1", total=80)
    customer.event("order_placed", unique=False, event_id="o1", total=80)
    assert sum(customer.state.audience["a"]["spend_365d"]["b"].values()) == 80


def test_a_replay_emits_the_same_event_ids(tmp_path: Path) -> None:
    customer = Customer([WELCOME_GOLD], attributes={"tier": "gold"}, segments=segments(tmp_path, LAPSED_GOLD))
    other = customer.fork()
    customer.event("customer.updated", event_id="u1", changes={})
    other.event("customer.updated", event_id="u1", changes={})
    assert customer.last.emitted == other.last.emitted != []


def test_data_kept_for_another_definition_starts_afresh(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, BIG_SPENDER))
    order(customer, 80)
    changed = tmp_path / "changed"
    changed.mkdir()
    customer.context = dataclasses.replace(customer.context, segments=segments(
        changed, BIG_SPENDER.replace("within: 365d", "within: 30d")))
    order(customer, 30)
    assert sum(customer.state.audience["a"]["spend_365d"]["b"].values()) == 30


@pytest.mark.parametrize(("text", "problem"), [
    (LAPSED_GOLD.replace("orders_90d == 0", "orders_30d == 0"), ":2: where: unknown aggregate 'orders_30d'"),
    (LAPSED_GOLD.replace("within: 90d", "within: 90 days"), ":4: aggregates.orders_90d.within: bad duration"),
    (LAPSED_GOLD.replace("count: true, ", ""), ":4: aggregates.orders_90d: an aggregate is exactly one of"),
    (LAPSED_GOLD.replace("id: lapsed_gold", "name: x"), ":1: missing required key 'id' in the segment"),
])
def test_a_bad_segment_file_is_reported_at_its_line(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SegmentError) as raised:
        segments(tmp_path, text)
    assert problem in str(raised.value)


GOLD = """\
id: gold
where: "customer.tier == 'gold'"
"""
VISITORS = """\
id: visitors
where: "aggregates.visits_7d >= 1"
aggregates:
  visits_7d: {event: page_viewed, count: true, within: 7d}
"""
ORDERED = """\
id: ordered
where: "aggregates.orders_90d > 0"
aggregates:
  orders_90d: {event: order_placed, count: true, within: 90d}
"""


def test_a_segment_is_evaluated_only_when_something_its_where_reads_changes(tmp_path: Path) -> None:
    set_tier = flow('- update: {customer: {tier: "event.properties.tier"}}', "re_entry: always")
    nickname = flow('- update: {customer: {nickname: "\'Lou\'"}}', "re_entry: always").model_copy(
        update={"id": "k"})
    nickname = nickname.model_copy(update={"trigger": nickname.trigger.model_copy(update={"event": "rename"})})
    customer = Customer([set_tier, nickname], segments=segments(tmp_path, GOLD, BIG_SPENDER))
    customer.event("go", tier="silver")
    assert customer.last.memberships == {"gold": False, "big_spender": False}  # the first evaluation: all
    order(customer, 150)
    assert customer.last.memberships == {"big_spender": True}  # gold reads no aggregate
    customer.event("rename")  # an update step changing an attribute no segment reads
    customer.event("go", tier="silver")  # ... or changing nothing
    customer.event("page_viewed")  # an event no aggregate counts
    customer.event("customer.updated", changes={"nickname": {"from": None, "to": "Lou"}}, source="api")
    assert customer.last.memberships == {} and customer.last.audience is False
    customer.state.customer["tier"] = customer.state.customer["attributes"]["tier"] = "gold"  # PUT wrote it
    customer.event("customer.updated", changes={"tier": {"from": "silver", "to": "gold"}}, source="api")
    assert customer.last.memberships == {"gold": True}
    assert customer.state.audience["s"] == ["big_spender", "gold"]
    customer.event("go", tier="silver")
    assert (customer.last.memberships, customer.state.audience["s"]) == ({"gold": False}, ["big_spender"])


@pytest.mark.parametrize("where", [
    "customer.timezone == 'Europe/Paris'",  # a profile field: changed by a PUT with no event naming it
    "customer.get('tier') == 'gold'",  # `get` may be the dict's method: what it reads is not known
    "customer | length > 100",
    "customer.tier == 'gold' and now.hour >= 0",  # true or false by time alone
])
def test_a_segment_reading_more_than_named_attributes_is_evaluated_at_every_change_of_the_profile(
        tmp_path: Path, where: str) -> None:
    customer = Customer([], segments=segments(tmp_path, f"id: wide\nwhere: \"{where}\"\n"))
    customer.event("customer.updated", changes={"nickname": {"from": None, "to": "Lou"}}, source="api")
    assert customer.last.memberships == {"wide": False}


def test_a_window_expiring_before_its_timer_fires_moves_the_membership_at_the_next_change(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, ORDERED, VISITORS))
    order(customer, 30)
    assert customer.state.audience["s"] == ["ordered"]
    customer.now += 91 * DAY  # the timer is late: an event comes first
    customer.event("page_viewed")
    assert customer.last.memberships == {"ordered": False, "visitors": True}
    assert customer.state.audience["s"] == ["visitors"]
    [due] = [due for (instance, _), due in customer.timers.items() if instance == TIMER]
    assert due > customer.now  # set for the visit's window now


def test_a_window_expiring_moves_only_the_segments_reading_it(tmp_path: Path) -> None:
    customer = Customer([], segments=segments(tmp_path, ORDERED, VISITORS))
    order(customer, 30)
    customer.event("page_viewed")
    customer.pass_time(8 * DAY)  # the visit left its 7-day window
    assert customer.last.memberships == {"ordered": True, "visitors": False}  # every segment, as the timer says
    assert customer.state.audience["s"] == ["ordered"]
    customer.pass_time(83 * DAY)
    assert customer.state.audience["s"] == []


def test_segments_defined_anew_are_all_evaluated_at_the_customers_next_change(tmp_path: Path) -> None:
    customer = Customer([], attributes={"tier": "gold"}, segments=segments(tmp_path, BIG_SPENDER))
    order(customer, 150)
    assert customer.state.audience["s"] == ["big_spender"]
    added = tmp_path / "added"
    added.mkdir()
    customer.context = dataclasses.replace(customer.context, segments=segments(added, BIG_SPENDER, GOLD))
    order(customer, 10)  # gold reads no aggregate, yet is evaluated: it was not there at the last evaluation
    assert customer.last.memberships == {"big_spender": True, "gold": True}
    assert customer.state.audience["s"] == ["big_spender", "gold"]
    order(customer, 10)
    assert customer.last.memberships == {"big_spender": True}
