"""Measurement end to end: the reference journey played for a population with known outcomes through the HTTP
API on real Redis, then `GET /v1/journeys/abandoned_cart/stats` must say exactly what happened — per step and
channel, conversions and revenue by where they happened, credit by attribution model — and so must
`omnicanal stats`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, StartApi, has_message, journey_ended, write_journey
from omnicanal.engine.clock import ManualClock
from test_cli import run
from test_reference_journey import CART, LEA

TOM = {**LEA, "attributes": {"first_name": "Tom"}, "channel_preference": []}


def order(channel: str, total: float) -> dict[str, Any]:
    return {"order_id": "T", "channel": channel, "items": [{"sku": "SKU-1", "name": "Sneakers", "price": total}],
            "total": total}


async def _population(start_api: StartApi) -> tuple[Api, dict[str, str]]:
    """Engine + API on a manual clock, and the reference journey played for a population: 3 buy in store after
    the push (100 each), 2 buy online after the e-mail reminder (50 each), 1 clicks the push and never buys.
    Returns the API and each customer's push message id.

    The journey's hour and 48 hours pass when every step before them is applied, not at a clock speed a busy
    machine may outrun. Journey time starts three days back, so that commands reading wall time (`omnicanal
    stats` without `--to`) see all of it."""
    clock = ManualClock(time.time() - 3 * 86400)
    api = await start_api(clock=clock)
    customers = [f"s{n}" for n in range(3)] + [f"w{n}" for n in range(2)] + ["k0"]
    for customer_id in customers:
        await api.put_customer(customer_id, TOM)
        await api.event("cart_abandoned", customer_id, properties=CART)
    await api.settled()
    clock.advance_to(clock.now() + 3600 + 1)  # no order in the first hour: the push
    pushes = {}
    for customer_id in customers:
        entries = await api.wait_until(customer_id, has_message("cart_discount"))
        pushes[customer_id] = next(e for e in entries if e.get("template") == "cart_discount")["message_id"]
    for n in range(3):
        await api.event("order_placed", f"s{n}", properties=order("store", 100.0))
    await api.event("message.clicked", "k0", properties={"message_id": pushes["k0"], "journey": "abandoned_cart",
                                                          "step": "push_discount", "channel": "push"})
    await api.settled()
    clock.advance_to(clock.now() + 48 * 3600 + 1)  # no order in the 48 hours: the reminder
    for customer_id in ("w0", "w1", "k0"):
        await api.wait_until(customer_id, journey_ended("abandoned_cart"))
    for n in range(2):
        await api.event("order_placed", f"w{n}", properties=order("web", 50.0))
    await api.settled()
    return api, pushes


async def test_stats_say_what_each_channel_and_step_did(start_api: StartApi) -> None:
    api, _ = await _population(start_api)
    stats = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200)
    assert stats["counts"]["started"] == 6 and stats["counts"]["converted"] == 5
    assert stats["counts"]["revenue"] == 400
    assert stats["by_where"] == {"store": {"conversions": 3, "revenue": 300}, "web": {"conversions": 2, "revenue": 100}}
    steps = {step["id"]: step for step in stats["steps"]}
    assert steps["push_discount"]["counts"]["sent"] == 6
    assert steps["push_discount"]["channels"]["push"] == {"sent": 6, "clicked": 1}
    assert steps["last_chance"]["channels"]["email"]["sent"] == 3
    assert steps["thank_you"]["counts"]["sent"] == 3  # only those who bought before the reminder are thanked

    def credit(model: str) -> dict[tuple[str, str, str], tuple[float, float]]:
        return {(row["where"], row["step"], row["channel"]): (row["conversions"], row["revenue"])
                for row in stats["attribution"][model]}

    assert credit("last") == {("store", "push_discount", "push"): (3, 300), ("web", "last_chance", "email"): (2, 100)}
    assert credit("first") == {("store", "push_discount", "push"): (3, 300), ("web", "push_discount", "push"): (2, 100)}
    assert credit("linear") == {("store", "push_discount", "push"): (3, 300), ("web", "push_discount", "push"): (1, 50),
                                ("web", "last_chance", "email"): (1, 50)}
    for model in ("last", "first", "linear"):
        assert sum(row["revenue"] for row in stats["attribution"][model]) == 400

    ranged = await api.request("GET", "/v1/journeys/abandoned_cart/stats?from=2000-01-01T00:00:00Z&bucket=day", 422)
    assert ranged["errors"][0]["field"] == "from"  # more than a year: refused, naming the parameter
    now = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200)
    last_week = await api.request("GET", f"/v1/journeys/abandoned_cart/stats?from={now['series'][0]['at']}", 200)
    assert last_week["counts"] == stats["counts"]  # everything happened in the range: the same totals
    assert sum(point["converted"] for point in last_week["series"]) == 5


async def test_counting_switched_off_writes_no_counter_and_sends_the_same(start_api: StartApi) -> None:
    """OMNICANAL_STATS=false (the bench's "cost of counting" row): the journey runs and sends as usual, the
    stats stay at zero."""
    api = await start_api(stats=False)
    await api.put_customer("lea", TOM)
    await api.event("cart_abandoned", "lea", properties=CART)
    await api.wait_until("lea", has_message("cart_discount"))
    await api.settled()
    stats = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200)
    assert not any(stats["counts"].values()), stats["counts"]
    assert all(not any(step["counts"].values()) for step in stats["steps"])


async def test_stats_refuse_what_makes_no_range(start_api: StartApi) -> None:
    api = await start_api()
    for query, field in (("bucket=week", "bucket"), ("from=yesterday", "from"),
                         ("from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to")):
        body = await api.request("GET", f"/v1/journeys/abandoned_cart/stats?{query}", 422)
        assert body["errors"][0]["field"] == field, body
    await api.request("GET", "/v1/journeys/nope/stats", 404)


async def test_stats_leave_out_the_hour_that_begins_at_to(start_api: StartApi) -> None:
    """[from, to): a day asked by the hour had 25 buckets, by the day 2 — the counts of the next day's first hour in
    both."""
    api = await start_api()
    query = "/v1/journeys/abandoned_cart/stats?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z"
    hourly = await api.request("GET", query + "&bucket=hour", 200)
    assert [len(hourly["series"]), hourly["series"][-1]["at"]] == [24, "2026-12-01T23:00:00.000Z"]
    daily = await api.request("GET", query + "&bucket=day", 200)
    assert [point["at"] for point in daily["series"]] == ["2026-12-01T00:00:00.000Z"]
    partial = await api.request("GET", query.replace("02T00:00", "01T10:30") + "&bucket=hour", 200)
    assert partial["series"][-1]["at"] == "2026-12-01T10:00:00.000Z"  # the hour `to` falls in still counts


@pytest.mark.parametrize("query", ["to=0001-01-02", "to=0001-01-03T05:00:00Z&bucket=day", "to=9999-12-31T23:59:59Z"])
async def test_stats_up_to_the_first_or_last_dates_are_answered(start_api: StartApi, query: str) -> None:
    """`?to=0001-01-01` without `from` made a week of series before year 1: a 500 (`year 0 is out of range`)."""
    api = await start_api()
    body = await api.request("GET", "/v1/journeys/abandoned_cart/stats?to=0001-01-01", 422)
    assert body["errors"] == [{"field": "to", "message": "`to` must be after 0001-01-01T00:00:00Z, the first date"}]
    body = await api.request("GET", f"/v1/journeys/abandoned_cart/stats?{query}", 200)
    assert body["series"] and all(point["at"] < body["to"] for point in body["series"]), body


@pytest.mark.slow
async def test_omnicanal_stats_prints_the_funnel(start_api: StartApi, redis_url: str) -> None:
    await _population(start_api)
    result = await asyncio.to_thread(run, "stats", "abandoned_cart", OMNICANAL_REDIS_URL=redis_url,
                                     OMNICANAL_PARTITIONS="4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["push_discount", "send", "6"] for line in lines), result.stdout
    assert "store" in result.stdout and "300" in result.stdout
    assert any("last" in line and "last_chance" in line and "email" in line for line in lines), result.stdout


COUPON_TEMPLATE = """
en:
  email:
    subject: "Your code"
    text: "Use {{ coupon.code }} before {{ coupon.expires_at }}"
"""
COUPON_JOURNEY = """
id: winback
trigger: {event: lapsed}
re_entry: always
steps:
  - id: offer
    send: {template: winback_code, channels: [email], coupon: {prefix: BACK, length: 8, valid_for: 2d}}
  - wait: 7d
"""


async def test_a_coupon_redeemed_at_the_till_is_tied_back_to_its_message(project: Path,
                                                                         start_api: StartApi) -> None:
    (project / "templates" / "winback_code.yaml").write_text(COUPON_TEMPLATE, encoding="utf-8")
    write_journey(project, "winback", COUPON_JOURNEY)
    clock = ManualClock(time.time())
    api = await start_api(clock=clock)
    for customer_id in ("cp1", "cp2"):
        await api.put_customer(customer_id, TOM)
        await api.event("lapsed", customer_id)
    codes = {}
    for customer_id in ("cp1", "cp2"):
        entries = await api.wait_until(customer_id, has_message("winback_code"))
        message = next(e for e in entries if e.get("template") == "winback_code")
        codes[customer_id] = message["coupon"]
        assert message["coupon"] in message["content"]["text"]
    assert codes["cp1"] != codes["cp2"] and all(code.startswith("BACK") for code in codes.values())

    till = {"channel": "store", "total": 75.0}
    await api.event("coupon.redeemed", "cp1", properties={"code": codes["cp1"], **till})
    await api.event("coupon.redeemed", "cp1", properties={"code": codes["cp1"], **till})  # twice: used
    await api.event("coupon.redeemed", "cp1", properties={"code": "BACKNOTACODE", **till})
    entries = await api.wait_until("cp1", lambda es: sum(e["kind"] == "coupon" for e in es) == 3)
    outcomes = [(e["status"], e.get("reason")) for e in entries if e["kind"] == "coupon"]
    assert outcomes == [("redeemed", None), ("refused", "used"), ("refused", "unknown")]
    redeemed = next(e for e in entries if e["kind"] == "coupon")
    assert (redeemed["journey"], redeemed["step"], redeemed["channel"], redeemed["revenue"]) == (
        "winback", "offer", "email", 75.0)

    clock.advance_to(clock.now() + 2 * 86400 + 1)  # cp2's coupon expires (2 journey days)
    await api.event("coupon.redeemed", "cp2", properties={"code": codes["cp2"], **till})
    entries = await api.wait_until("cp2", lambda es: any(e["kind"] == "coupon" for e in es))
    assert [(e["status"], e["reason"]) for e in entries if e["kind"] == "coupon"] == [("refused", "expired")]

    stats = await api.request("GET", "/v1/journeys/winback/stats", 200)
    assert stats["counts"]["coupons_redeemed"] == 1 and stats["counts"]["coupon_revenue"] == 75
    assert stats["reasons"]["coupons_refused"] == {"used": 1, "expired": 1}
    assert stats["attribution"]["coupon"] == [{"where": "store", "journey": "winback", "step": "offer",
                                               "channel": "email", "conversions": 1, "revenue": 75}]


async def test_one_purchase_is_one_conversion_of_a_journey_entered_several_times(project: Path,
                                                                                 start_api: StartApi) -> None:
    """A customer who went through a journey twice, both entries inside the goal's window, then bought once:
    one conversion worth the order, credited to the latest entry — not one per entry (revenue counted twice).
    A second purchase is a conversion of its own."""
    write_journey(project, "nudge", """
id: nudge
trigger: {event: browsed}
re_entry: always
goal: {event: order_placed, within: 3d}
steps:
  - send: {template: welcome, channels: [email]}
  - wait: 1h
""")
    clock = ManualClock(time.time() - 3 * 86400)
    api = await start_api(clock=clock)
    await api.put_customer("twice", TOM)
    for entered in (1, 2):
        await api.event("browsed", "twice")
        await api.settled()
        clock.advance_to(clock.now() + 3600 + 1)
        await api.wait_until("twice", lambda entries, done=entered: sum(
            e["kind"] == "journey" and e["status"] == "completed" for e in entries) == done)
    await api.event("browsed", "twice")  # a third entry, still running when the order comes
    await api.settled()
    await api.event("order_placed", "twice", properties=order("web", 80.0))
    await api.settled()
    entries = await api.timeline("twice")
    conversions = [e for e in entries if e["kind"] == "conversion"]
    latest = [e for e in entries if e["kind"] == "message"][-1]["message_id"]
    assert [(c["revenue"], c["attributed_to"]) for c in conversions] == [(80.0, [latest])]
    stats = await api.request("GET", "/v1/journeys/nudge/stats", 200)
    assert (stats["counts"]["converted"], stats["counts"]["revenue"]) == (1, 80)
    await api.event("order_placed", "twice", properties=order("web", 20.0))  # another purchase
    await api.settled()
    stats = await api.request("GET", "/v1/journeys/nudge/stats", 200)
    assert (stats["counts"]["converted"], stats["counts"]["revenue"]) == (2, 100)



async def test_entries_a_paused_journey_turned_away_are_in_its_stats(start_api: StartApi) -> None:
    """A paused journey records each entry it refuses as `skipped` (counter `skipped:paused`), but the stats
    dropped that counter: the brand could not see how many customers a pause cost."""
    api = await start_api()
    await api.request("POST", "/v1/journeys/abandoned_cart/pause", 202)
    for customer_id in ("p1", "p2"):
        await api.put_customer(customer_id, TOM)
        await api.event("cart_abandoned", customer_id, properties=CART)
    await api.settled()
    stats = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200)
    assert stats["counts"]["started"] == 0
    assert stats["reasons"]["skipped"] == {"paused": 2}, stats["reasons"]


async def test_a_message_is_delivered_and_clicked_once_however_many_receipts_come(start_api: StartApi) -> None:
    """Each receipt was counted: a link clicked three times, a delivery reported twice (under two ids) made one
    push `clicked 3, delivered 2` of `sent 1`, and a receipt naming no message of the customer was counted on
    whatever journey, step and channel it named. A receipt now counts once per message and status, on the step
    and channel that sent it."""
    api = await start_api()
    await api.put_customer("k0", TOM)
    await api.event("cart_abandoned", "k0", properties=CART)
    entries = await api.wait_until("k0", has_message("cart_discount"))
    push = next(e for e in entries if e.get("template") == "cart_discount")["message_id"]
    sent_by = {"journey": "abandoned_cart", "step": "push_discount", "channel": "push"}
    for _ in range(3):
        await api.event("message.clicked", "k0", properties={"message_id": push, **sent_by})
    for _ in range(2):
        await api.event("message.delivered", "k0", properties={"message_id": push, **sent_by})
    await api.event("message.clicked", "k0", properties=sent_by)  # no message
    await api.event("message.clicked", "k0", properties={"message_id": "nope", **sent_by, "channel": "sms"})
    await api.settled()
    stats = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200)
    steps = {step["id"]: step for step in stats["steps"]}
    assert steps["push_discount"]["channels"] == {"push": {"sent": 1, "delivered": 1, "clicked": 1}}
    assert stats["channels"] == {"push": {"sent": 1, "delivered": 1, "clicked": 1}}
