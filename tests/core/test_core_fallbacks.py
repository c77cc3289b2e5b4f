"""Fallbacks, holds and retries in the pure core: they only ever send for a running instance, to a channel the
customer still allows."""

from __future__ import annotations

from harness import Customer, journey

from omnicanal.journey.effects import Attempt, Handed, Outcome, Refused
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours

PROMO = journey("""
id: promo
trigger: {event: promo}
exit_on: [{event: order_placed}]
steps:
  - send: {template: offer, channels: [sms, email], fallback_after: 2h}
  - wait_for: {event: order_placed, timeout: 3d}
""")


def _promo_sent() -> tuple[Customer, str]:
    customer = Customer([PROMO])
    customer.event("promo")
    [message] = customer.messages("sent")
    return customer, message["message_id"]


def test_the_fallback_goes_when_nothing_is_delivered_in_time() -> None:
    customer, message_id = _promo_sent()
    customer.pass_time(2 * 3600)
    assert customer.sent() == [("offer", "sms"), ("offer", "email")]
    [fallback] = [e for e in customer.timeline if e["kind"] == "fallback"]
    assert (fallback["message_id"], fallback["reason"]) == (message_id, "not delivered in time")
    assert customer.instance("promo") is not None  # the instance did not move: it still waits for the order


def test_a_delivery_receipt_cancels_the_fallback() -> None:
    customer, message_id = _promo_sent()
    changes = customer.event("message.delivered", message_id=message_id)
    assert [t.token for t in changes.old_timers] == [f"fallback:{message_id}"]
    customer.pass_time(3 * 3600)
    assert customer.sent() == [("offer", "sms")]


def test_a_receipt_of_another_message_changes_nothing() -> None:
    customer, _ = _promo_sent()
    customer.event("message.delivered", message_id="someone-else.1.sms")
    customer.pass_time(2 * 3600)
    assert customer.sent()[-1] == ("offer", "email")


def test_a_failure_receipt_sends_the_fallback_at_once_and_only_once() -> None:
    customer, message_id = _promo_sent()
    customer.event("message.failed", message_id=message_id)
    assert customer.sent() == [("offer", "sms"), ("offer", "email")]
    customer.event("message.failed", message_id=message_id)
    customer.pass_time(3 * 3600)
    assert len(customer.sent()) == 2


def test_no_fallback_after_the_journey_exited() -> None:
    customer, message_id = _promo_sent()
    customer.event("order_placed")
    assert customer.milestones() == ["started", "exited (exit_on order_placed)"]
    customer.event("message.failed", message_id=message_id)
    customer.pass_time(3 * 3600)
    assert customer.sent() == [("offer", "sms")]
    assert not any(e["kind"] == "fallback" for e in customer.timeline)


def test_no_fallback_after_a_drain() -> None:
    customer, _ = _promo_sent()
    customer.drain("promo")
    customer.pass_time(3 * 3600)
    assert customer.sent() == [("offer", "sms")]


def test_the_fallback_skips_a_channel_opted_out_meanwhile() -> None:
    customer, _ = _promo_sent()
    customer.state.customer["consents"] = {"email": {"marketing": {"granted": False, "source": "api"}}}
    customer.pass_time(2 * 3600)
    assert customer.sent() == [("offer", "sms")]
    [suppressed] = customer.messages("suppressed")
    assert suppressed["skipped"][0]["channel"] == "email"


def test_the_fallback_waits_out_quiet_hours() -> None:
    customer = Customer([PROMO], rules=Rules(quiet_hours_by_channel={"sms": None},
                                             quiet_hours=QuietHours.parse("09:00-12:00")))
    customer.event("promo")  # 08:00 UTC: sms has no quiet hours, e-mail's begin at 09:00
    customer.pass_time(2 * 3600)  # 10:00: the e-mail is held until 12:00
    assert customer.sent() == [("offer", "sms")]
    assert customer.messages("held")[0]["until"] == customer.now + 2 * 3600
    customer.pass_time(2 * 3600)
    assert customer.sent() == [("offer", "sms"), ("offer", "email")]


def test_a_fallback_without_later_channels_keeps_nothing() -> None:
    customer = Customer([journey("""
id: one
trigger: {event: go}
steps:
  - send: {template: offer, channels: [email], fallback_after: 2h}
  - wait: 1d
""")])
    customer.event("go")
    instance = customer.instance("one")
    assert instance is not None and instance.fallbacks is None
    assert not customer.last.new_timers[1:]


