"""Real connectors inside running journeys: fallbacks, receipts, replies, opt-outs — through the HTTP API and
Twilio's signed callbacks, against local stand-ins of the providers, on real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from conftest import Api, StartApi, fresh_second, has_message, journey_ended, sent, write_journey
from omnicanal.engine.clock import ManualClock
from standins import FcmStandIn, SmtpStandIn, TwilioStandIn

PHONE = "+33612345678"




async def twilio_post(api: Api, path: str, form: dict[str, str], token: str, forged: bool = False) -> int:
    url = str(api.client.make_url(path))
    signature = RequestValidator("not-the-token" if forged else token).compute_signature(url, form)
    response = await api.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status


async def test_a_dead_push_token_falls_back_to_sms_and_is_forgotten(
    monkeypatch: pytest.MonkeyPatch, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    async with FcmStandIn() as fcm:
        for name, value in fcm.env().items():
            monkeypatch.setenv(name, value)
        fcm.fail_next(status=404, code="UNREGISTERED")
        api = await start_api(channels={"push": "fcm_push", "sms": "twilio_sms"})
        await api.put_customer("c1", {"attributes": {"first_name": "Léa"}, "locale": "fr",
                                      "addresses": {"push": ["dead-token"], "sms": "06 12 34 56 78"}})
        await api.event("cart_abandoned", "c1", properties={"items": [{"sku": "S", "name": "Sneakers",
                                                                       "price": 89.0}], "total": 89.0})
        entries = await api.wait_until("c1", has_message("cart_discount", status="queued"))
    discount = next(e for e in entries if e.get("template") == "cart_discount")
    assert discount["channel"] == "sms" and discount["to"] == PHONE
    reasons = {skip["channel"]: skip["reason"] for skip in discount["skipped"]}
    assert reasons["push"].startswith("failed") and "UNREGISTERED" in reasons["push"]
    [sms] = twilio.messages
    assert sms["To"] == PHONE and "LUMIERE10" in sms["Body"]
    assert "push" not in (await api.request("GET", "/v1/customers/c1", 200))["addresses"]


CONVERSATION = """
id: ask_and_answer
trigger: {event: order_ready_for_pickup}
steps:
  - send: {template: click_collect_reminder, channels: [whatsapp], purpose: transactional}
  - wait_for:
      event: message.received
      where: "event.properties.body | lower == 'oui'"
      timeout: 1d
      on_timeout: give_up
  - send: {template: welcome, channels: [email], purpose: transactional}
  - exit: {reason: answered}
  - id: give_up
    exit: {reason: no answer}
"""


async def test_a_whatsapp_reply_resumes_the_conversation(project: Path, start_api: StartApi,
                                                        twilio: TwilioStandIn) -> None:
    write_journey(project, "ask_and_answer", CONVERSATION)
    api = await start_api(clock_speed=60.0, channels={"whatsapp": "twilio_whatsapp"})
    await api.put_customer("c2", {"addresses": {"whatsapp": PHONE, "email": "c2@example.com"}, "locale": "fr"})
    # the customer wrote first, so the 24 h window is open: a free-form WhatsApp message may go
    assert await twilio_post(api, "/webhooks/twilio/inbound", {"From": f"whatsapp:{PHONE}", "To": "whatsapp:+1",
                                                               "Body": "Bonjour", "MessageSid": "SM1"},
                             twilio.auth_token) == 200
    await api.event("order_ready_for_pickup", "c2", properties={"order_id": "A-7", "store": "Lyon"})
    await api.wait_until("c2", has_message("click_collect_reminder", status="queued"))
    [question] = twilio.messages
    assert question["To"] == f"whatsapp:{PHONE}" and "A-7" in question["Body"]
    assert await twilio_post(api, "/webhooks/twilio/inbound", {"From": f"whatsapp:{PHONE}", "To": "whatsapp:+1",
                                                               "Body": "Oui", "MessageSid": "SM2",
                                                               "ProfileName": "Léa"}, twilio.auth_token) == 200
    entries = await api.wait_until("c2", journey_ended("ask_and_answer"))
    assert entries[-1]["reason"] == "answered"
    reply = [e for e in entries if e["kind"] == "event" and e["name"] == "message.received"][-1]
    assert reply["properties"]["channel"] == "whatsapp" and reply["properties"]["profile_name"] == "Léa"
    assert sent(entries) == [("click_collect_reminder", "whatsapp"), ("welcome", "email")]


async def test_stop_blocks_sms_and_the_journey_falls_back(
    project: Path, start_api: StartApi, twilio: TwilioStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
re_entry: always
steps:
  - send: {template: welcome_offer, channels: [sms, email]}
""")
    async with SmtpStandIn() as smtp:
        for name, value in smtp.env().items():
            monkeypatch.setenv(name, value)
        api = await start_api(channels={"sms": "twilio_sms", "email": "smtp_email"})
        await api.put_customer("c3", {"addresses": {"sms": PHONE, "email": "c3@example.com"}})
        await api.event("promo", "c3")
        await api.wait_until("c3", has_message("welcome_offer", status="queued"))
        assert await twilio_post(api, "/webhooks/twilio/inbound", {"From": PHONE, "To": "+1", "Body": "ARRET",
                                                                   "MessageSid": "SM9"}, twilio.auth_token) == 200
        await api.event("promo", "c3")
        entries = await api.wait_until("c3", has_message("welcome_offer"))
    assert [m["To"] for m in twilio.messages] == [PHONE]  # one SMS, before the STOP
    last = [e for e in entries if e["kind"] == "message"][-1]
    assert (last["channel"], last["status"]) == ("email", "sent")
    assert last["skipped"] == [{"channel": "sms", "reason": "no consent: marketing opted out (sms_keyword)"}]
    profile = await api.request("GET", f"/v1/customers/phone:{PHONE}", 200)
    assert profile["customer_id"] == "c3"
    assert profile["consents"]["sms"]["transactional"]["granted"] is False
    [email] = smtp.received
    assert email.message["To"] == "c3@example.com"


