"""The journey examples of DESIGN.md (the contract users read) load and run as written."""

from __future__ import annotations

from pathlib import Path

from conftest import StartApi, journey_ended, sent, write_journey
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import BranchStep, SendStep, WaitForStep

SHAPE = """\
id: abandoned_cart
trigger: {event: cart_abandoned, where: "event.properties.total >= 20"}
re_entry: after 7d            # never | always | after <duration>
exit_on:                       # goal / exit criteria, checked on every event
  - {event: unsubscribed_all}
goal: {event: order_placed, within: 3d}   # conversion, attributed to the touchpoints before it
steps:
  - wait: 1h
  - send:
      template: cart_discount
      channels: [push, sms, email]   # first allowed channel wins: address, consent, preference, caps
  - wait_for: {event: order_placed, timeout: 48h, on_timeout: last_chance}
  - send: {template: order_thanks, channels: [whatsapp, sms]}
  - exit
  - id: last_chance
    send: {template: cart_reminder, channels: [email]}
"""

EVERY_STEP = """\
id: every_step
trigger: {event: cart_abandoned}
steps:
  - update:                                   # profile attributes and instance variables, from expressions
      vars: {cart_id: "event.properties.cart_id", total: "event.properties.total"}
      customer: {last_cart_total: "event.properties.total"}
  - id: choose
    branch:                                   # first true `when` wins; `else` is required
      - {when: "vars.total >= 100", goto: vip_offer}
      - {else: standard_offer}
  - id: vip_offer
    send: {template: cart_discount, channels: [whatsapp, sms], data: {percent: "15"}}
  - goto: wait_order
  - id: standard_offer
    send: {template: cart_discount, channel: push}
  - id: wait_order
    wait_for:                                 # only events that arrive after the wait began count
      event: order_placed
      where: "event.properties.cart_id == vars.cart_id"
      timeout: 48h
      on_timeout: reminder                    # omitted: continue with the next step, `vars.timed_out` true
  - send: {template: order_thanks, channels: [whatsapp, sms]}
  - exit                                      # or {exit: {reason: bought}}
  - id: reminder
    send: {template: cart_reminder, channels: [email]}
"""
"""DESIGN.md's every-step example, with `cart_vip` (a template the example names but we do not ship) replaced
by `cart_discount`, and the id and trigger the fragment leaves out."""


def test_the_shape_example_loads() -> None:
    journey = parse_journey(SHAPE, "DESIGN.md")
    assert [step.kind for step in journey.steps] == ["wait", "send", "wait_for", "send", "exit", "send"]
    assert journey.re_entry.after == 7 * 86400 and journey.goal is not None and journey.goal.within == 3 * 86400
    wait_for = journey.steps[2].action
    assert isinstance(wait_for, WaitForStep) and wait_for.on_timeout == "last_chance"


async def test_the_every_step_example_runs(project: Path, start_api: StartApi) -> None:
    write_journey(project, "every_step", EVERY_STEP)
    (project / "journeys" / "abandoned_cart.yaml").unlink()  # the same trigger: keep this journey alone
    journey = parse_journey(EVERY_STEP, "DESIGN.md")
    assert isinstance(journey.steps[1].action, BranchStep) and isinstance(journey.steps[4].action, SendStep)
    api = await start_api()
    await api.put_customer("d1", {"addresses": {"push": ["t"], "whatsapp": "+33612345678", "sms": "+33612345678"}})
    items = [{"sku": "S", "name": "Sofa", "price": 150.0}]
    await api.event("cart_abandoned", "d1", properties={"cart_id": "k1", "items": items, "total": 150.0})
    await api.event("order_placed", "d1", properties={"cart_id": "other", "order_id": "O0", "channel": "web",
                                                      "items": items, "total": 150.0})
    await api.event("order_placed", "d1", properties={"cart_id": "k1", "order_id": "O1", "channel": "web",
                                                      "items": items, "total": 150.0})
    entries = await api.wait_until("d1", journey_ended("every_step"))
    # WhatsApp outside its 24 h window: the discount has no approved template, the thank-you has one
    assert sent(entries) == [("cart_discount", "sms"), ("order_thanks", "whatsapp")]
    vip = next(e for e in entries if e.get("template") == "cart_discount")
    assert vip["step"] == "vip_offer" and "15" in vip["content"]["body"]
    thanks = next(e for e in entries if e.get("template") == "order_thanks")
    assert thanks["content"]["content_variables"]["2"] == "O1"
