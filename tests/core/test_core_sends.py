"""Channel choice and send outcomes in the pure core: the customer's preference, addresses, consent, opt-in
channels, quiet hours (held, not dropped), WhatsApp's 24 h window, frequency caps, replays and provider answers."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, START, Customer, flow, journey, profile

from omnicanal.journey.effects import Attempt, Capped, Handed, Outcome, Refused, Replayed
from omnicanal.policy.caps import Cap
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours
from omnicanal.timestamps import iso

THREE = flow("- send: {template: offer, channels: [sms, email, push]}")


def _skipped(customer: Customer) -> list[tuple[str, str]]:
    return [(s["channel"], s["reason"]) for m in customer.messages() for s in m.get("skipped", ())]


# -- preference and addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("preference", "channel"), [
    ([], "sms"),
    (["email"], "email"),
    (["push", "email"], "push"),
    (["email", "sms"], "email"),
    (["whatsapp"], "sms"),  # not a channel of the step: the step's order stands
    (["whatsapp", "push"], "push"),
])
def test_the_customers_preference_reorders_the_steps_channels(preference: list[str], channel: str) -> None:
    customer = Customer([THREE], profile=profile(channel_preference=preference))
    customer.event("go")
    assert customer.channels() == [channel]


CHAIN = flow("""
- send: {template: offer, channels: [push, sms, email], fallback_after: 1h, delivered_on: push.opened}
- wait: 1d
""")


def test_the_fallback_follows_the_customers_order_too() -> None:
    customer = Customer([CHAIN], profile=profile(channel_preference=["email", "sms"]))
    customer.event("go")
    customer.pass_time(HOUR)
    assert customer.channels() == ["email", "sms"]
    customer.pass_time(HOUR)
    assert customer.channels() == ["email", "sms", "push"]


@pytest.mark.parametrize(("addresses", "channel", "skipped"), [
    ({"email": "a@example.com", "push": ["t1"]}, "email", [("sms", "no address")]),
    ({"sms": "", "email": "a@example.com", "push": ["t1"]}, "email", [("sms", "no address")]),
    ({"push": ["t1"]}, "push", [("sms", "no address"), ("email", "no address")]),
    # every channel passed over is said, those after the one used too
    ({"push": [], "email": "a@example.com"}, "email", [("sms", "no address"), ("push", "no address")]),
])
def test_a_channel_without_an_address_is_passed_over_with_the_reason(
        addresses: dict[str, Any], channel: str, skipped: list[tuple[str, str]]) -> None:
    customer = Customer([THREE], profile=profile(addresses=addresses))
    customer.event("go")
    assert customer.channels() == [channel]
    assert _skipped(customer) == skipped


def test_push_goes_to_the_most_recent_device() -> None:
    customer = Customer([flow("- send: {template: offer, channel: push}")],
                        profile=profile(addresses={"push": ["old", "newer", "newest"]}))
    customer.event("go")
    assert customer.attempts[0].to == "newest"


def test_no_channel_qualifying_is_suppressed_with_every_reason() -> None:
    customer = Customer([THREE], profile=profile(addresses={}))
    customer.event("go")
    assert customer.attempts == []
    [message] = customer.messages()
    assert message["status"] == "suppressed"
    assert _skipped(customer) == [("sms", "no address"), ("email", "no address"), ("push", "no address")]
    assert customer.milestones() == ["started", "completed"]


def test_a_template_without_the_channels_variant_passes_it_over() -> None:
    # Templates changed after the journey loaded: checked again when it sends.
    customer = Customer([journey("""
id: j
trigger: {event: go}
steps:
  - send: {template: email_only, channels: [sms, email]}
