"""Coupons in the pure core: issued with the message (the same code on a replay and on a fallback), and a
redemption, once the store checked its code, credited to the message that carried it — or refused, with why."""

from __future__ import annotations

import pytest
from harness import HOUR, Customer, flow

from omnicanal.journey.effects import Attempt, Handed, Outcome, Refused

COUPONED = flow("""
- send: {template: coupon, channels: [sms, email], fallback_after: 2h, coupon: {prefix: CART, length: 8, valid_for: 7d}}
- wait: 3d
""")


def test_the_message_carries_a_code_issued_for_its_visit() -> None:
    customer = Customer([COUPONED])
    customer.event("go")
    [attempt] = customer.attempts
    [issued] = customer.last.coupons
    code = issued["code"]
    assert code.startswith("CART") and len(code) == 12 and code[4:].isalnum() and code.isupper()
    assert attempt.content["body"].startswith(f"use {code} before ")
    assert (issued["message_id"], issued["channel"], issued["step"]) == (attempt.message_id, "sms", "1_send")
    assert issued["expires"] == customer.now + 7 * 86400
    assert customer.messages("sent")[0]["coupon"] == code
    assert _code_of(customer.customer_id) == code  # the same work applied again (a replay): the same code


def _code_of(customer_id: str) -> str:
    fresh = Customer([COUPONED], customer_id=customer_id)
    fresh.event("go")
    return str(fresh.last.coupons[0]["code"])


def test_codes_differ_between_customers_and_visits() -> None:
    codes = {_code_of(f"c{n}") for n in range(200)}
    assert len(codes) == 200


def test_a_fallback_carries_the_same_code() -> None:
    customer = Customer([COUPONED])
    customer.event("go")
    customer.pass_time(2 * HOUR)
    first, second = customer.attempts
    code = customer.last.coupons[0]["code"]
    assert code in first.content["body"] and code in second.content["text"]
    assert customer.last.coupons[0]["channel"] == "email"


def test_a_send_that_failed_everywhere_issues_nothing() -> None:
    def refuse(attempt: Attempt) -> Outcome:
        return Refused("no")

    customer = Customer([COUPONED], answer=refuse)
    customer.event("go")
    assert customer.last.coupons == []


def test_a_redemption_the_store_accepted_is_credited_to_its_message() -> None:
    customer = Customer([COUPONED])
    customer.event("go")
    issued = customer.last.coupons[0]
    customer.state.redemptions = {"evt_r": {"status": "redeemed", **{k: issued[k] for k in
                                                                     ("message_id", "journey", "step", "channel")}}}
    customer.event("coupon.redeemed", event_id="evt_r", code=issued["code"], total=59.0, channel="store")
    [entry] = customer.of_kind("coupon")
    assert (entry["status"], entry["message_id"], entry["revenue"], entry["where"]) == (
        "redeemed", issued["message_id"], 59.0, "store")
    stats = customer.stats["j"]
    assert stats["coupons_redeemed"] == 1 and stats["coupon_revenue"] == 59.0
    assert stats["attr:coupon:store:j:1_send:sms:revenue"] == 59.0
    assert stats["step:1_send:sms:redeemed"] == 1


@pytest.mark.parametrize("status", ["unknown", "expired", "used"])
def test_a_refused_redemption_is_recorded_with_why_and_not_credited(status: str) -> None:
    customer = Customer([COUPONED], answer=lambda attempt: Handed("sent"))
    customer.event("go")
    verdict = {"status": status} if status == "unknown" else {
        "status": status, "journey": "j", "step": "1_send", "channel": "sms", "message_id": "m"}
    customer.state.redemptions = {"evt_r": verdict}
    customer.event("coupon.redeemed", event_id="evt_r", code="CARTNOPE", total=10)
    [entry] = customer.of_kind("coupon")
    assert (entry["status"], entry["reason"]) == ("refused", status)
    assert "coupons_redeemed" not in customer.stats["j"]