async def test_receipts_update_the_status_and_a_failure_tries_the_next_channel(
    project: Path, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    write_journey(project, "notice", """
id: notice
trigger: {event: notice}
steps:
  - send: {template: welcome_offer, channels: [sms, email]}
  - wait_for: {event: message.delivered, timeout: 1d}
""")
    api = await start_api(clock_speed=60.0, channels={"sms": "twilio_sms"})
    await api.put_customer("c4", {"addresses": {"sms": PHONE, "email": "c4@example.com"}})
    await api.event("notice", "c4")
    entries = await api.wait_until("c4", has_message("welcome_offer", status="queued"))
    message = next(e for e in entries if e.get("template") == "welcome_offer")
    provider_sid = message["provider_id"]
    assert message["channel"] == "sms" and provider_sid.startswith("SM")

    forged = {"MessageSid": provider_sid, "MessageStatus": "delivered"}
    assert await twilio_post(api, "/webhooks/twilio/status", forged, twilio.auth_token, forged=True) == 403
    await api.settled()
    assert [e["status"] for e in await api.messages("c4")] == ["queued"]

    for status in ("sent", "undelivered"):
        form = {"MessageSid": provider_sid, "MessageStatus": status, "ErrorCode": "30003"}
        assert await twilio_post(api, "/webhooks/twilio/status", form, twilio.auth_token) == 204
    entries = await api.wait_until("c4", lambda es: any(e.get("channel") == "email" for e in es))
    messages = [e for e in entries if e["kind"] == "message"]
    assert messages[0]["status"] == "undelivered"
    assert [h["status"] for h in messages[0]["status_history"]] == ["sending", "queued", "sent", "undelivered"]
    assert (messages[1]["channel"], messages[1]["status"]) == ("email", "sent")
    failed = [e for e in entries if e["kind"] == "event" and e["name"] == "message.failed"]
    assert failed[0]["properties"]["error_code"] == "30003"



async def test_a_throttled_provider_is_retried_after_its_retry_after(project: Path, start_api: StartApi,
                                                                    twilio: TwilioStandIn) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
steps:
  - send: {template: welcome_offer, channels: [sms, email]}
""")
    twilio.fail_next(2, status=429, code=20429, retry_after=30)
    api = await start_api(channels={"sms": "twilio_sms"})
    await api.put_customer("c5", {"addresses": {"sms": PHONE, "email": "c5@example.com"}})
    await api.event("promo", "c5")
    entries = await api.wait_until("c5", journey_ended("promo"))
    messages = [e for e in entries if e["kind"] == "message"]
    assert [m["status"] for m in messages] == ["retrying", "retrying", "queued"]
    assert all(m["retry_in"] >= 30 for m in messages[:2])  # never sooner than Retry-After
    assert messages[-1]["channel"] == "sms" and len(twilio.received) == 3


PROMO_WITH_FALLBACK = """
id: promo
trigger: {event: promo}
exit_on: [{event: order_placed}]
steps:
  - send: {template: welcome_offer, channels: [sms, email], fallback_after: 2h}
  - wait_for: {event: order_placed, timeout: 3d}
"""


async def test_fallback_after_tries_the_next_channel_when_nothing_is_delivered(
    project: Path, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    write_journey(project, "promo", PROMO_WITH_FALLBACK)
    api = await start_api(channels={"sms": "twilio_sms"})
    for customer_id in ("c6", "c7"):
        await api.put_customer(customer_id, {"addresses": {"sms": PHONE, "email": f"{customer_id}@example.com"}})
        await api.event("promo", customer_id)
    delivered = await api.wait_until("c7", has_message("welcome_offer", status="queued"))
    sid = next(e for e in delivered if e["kind"] == "message")["provider_id"]
    assert await twilio_post(api, "/webhooks/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"},
                             twilio.auth_token) == 204
    entries = await api.wait_until("c6", lambda es: any(e.get("channel") == "email" for e in es))
    assert sent(entries) == [("welcome_offer", "sms"), ("welcome_offer", "email")]
    await api.wait_until("c7", lambda es: any(e.get("name") == "message.delivered" for e in es))
    await api.settled()
    assert sent(await api.timeline("c7")) == [("welcome_offer", "sms")]  # delivered in time: no fallback


async def test_no_fallback_once_the_journey_ended_or_the_channel_was_opted_out(
    project: Path, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    """c9 buys before the deadline (the journey exits): no e-mail. c10 opts out of e-mail marketing meanwhile:
    the fallback skips e-mail, and a failure receipt after the journey ended sends nothing either."""
    write_journey(project, "promo", PROMO_WITH_FALLBACK)
    clock = ManualClock(time.time())
    api = await start_api(clock=clock, channels={"sms": "twilio_sms"})
    for customer_id in ("c9", "c10"):
        await api.put_customer(customer_id, {"addresses": {"sms": PHONE, "email": f"{customer_id}@example.com"}})
        await api.event("promo", customer_id)
        await api.wait_until(customer_id, has_message("welcome_offer", status="queued"))
    await api.event("order_placed", "c9")
    await api.wait_until("c9", journey_ended("promo"))
    await api.put_customer("c10", {"consents": {"email": {"marketing": False}}})
    await api.settled()
    clock.advance_to(clock.now() + 2 * 3600 + 1)  # both deadlines pass, nothing delivered
    entries = await api.wait_until("c10", lambda es: any(e["kind"] == "fallback" for e in es)
                                   and any(e.get("status") == "suppressed" for e in es))
    suppressed = next(e for e in entries if e.get("status") == "suppressed")
    assert suppressed["skipped"][0]["channel"] == "email"
    assert suppressed["skipped"][0]["reason"].startswith("no consent")
    sid = next(e for e in await api.timeline("c9") if e["kind"] == "message")["provider_id"]
    form = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert await twilio_post(api, "/webhooks/twilio/status", form, twilio.auth_token) == 204
    await api.wait_until("c9", lambda es: any(e.get("name") == "message.failed" for e in es))
    await api.settled()  # c9's deadline passed with c10's
    messages = await api.messages("c9")
    assert [(m["channel"], m["status"]) for m in messages] == [("sms", "undelivered")]
    assert not any(e["kind"] == "fallback" for e in await api.timeline("c9"))


async def test_whatsapp_outside_the_window_sends_the_approved_template(start_api: StartApi,
                                                                      twilio: TwilioStandIn) -> None:
    api = await start_api(channels={"whatsapp": "twilio_whatsapp"})
    await api.put_customer("c8", {"addresses": {"whatsapp": PHONE}, "locale": "fr",
                                  "attributes": {"first_name": "Léa"}})
    await api.event("cart_abandoned", "c8", properties={"items": [{"sku": "S", "name": "Sneakers", "price": 89.0}],
                                                        "total": 89.0})
    await api.event("order_placed", "c8", properties={"order_id": "T-1", "channel": "store", "store": "Lyon",
                                                      "items": [{"sku": "S", "name": "Sneakers", "price": 89.0}],
                                                      "total": 89.0})
    await api.wait_until("c8", has_message("order_thanks", status="queued"))
    [message] = twilio.messages
    assert message["ContentSid"].startswith("HX") and "Body" not in message
    assert '"2": "T-1"' in message["ContentVariables"]


@pytest.mark.slow  # sends spread over real seconds
async def test_a_providers_rate_limit_spreads_the_sends(project: Path, start_api: StartApi,
                                                       twilio: TwilioStandIn) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
steps:
  - send: {template: welcome_offer, channels: [sms]}
""")
    api = await start_api(channels={"sms": "twilio_sms"}, rate_limits={"twilio_sms": "2"})
    for n in range(7):
        await api.put_customer(f"r{n}", {"addresses": {"sms": PHONE}})
    await fresh_second()
    posted = time.time()
    events = [{"name": "promo", "customer_id": f"r{n}"} for n in range(7)]
    await api.request("POST", "/v1/events/batch", 202, json={"events": events})
    for n in range(7):
        await api.wait_until(f"r{n}", journey_ended("promo"))
    arrived = sorted(received.at for received in twilio.received)
    assert len(arrived) == 7, arrived
    # The limiter lets at most two sends through in each wall-clock second, none before the events were posted,
    # and a send arrives after it was let through, never before: so the (2k+1)-th arrives in second `first + k`
    # or later, however late a busy machine makes arrivals. Sent without a limit, all seven would arrive within
    # milliseconds of `posted`.
    first = int(posted)
    assert all(arrived[2 * k] >= first + k for k in range(4)), (first, arrived)
    assert arrived[0] < first + 2, (first, arrived)  # spread, not held back: the first went out at once