""", templates=None)])
    customer.event("go")
    assert customer.channels() == ["email"]
    assert _skipped(customer) == [("sms", "template has no variant")]


# -- consent ---------------------------------------------------------------------------------------------------

DENIED_MARKETING = {"sms": {"marketing": {"granted": False, "source": "api"}}}
DENIED_ALL = {"sms": {"marketing": {"granted": False, "source": "stop"},
                      "transactional": {"granted": False, "source": "stop"}}}
GRANTED = {"sms": {"marketing": {"granted": True, "source": "form"}}}


@pytest.mark.parametrize(("purpose", "consents", "opt_in", "channel", "reason"), [
    ("marketing", {}, set(), "sms", None),
    ("marketing", DENIED_MARKETING, set(), "email", "no consent: marketing opted out (api)"),
    ("transactional", DENIED_MARKETING, set(), "sms", None),
    ("transactional", DENIED_ALL, set(), "email", "no consent: transactional opted out (stop)"),
    ("marketing", DENIED_ALL, set(), "email", "no consent: marketing opted out (stop)"),
    ("marketing", {}, {"sms"}, "email", "no consent: marketing on this channel needs an opt-in"),
    ("marketing", GRANTED, {"sms"}, "sms", None),
    ("transactional", {}, {"sms"}, "sms", None),
    ("marketing", GRANTED, set(), "sms", None),
])
def test_consent_per_channel_and_purpose(purpose: str, consents: dict[str, Any], opt_in: set[str], channel: str,
                                         reason: str | None) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channels: [sms, email], purpose: {purpose}}}")],
                        profile=profile(consents=consents), rules=Rules(opt_in_channels=frozenset(opt_in)))
    customer.event("go")
    assert customer.channels() == [channel]
    assert _skipped(customer) == ([] if reason is None else [("sms", reason)])


def test_a_consent_withdrawn_between_two_sends_is_respected_by_the_second() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms, email]}
- wait: 1d
- send: {template: offer, channels: [sms, email]}
""")])
    customer.event("go")
    customer.state.customer["consents"] = DENIED_MARKETING
    customer.pass_time(DAY)
    assert customer.channels() == ["sms", "email"]


# -- quiet hours -------------------------------------------------------------------------------------------------

NIGHT = Rules(quiet_hours=QuietHours.parse("21:00-08:00"))


# START is 08:00 UTC.
@pytest.mark.parametrize(("timezone", "purpose", "held_until"), [
    ("UTC", "marketing", None),  # 08:00: the quiet hours just ended
    ("Europe/Paris", "marketing", None),  # 09:00
    ("Asia/Tokyo", "marketing", None),  # 17:00
    ("Asia/Kolkata", "marketing", None),  # 13:30
    ("America/New_York", "marketing", START + 5 * HOUR),  # 03:00 → 08:00 New York
    ("America/Los_Angeles", "marketing", START + 8 * HOUR),  # 00:00 → 08:00 Los Angeles
    ("Pacific/Auckland", "marketing", START + 11 * HOUR),  # 21:00 (summer time) → 08:00 the next day
    ("America/New_York", "transactional", None),  # never held
])
def test_marketing_in_quiet_hours_is_held_until_they_end(timezone: str, purpose: str, held_until: float | None) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channels: [sms], purpose: {purpose}}}")],
                        profile=profile(timezone=timezone), rules=NIGHT)
    customer.event("go")
    if held_until is None:
        assert customer.channels() == ["sms"]
        return
    assert customer.attempts == []
    [held] = customer.messages("held")
    assert held["until"] == held_until and held["skipped"] == [{"channel": "sms", "reason": "quiet hours"}]
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "hold"
    customer.pass_time(held_until - START - 1)
    assert customer.attempts == []
    customer.pass_time(1)
    assert customer.channels() == ["sms"] and customer.messages("sent")[0]["at"] == iso(held_until)
    assert customer.milestones() == ["started", "completed"]


@pytest.mark.parametrize(("clock", "held"), [("20:59", False), ("21:00", True), ("03:00", True), ("07:59", True)])
def test_quiet_hours_boundaries(clock: str, held: bool) -> None:
    hours, minutes = map(int, clock.split(":"))
    now = START - 8 * HOUR + hours * HOUR + minutes * 60  # that time on START's day, UTC
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")], rules=NIGHT, now=now)
    customer.event("go")
    assert bool(customer.messages("held")) is held


def test_a_channel_without_quiet_hours_goes_at_once() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms, email]}")],
                        profile=profile(timezone="America/New_York"),
                        rules=Rules(quiet_hours=NIGHT.quiet_hours, quiet_hours_by_channel={"email": None}))
    customer.event("go")
    assert customer.channels() == ["email"]
    assert _skipped(customer) == [("sms", "quiet hours")]
    assert customer.messages("held") == []


