"""Each step kind and journey rule, through journey files and the HTTP API, on real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import StartApi, has_message, journey_ended, write_journey
from omnicanal.engine.clock import ManualClock

TOM = {"attributes": {"first_name": "Tom"}, "locale": "en",
       "addresses": {"email": "tom@example.com", "sms": "+447911123456", "push": ["tok-1"]}}
ORDER = {"order_id": "A-1", "channel": "web", "items": [{"sku": "S", "name": "Scarf", "price": 30.0}],
         "total": 30.0}



BRANCHING = """
id: vip_or_not
trigger: {event: cart_abandoned}
re_entry: always
steps:
  - update:
      vars: {total: "event.properties.total"}
      customer: {last_cart_total: "event.properties.total", carts_seen: "(customer.carts_seen | default(0)) + 1"}
  - id: choose
    branch:
      - {when: "vars.total >= 100", goto: vip}
      - {else: standard}
  - id: vip
    send: {template: cart_discount, channels: [sms], data: {percent: "20"}}
  - exit: {reason: vip}
  - id: standard
    send: {template: cart_discount, channel: push}
"""


async def test_branch_goes_each_way_and_update_writes_the_profile(project: Path, start_api: StartApi) -> None:
    write_journey(project, "vip_or_not", BRANCHING)
    api = await start_api()
    for customer_id, total in (("big", 150.0), ("small", 30.0)):
        await api.put_customer(customer_id, TOM)
        items = [{"sku": "S", "name": "Scarf", "price": total}]
        await api.event("cart_abandoned", customer_id, properties={"items": items, "total": total})
    big = await api.wait_until("big", journey_ended("vip_or_not"))
    small = await api.wait_until("small", journey_ended("vip_or_not"))
    big_sent = [m for m in big if m["kind"] == "message" and m["step"] in ("vip", "standard")]
    assert [(m["step"], m["channel"]) for m in big_sent] == [("vip", "sms")]
    assert "20%" in big_sent[0]["content"]["body"]
    assert big[-1]["reason"] == "vip"
    small_sent = [m for m in small if m["kind"] == "message" and m["step"] in ("vip", "standard")]
    assert [(m["step"], m["channel"]) for m in small_sent] == [("standard", "push")]
    assert small[-1]["status"] == "completed"
    profile = await api.request("GET", "/v1/customers/big", 200)
    assert profile["attributes"] == {"first_name": "Tom", "last_cart_total": 150.0, "carts_seen": 1}


EXIT_AND_GOAL = """
id: nurture
trigger: {event: signed_up}
exit_on:
  - {event: unsubscribed_all}
goal: {event: order_placed, within: 2d}
steps:
  - send: {template: welcome, channels: [email]}
  - wait: 3d
  - send: {template: welcome_tips, channels: [email]}
"""


async def test_exit_on_ends_the_instance_and_cancels_its_timer(project: Path, start_api: StartApi) -> None:
    write_journey(project, "nurture", EXIT_AND_GOAL)
    (project / "journeys" / "welcome_series.yaml").unlink()  # it starts on signed_up too
    api = await start_api(clock_speed=3600.0)  # the 3 days last 72 s: the test ends long before
    await api.put_customer("u1", TOM)
    await api.event("signed_up", "u1")
    await api.wait_until("u1", has_message("welcome"))
    assert await api.runtime.queue.waiting_timers() == 1
    await api.event("unsubscribed_all", "u1")
    entries = await api.wait_until("u1", journey_ended("nurture"))
    assert entries[-1]["status"] == "exited" and entries[-1]["reason"] == "exit_on unsubscribed_all"
    await api.settled()
    assert await api.runtime.queue.waiting_timers() == 0
    assert (await api.request("GET", "/v1/customers/u1", 200))["journeys"] == []


async def test_goal_is_a_conversion_only_within_its_window(project: Path, start_api: StartApi) -> None:
    write_journey(project, "nurture", EXIT_AND_GOAL)
    api = await start_api(clock_speed=3600.0)
    await api.put_customer("u2", TOM)
    await api.event("signed_up", "u2")
    await api.wait_until("u2", has_message("welcome"))
    await api.event("order_placed", "u2", properties=ORDER)
    await api.event("order_placed", "u2", properties=ORDER)  # a second purchase: still one conversion
    await api.settled()
    entries = await api.timeline("u2")
    conversions = [e for e in entries if e["kind"] == "conversion" and e["journey"] == "nurture"]
    assert len(conversions) == 1
    welcome = next(e for e in entries if e.get("template") == "welcome")
    assert conversions[0]["attributed_to"] == [welcome["message_id"]]
    customer = await api.request("GET", "/v1/customers/u2", 200)
    assert customer["journeys"][0]["converted"] is True  # the goal does not end the journey
    journey = await api.request("GET", "/v1/journeys/nurture", 200)
    assert journey["counts"]["converted"] == 1


async def test_same_idempotency_key_same_id_one_effect(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c1", TOM)
    body = {"items": [{"sku": "S", "name": "Scarf", "price": 50.0}], "total": 50.0}
    first = await api.event("cart_abandoned", "c1", idempotency_key="cart-1", properties=body)
    again = await api.event("cart_abandoned", "c1", idempotency_key="cart-1", properties=body)
    other = await api.event("cart_abandoned", "c1", idempotency_key="cart-2", properties=body)
    assert first == again != other
    await api.settled()
    entries = await api.timeline("c1")
    assert [e["event_id"] for e in entries if e["kind"] == "event"] == [first, other]
    started = [e for e in entries if e["kind"] == "journey" and e["status"] == "started"]
    assert len(started) == 1  # the second cart finds the journey running: one instance per customer


async def test_re_entry_never_refuses_a_second_start(project: Path, start_api: StartApi) -> None:
    api = await start_api(clock_speed=1e7)
    await api.put_customer("w", TOM)
    await api.event("signed_up", "w")
    await api.wait_until("w", journey_ended("welcome_series"))
    await api.event("signed_up", "w")
    await api.settled()
    started = [e for e in await api.timeline("w") if e["kind"] == "journey" and e["status"] == "started"]
    assert len(started) == 1


async def test_one_customers_events_apply_in_arrival_order(start_api: StartApi) -> None:
    api = await start_api()
    ids = [await api.event("page_viewed", "o1", properties={"n": n}) for n in range(40)]
    await api.settled()
    seen = [e["event_id"] for e in await api.timeline("o1") if e["kind"] == "event"]
    assert seen == ids


async def test_a_missing_template_variable_fails_the_send_visibly(project: Path, start_api: StartApi) -> None:
    write_journey(project, "ready", """