def test_a_held_step_never_sends_once_the_journey_exited() -> None:
    customer = Customer([PROMO], rules=Rules(quiet_hours=QuietHours.parse("07:00-10:00")))
    customer.event("promo")
    assert customer.messages("held")
    customer.event("order_placed")
    customer.pass_time(6 * 3600)
    assert customer.sent() == []


def test_a_transient_failure_holds_the_step_and_retries_the_same_channel() -> None:
    failures = iter([Refused("429 too many", transient=True, retry_after=30.0)])

    def answer(attempt: Attempt) -> Outcome:
        return next(failures, Handed("sent"))

    customer = Customer([PROMO], answer=answer)
    customer.event("promo")
    [retrying] = customer.messages("retrying")
    assert retrying["retry_in"] >= 30
    instance = customer.instance("promo")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "hold"
    customer.pass_time(60)
    assert customer.sent() == [("offer", "sms")]
    assert [a.channel for a in customer.attempts] == ["sms", "sms"]
    assert customer.attempts[0].message_id != customer.attempts[1].message_id  # each visit claims its own


def test_retries_stop_at_the_budget_and_the_next_channel_goes() -> None:
    def answer(attempt: Attempt) -> Outcome:
        return Refused("503", transient=True) if attempt.channel == "sms" else Handed("sent")

    customer = Customer([PROMO], answer=answer, retry_budget=60.0)
    customer.event("promo")
    customer.pass_time(3600)
    assert customer.sent() == [("offer", "email")]
    last = customer.messages()[-1]
    assert {"channel": "sms", "reason": "failed: retries exhausted"} in last["skipped"] or any(
        s["reason"].startswith("failed") for s in last["skipped"])


def test_a_permanent_refusal_tries_the_next_channel_at_once() -> None:
    def answer(attempt: Attempt) -> Outcome:
        return Refused("21211 invalid number") if attempt.channel == "sms" else Handed("sent")

    customer = Customer([PROMO], answer=answer)
    customer.event("promo")
    [message] = customer.messages("sent")
    assert message["channel"] == "email"
    assert message["skipped"] == [{"channel": "sms", "reason": "failed: 21211 invalid number"}]


PUSH_FIRST = journey("""
id: push_first
trigger: {event: go}
steps:
  - send: {template: offer, channels: [push, sms], fallback_after: 2h, delivered_on: [push.opened]}
  - wait: 1d
""")


def _pushed() -> tuple[Customer, str]:
    customer = Customer([PUSH_FIRST])
    customer.event("go")
    [message] = customer.messages("sent")
    assert message["channel"] == "push"
    return customer, message["message_id"]


def test_an_engagement_event_named_in_delivered_on_cancels_the_fallback() -> None:
    customer, _ = _pushed()
    customer.event("push.opened")
    customer.pass_time(3 * 3600)
    assert [channel for _, channel in customer.sent()] == ["push"]


def test_an_engagement_event_about_another_message_does_not() -> None:
    customer, _ = _pushed()
    customer.event("push.opened", message_id="other.1.push")
    customer.pass_time(3 * 3600)
    assert [channel for _, channel in customer.sent()] == ["push", "sms"]


def test_without_engagement_the_next_channel_goes_after_fallback_after() -> None:
    customer, message_id = _pushed()
    customer.event("app.launched")
    customer.pass_time(2 * 3600)
    assert [channel for _, channel in customer.sent()] == ["push", "sms"]
    assert customer.messages("sent")[-1]["message_id"] == f"{message_id}~fallback.sms"


def test_a_channel_without_receipts_keeps_no_fallback_without_fallback_after() -> None:
    customer = Customer([journey("""
id: plain
trigger: {event: go}
steps:
  - send: {template: offer, channels: [email, sms]}
  - wait: 1d
""")])
    customer.event("go")
    instance = customer.instance("plain")
    assert instance is not None and instance.fallbacks is None  # nothing could ever ask for it


def test_a_channel_with_receipts_keeps_its_later_channels_for_a_failure_receipt() -> None:
    customer = Customer([journey("""
id: receipts
trigger: {event: go}
steps:
  - send: {template: offer, channels: [sms, email]}
  - wait: 1d
""")])
    customer.event("go")
    [message] = customer.messages("sent")
    assert len(customer.timers) == 1  # the wait's: no deadline, the fallback waits for a failure receipt
    customer.event("message.failed", message_id=message["message_id"])
    assert customer.sent() == [("offer", "sms"), ("offer", "email")]