def test_the_inbox_wakes_no_one_so_quiet_hours_leave_it_unless_it_is_named() -> None:
    night = Customer([flow("- send: {template: offer, channels: [sms, inbox]}")],
                     profile=profile(timezone="America/New_York"), rules=NIGHT)  # 03:00 in New York
    night.event("go")
    assert night.channels() == ["inbox"] and night.attempts[0].to == "c1"  # addressed by the customer's id
    named = Customer([flow("- send: {template: offer, channels: [inbox]}")], profile=profile(
        timezone="America/New_York"), rules=Rules(quiet_hours_by_channel={"inbox": NIGHT.quiet_hours}))
    named.event("go")
    assert named.attempts == [] and named.messages("held")


def test_held_until_the_first_channel_that_opens() -> None:
    rules = Rules(quiet_hours=QuietHours.parse("21:00-09:00"),
                  quiet_hours_by_channel={"email": QuietHours.parse("21:00-08:00")})
    customer = Customer([flow("- send: {template: offer, channels: [sms, email]}")],
                        profile=profile(timezone="America/New_York"), rules=rules)
    customer.event("go")
    assert customer.messages("held")[0]["until"] == START + 5 * HOUR  # 08:00 New York: e-mail opens first
    customer.pass_time(5 * HOUR)
    assert customer.channels() == ["email"]


def test_a_hold_is_not_forever_a_channel_lost_meanwhile_suppresses() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")],
                        profile=profile(timezone="America/New_York"), rules=NIGHT)
    customer.event("go")
    customer.state.customer["addresses"] = {}
    customer.pass_time(5 * HOUR)
    assert customer.attempts == [] and customer.messages()[-1]["status"] == "suppressed"


def test_a_held_message_whose_journey_ends_is_cancelled_on_the_timeline() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}", "exit_on: [{event: order}]")],
                        profile=profile(timezone="America/New_York"), rules=NIGHT)
    customer.event("go")  # 03:00 in New York: held until 08:00
    customer.event("order")
    customer.pass_time(DAY)
    assert customer.attempts == []
    assert [(m["status"], m.get("reason")) for m in customer.messages()] == [
        ("held", None), ("cancelled", "journey exited (exit_on order)")]
    assert customer.stats["j"]["step:1_send:cancelled"] == 1


def test_a_message_waiting_for_a_retry_whose_journey_is_drained_is_cancelled() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")],
                        answer=lambda attempt: Refused("503", transient=True))
    customer.event("go")
    customer.drain("j")
    assert [(m["status"], m.get("reason")) for m in customer.messages()] == [
        ("retrying", None), ("cancelled", "journey exited (drained)")]


# -- WhatsApp's 24 h window -----------------------------------------------------------------------------------

WHATSAPP_FIRST = "- send: {{template: {template}, channels: [whatsapp, sms]}}"
OUTSIDE = "outside the 24h WhatsApp window and the template has no approved variant (content_sid)"


@pytest.mark.parametrize(("template", "last_inbound", "channel", "content"), [
    ("offer", START - HOUR, "whatsapp", {"body": "offer none"}),
    ("offer", START - DAY, "whatsapp", {"body": "offer none"}),  # exactly 24 h: still inside
    ("offer", START - DAY - 1, "sms", {"body": "offer none"}),
    ("offer", None, "sms", {"body": "offer none"}),
    ("approved", None, "whatsapp", {"body": "thanks for your order",
                                    "content_sid": "HX00000000000000000000000000000001",
                                    "content_variables": {"1": "?"}}),
    ("approved", START - 2 * DAY, "whatsapp", {"body": "thanks for your order",
                                               "content_sid": "HX00000000000000000000000000000001",
                                               "content_variables": {"1": "?"}}),
    ("approved", START - HOUR, "whatsapp", {"body": "thanks for your order"}),  # inside: free-form
])
def test_whatsapp_outside_its_window_needs_an_approved_template(template: str, last_inbound: float | None,
                                                                 channel: str, content: dict[str, Any]) -> None:
    customer = Customer([flow(WHATSAPP_FIRST.format(template=template))],
                        profile=profile(whatsapp_last_inbound=last_inbound))
    customer.event("go")
    [attempt] = customer.attempts
    assert (attempt.channel, attempt.content) == (channel, content)
    assert _skipped(customer) == ([] if channel == "whatsapp" else [("whatsapp", OUTSIDE)])


def test_the_whatsapp_window_is_read_from_the_stored_text_form() -> None:
    customer = Customer([flow(WHATSAPP_FIRST.format(template="offer"))],
                        profile=profile(whatsapp_last_inbound=repr(START - HOUR)))
    customer.event("go")
    assert customer.channels() == ["whatsapp"]