async def test_push_falls_back_to_sms_unless_the_app_says_it_was_opened(
    monkeypatch: pytest.MonkeyPatch, project: Path, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    """FCM never reports delivery: the step names the app's `push.opened` as its delivery."""
    write_journey(project, "nudge", """
id: nudge
trigger: {event: nudge}
steps:
  - send: {template: cart_discount, channels: [push, sms], fallback_after: 2h, delivered_on: push.opened}
  - wait: 1d
""")
    cart = {"items": [{"sku": "S", "name": "Sneakers", "price": 89.0}], "total": 89.0}
    async with FcmStandIn() as fcm:
        for name, value in fcm.env().items():
            monkeypatch.setenv(name, value)
        clock = ManualClock(time.time())
        api = await start_api(clock=clock, channels={"push": "fcm_push", "sms": "twilio_sms"})
        for customer_id in ("opens", "ignores"):
            await api.put_customer(customer_id, {"addresses": {"push": [f"tok-{customer_id}"], "sms": PHONE}})
            await api.event("nudge", customer_id, properties=cart)
            await api.wait_until(customer_id, has_message("cart_discount"))
        await api.event("push.opened", "opens")
        await api.settled()
        clock.advance_to(clock.now() + 2 * 3600 + 1)  # both deadlines pass
        entries = await api.wait_until("ignores", lambda es: any(e.get("channel") == "sms" for e in es))
        assert [e["kind"] for e in entries if e["kind"] == "fallback"] == ["fallback"]
        await api.settled()
        assert [e["channel"] for e in await api.messages("opens")] == ["push"]
        assert len(fcm.received) == 2 and len(twilio.messages) == 1


async def test_receipts_out_of_order_never_move_the_status_back(project: Path, start_api: StartApi,
                                                                twilio: TwilioStandIn) -> None:
    write_journey(project, "notice", """
id: notice
trigger: {event: notice}
steps:
  - send: {template: welcome_offer, channels: [sms], purpose: transactional}
  - wait_for: {event: message.read, timeout: 1d}
""")
    api = await start_api(clock_speed=60.0, channels={"sms": "twilio_sms"})
    await api.put_customer("c8", {"addresses": {"sms": PHONE}})
    await api.event("notice", "c8")
    entries = await api.wait_until("c8", has_message("welcome_offer", status="queued"))
    sid = next(e for e in entries if e.get("template") == "welcome_offer")["provider_id"]
    # Twilio says callbacks may arrive in any order: `sent` after `delivered` must not undo the delivery
    for status in ("delivered", "sent", "sending", "delivered"):
        form = {"MessageSid": sid, "MessageStatus": status}
        assert await twilio_post(api, "/webhooks/twilio/status", form, twilio.auth_token) == 204
    await api.settled()
    [message] = await api.messages("c8")
    assert message["status"] == "delivered"
    assert [h["status"] for h in message["status_history"]] == ["sending", "queued", "delivered", "sent"]


@pytest.mark.parametrize("body", ["Stop.", "stop!", " STOP ", "Arrêt.", "«STOP»"])
async def test_a_stop_keyword_with_punctuation_opts_out(start_api: StartApi, twilio: TwilioStandIn,
                                                       body: str) -> None:
    api = await start_api(channels={"sms": "twilio_sms"})
    await api.put_customer("c9", {"addresses": {"sms": PHONE}})
    assert await twilio_post(api, "/webhooks/twilio/inbound", {"From": PHONE, "To": "+1", "Body": body,
                                                               "MessageSid": "SM10"}, twilio.auth_token) == 200
    profile = await api.request("GET", "/v1/customers/c9", 200)
    assert profile["consents"]["sms"]["marketing"]["granted"] is False


async def test_a_keyword_inside_a_sentence_is_not_an_opt_out(start_api: StartApi, twilio: TwilioStandIn) -> None:
    api = await start_api(channels={"sms": "twilio_sms"})
    await api.put_customer("c10", {"addresses": {"sms": PHONE}})
    assert await twilio_post(api, "/webhooks/twilio/inbound", {"From": PHONE, "To": "+1", "Body": "Don't stop!",
                                                               "MessageSid": "SM11"}, twilio.auth_token) == 200
    profile = await api.request("GET", "/v1/customers/c10", 200)
    assert "sms" not in profile.get("consents", {})