id: ready
trigger: {event: order_ready_for_pickup}
steps:
  - send: {template: click_collect_ready, channels: [sms]}
""")
    api = await start_api()
    await api.put_customer("r1", TOM)
    await api.event("order_ready_for_pickup", "r1", properties={"order_id": "A-9"})  # no `store`
    entries = await api.wait_until("r1", journey_ended("ready"))
    [message] = [e for e in entries if e["kind"] == "message"]
    assert message["status"] == "failed" and "store" in message["error"]
    assert "content" not in message
    assert (await api.request("GET", "/v1/outbox?customer_id=r1", 200))["messages"] == []


async def test_no_reachable_channel_is_suppressed_with_reasons(project: Path, start_api: StartApi) -> None:
    api = await start_api(clock_speed=1e6)
    await api.put_customer("nob", {"attributes": {"first_name": "No"}, "addresses": {"sms": "+33600000000"}})
    await api.event("signed_up", "nob")
    entries = await api.wait_until("nob", has_message("welcome", status="suppressed"))
    welcome = next(e for e in entries if e.get("template") == "welcome")
    assert welcome["skipped"] == [{"channel": "email", "reason": "no address"},
                                  {"channel": "push", "reason": "no address"}]
    welcome_offer = await api.wait_until("nob", has_message("welcome_offer"))
    assert next(e for e in welcome_offer if e.get("template") == "welcome_offer")["channel"] == "sms"


async def test_a_goto_loop_without_wait_fails_the_instance(project: Path, start_api: StartApi) -> None:
    write_journey(project, "spin", """
id: spin
trigger: {event: spin}
steps:
  - id: again
    update: {vars: {n: "(vars.n | default(0)) + 1"}}
  - goto: again
""")
    api = await start_api()
    await api.event("spin", "s1")
    entries = await api.wait_until("s1", journey_ended("spin"))
    assert entries[-1]["status"] == "failed"
    assert any(e["kind"] == "error" and "goto loop" in e["message"] for e in entries)
    await asyncio.sleep(0)


async def test_values_without_a_plain_json_form_are_stored_not_lost(project: Path, start_api: StartApi) -> None:
    """An expression can build a mapping with number keys or an integer beyond 64 bits: the instance waiting
    with them and the attribute are stored (keys as text, as JSON has them) and the journey goes on."""
    write_journey(project, "odd_values", """
id: odd_values
trigger: {event: odd}
steps:
  - update:
      vars: {by_size: "{1: 'one', 2: 'two'}", huge: "2 ** 70"}
      customer: {sizes: "{1: 'one'}"}
  - wait_for: {event: resume, timeout: 1d}
  - branch:
      - {when: "vars.by_size['1'] == 'one' and vars.huge > 2 ** 69", goto: kept}
      - {else: lost}
  - id: kept
    exit: {reason: kept}
  - id: lost
    exit: {reason: lost}
""")
    api = await start_api()
    await api.event("odd", "o1")
    await api.settled()
    await api.event("resume", "o1")
    entries = await api.wait_until("o1", journey_ended("odd_values"))
    assert entries[-1]["reason"] == "kept"
    profile = await api.request("GET", "/v1/customers/o1", 200)
    assert profile["attributes"]["sizes"] == {"1": "one"}


async def test_re_entry_after_counts_from_the_last_entry(project: Path, start_api: StartApi) -> None:
    """`re_entry: after 3h`: no second instance while one runs, none within 3 h of the last entry once it ended,
    and one again 3 h after that entry — counted from when the instance began, not from when it ended."""
    write_journey(project, "comeback", """
id: comeback
trigger: {event: visited}
re_entry: after 3h
steps:
  - wait: 1h
""")
    clock = ManualClock(time.time())
    entry = clock.now()
    api = await start_api(clock=clock)
    await api.event("visited", "r1")
    await api.event("visited", "r1")  # running: refused
    await api.settled()
    clock.advance_to(entry + 3600 + 1)
    await api.wait_until("r1", journey_ended("comeback"))
    await api.event("visited", "r1")  # ~1 h after the entry: refused
    await api.settled()
    clock.advance_to(entry + 3.5 * 3600)  # 3.5 h after the entry, 2.5 h after the end
    await api.event("visited", "r1")
    await api.settled()
    journey = [e["status"] for e in await api.timeline("r1") if e["kind"] == "journey"]
    assert journey == ["started", "completed", "started"]