# -- frequency caps --------------------------------------------------------------------------------------------

GLOBAL_CAP = Cap.parse("3/1d")


@pytest.mark.parametrize(("purpose", "caps"), [
    ("marketing", (GLOBAL_CAP, Cap(1, DAY, "journey"))),
    ("transactional", ()),
])
def test_marketing_sends_carry_the_brands_and_the_journeys_caps(purpose: str, caps: tuple[Cap, ...]) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channels: [sms], purpose: {purpose}}}", "caps: [1/1d]")],
                        caps=(GLOBAL_CAP,))
    customer.event("go")
    assert customer.attempts[0].caps == caps


def test_a_capped_channel_passes_to_the_next_one() -> None:
    def answer(attempt: Attempt) -> Outcome:
        return Capped("3/1d") if attempt.channel == "sms" else Handed("sent")

    customer = Customer([THREE], caps=(GLOBAL_CAP,), answer=answer)
    customer.event("go")
    assert customer.channels() == ["email"]
    assert _skipped(customer) == [("sms", "frequency cap 3/1d")]


def test_capped_everywhere_is_suppressed_not_failed() -> None:
    customer = Customer([THREE], caps=(GLOBAL_CAP,), answer=lambda attempt: Capped("3/1d"))
    customer.event("go")
    [message] = customer.messages()
    assert message["status"] == "suppressed"
    assert [a.channel for a in customer.attempts] == ["sms", "email", "push"]


# -- what the provider said -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "status", "fields"), [
    (Handed("sent"), "sent", {}),
    (Handed("queued", provider_id="SM123"), "queued", {"provider_id": "SM123"}),
    (Handed("unknown", error="timeout after the request left"), "unknown",
     {"error": "timeout after the request left"}),
])
def test_a_handed_message_is_settled_on_its_channel(outcome: Outcome, status: str, fields: dict[str, str]) -> None:
    customer = Customer([THREE], answer=lambda attempt: outcome)
    customer.event("go")
    assert [a.channel for a in customer.attempts] == ["sms"]
    [message] = customer.messages()
    assert message["status"] == status
    assert {k: message[k] for k in fields} == fields


@pytest.mark.parametrize(("status", "recorded", "channels"), [
    ("sent", "sent", ["sms"]),
    ("queued", "queued", ["sms"]),
    ("delivered", "delivered", ["sms"]),
    ("unknown", "unknown", ["sms"]),  # the process died while the provider had it: never sent again
    ("failed", "sent", ["sms", "email"]),  # that channel did not take it: the next one was tried
    ("capped", "sent", ["sms", "email"]),
])
def test_a_replayed_send_is_recorded_as_its_claim_says(status: str, recorded: str, channels: list[str]) -> None:
    def answer(attempt: Attempt) -> Outcome:
        return Replayed(status) if attempt.channel == "sms" else Handed("sent")

    customer = Customer([THREE], answer=answer)
    customer.event("go")
    assert [a.channel for a in customer.attempts] == channels
    [message] = customer.messages()
    assert (message["status"], message["channel"]) == (recorded, channels[-1])
    assert _skipped(customer) == ([("sms", status)] if len(channels) > 1 else [])


def test_a_permanent_refusal_everywhere_fails_with_each_reason() -> None:
    customer = Customer([THREE], answer=lambda attempt: Refused(f"{attempt.channel} says no"))
    customer.event("go")
    [message] = customer.messages()
    assert message["status"] == "failed"
    assert _skipped(customer) == [("sms", "failed: sms says no"), ("email", "failed: email says no"),
                                  ("push", "failed: push says no")]
    assert customer.milestones() == ["started", "completed"]


def test_transient_refusals_everywhere_retry_then_fail() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms, email]}")], retry_budget=120.0,
                        answer=lambda attempt: Refused("503", transient=True))
    customer.event("go")
    customer.pass_time(DAY)
    statuses = [m["status"] for m in customer.messages()]
    assert statuses[-1] == "failed" and set(statuses[:-1]) == {"retrying"}
    assert {a.channel for a in customer.attempts} == {"sms", "email"}
    assert customer.milestones() == ["started", "completed"]
    assert customer.now - START >= 120


@pytest.mark.parametrize("retry_after", [0.0, 30.0, 299.0])
def test_a_retry_never_comes_before_the_providers_retry_after(retry_after: float) -> None:
    answers = iter([Refused("429", transient=True, retry_after=retry_after)])
    customer = Customer([flow("- send: {template: offer, channels: [sms]}")],
                        answer=lambda attempt: next(answers, Handed("sent")))
    customer.event("go")
    [retrying] = customer.messages("retrying")
    assert retrying["retry_in"] >= retry_after
    [due] = customer.timers.values()
    assert due >= START + retry_after
    customer.pass_time(due - START)
    assert customer.channels() == ["sms"]


# -- locale ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "channel", "used", "body"), [
    ("fr", "sms", "fr", "offre aucun"),
    ("fr-CA", "sms", "fr", "offre aucun"),
    ("fr_ca", "sms", "fr", "offre aucun"),
    ("de", "sms", "en", "offer none"),
    (None, "sms", "en", "offer none"),
    ("fr", "push", "en", "offer none"),  # no French push variant
])
def test_the_customers_locale_picks_the_variant(locale: str | None, channel: str, used: str, body: str) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channel: {channel}}}")], profile=profile(locale=locale))
    customer.event("go")
    [attempt] = customer.attempts
    assert (attempt.locale, attempt.content["body"]) == (used, body)
    assert customer.messages()[0]["locale"] == used


# -- fallbacks on channels with receipts ----------------------------------------------------------------------


def test_a_channel_with_receipts_keeps_its_fallback_without_fallback_after() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms, email]}
- wait: 1d
""")])
    customer.event("go")
    message_id = customer.attempts[0].message_id
    assert len(customer.timers) == 1  # the wait's: the fallback waits for a receipt, not a time
    customer.event("message.failed", message_id=message_id)
    assert customer.channels() == ["sms", "email"]


def test_a_channel_without_receipts_keeps_no_fallback_without_fallback_after() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [email, sms]}
- wait: 1d
""")])
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None and instance.fallbacks is None
    customer.event("message.failed", message_id=customer.attempts[0].message_id)
    assert customer.channels() == ["email"]


def test_a_channel_in_quiet_hours_still_gets_the_message_when_the_open_one_fails() -> None:
    def answer(attempt: Attempt) -> Outcome:
        return Refused("mailbox does not exist") if attempt.channel == "email" else Handed("sent")

    customer = Customer([flow("- send: {template: offer, channels: [sms, email]}")], now=START + 14 * HOUR,
                        rules=Rules(quiet_hours=NIGHT.quiet_hours, quiet_hours_by_channel={"email": None}),
                        answer=answer)
    customer.event("go")  # 22:00: sms is quiet, e-mail is not
    customer.pass_time(10 * HOUR)
    assert customer.channels() == ["sms"]


def test_an_engagement_event_named_in_delivered_on_cancels_the_fallback() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [push, sms], fallback_after: 2h, delivered_on: [push.opened]}
- wait: 1d
""")])
    customer.event("go")
    customer.event("push.opened", message_id=customer.attempts[0].message_id)
    customer.pass_time(3 * HOUR)
    assert customer.channels() == ["push"]


def test_a_fallback_goes_down_the_channels_one_after_the_other() -> None:
    customer = Customer([CHAIN])
    customer.event("go")
    customer.pass_time(HOUR)
    assert customer.channels() == ["push", "sms"]
    customer.event("message.delivered", message_id=customer.attempts[-1].message_id)
    customer.pass_time(5 * HOUR)
    assert customer.channels() == ["push", "sms"]


def test_an_undelivered_fallback_falls_back_again() -> None:
    customer = Customer([CHAIN])
    customer.event("go")
    customer.pass_time(2 * HOUR)
    assert customer.channels() == ["push", "sms", "email"]
    assert len({a.message_id for a in customer.attempts}) == 3


@pytest.mark.parametrize("receipt", ["message.failed", "message.delivered"])
def test_a_receipt_after_the_fallback_went_sends_nothing_more(receipt: str) -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms, email], fallback_after: 1h}
- wait: 1d
""")])
    customer.event("go")
    customer.pass_time(HOUR)
    customer.event(receipt, message_id=customer.attempts[0].message_id)
    customer.pass_time(DAY)
    assert customer.channels() == ["sms", "email"]
    assert len(customer.of_kind("fallback")) == 1
