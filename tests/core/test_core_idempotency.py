"""Applying work twice: events that may come again under their id are applied once; stale and unknown timers do
nothing; and the same work applied again to the same starting state (a replay after a crash) decides the same —
the same instances, message ids, timer tokens and due times — so the engine's claims recognise every send."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, Customer, flow

from omnicanal.journey.effects import (
    Attempt,
    DrainJourney,
    EventArrived,
    Handed,
    Outcome,
    Refused,
    Replayed,
    TimerFired,
    Work,
)
from omnicanal.journey.sending import settled_claims
from omnicanal.policy.choice import Rules
from omnicanal.policy.windows import QuietHours

SERIES = flow("""
- send: {template: offer, channels: [sms, email], fallback_after: 2h}
- wait_for: {event: order, timeout: 1d, on_timeout: again}
- exit: {reason: bought}
- id: again
  send: {template: offer, channels: [email]}
- wait: 1d
""", "re_entry: always")


def _names(customer: Customer) -> list[str]:
    return [e["name"] for e in customer.of_kind("event")]


# -- events that may come again ----------------------------------------------------------------------------------


def test_an_event_that_may_come_again_is_applied_once_in_one_batch() -> None:
    customer = Customer([SERIES])
    event = customer.make_event("go", event_id="key-1")
    changes = customer.apply(EventArrived(event), EventArrived(dict(event)))
    assert _names(customer) == ["go"] and changes.seen == ["key-1"]
    assert len(customer.attempts) == 1


def test_an_event_seen_in_an_earlier_batch_is_ignored_entirely() -> None:
    customer = Customer([SERIES])
    customer.event("go", unique=False, event_id="key-1")
    changes = customer.event("go", unique=False, event_id="key-1")
    assert changes.timeline == [] and changes.seen == [] and changes.saved == set()
    assert customer.milestones() == ["started"]


def test_the_seen_ids_come_from_the_state_the_engine_read() -> None:
    customer = Customer([SERIES])
    customer.state.seen.add("key-1")  # applied before, within the idempotency window
    changes = customer.event("go", unique=False, event_id="key-1")
    assert changes.timeline == [] and customer.attempts == []


def test_a_unique_event_is_not_remembered() -> None:
    customer = Customer([SERIES])
    changes = customer.event("go", event_id="evt-1")
    assert changes.seen == [] and customer.state.seen == set()


@pytest.mark.parametrize(("name", "fallbacks"), [("message.delivered", 0), ("message.failed", 1), ("order", 0)])
def test_a_repeated_callback_settles_once(name: str, fallbacks: int) -> None:
    customer = Customer([SERIES])
    customer.event("go")
    message_id = customer.attempts[0].message_id
    for _ in range(2):
        customer.event(name, unique=False, event_id=f"cb-{name}", message_id=message_id)
    assert _names(customer) == ["go", name]
    customer.pass_time(3 * HOUR)
    assert len(customer.of_kind("fallback")) == fallbacks


def test_distinct_events_with_the_same_content_are_both_applied() -> None:
    customer = Customer([SERIES])
    customer.event("go", unique=False, event_id="a")
    customer.event("order", unique=False, event_id="b")
    customer.event("go", unique=False, event_id="c")
    assert _names(customer) == ["go", "order", "go"]
    assert customer.milestones() == ["started", "exited (bought)", "started"]


# -- timers that are stale, unknown or fire twice ---------------------------------------------------------------


def test_a_timer_of_an_ended_instance_does_nothing() -> None:
    customer = Customer([SERIES])
    customer.event("go")
    timers = dict(customer.timers)
    customer.event("order")
    for instance_id, token in timers:
        changes = customer.apply(TimerFired(instance_id, token))
        assert changes.timeline == [] and changes.saved == set() and changes.new_timers == []


@pytest.mark.parametrize("token", ["0", "1", "999", "fallback:nope"])
def test_a_timer_with_a_token_that_is_not_the_current_wait_does_nothing(token: str) -> None:
    customer = Customer([SERIES])
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None
    before = instance.to_dict()
    changes = customer.apply(TimerFired(instance.id, token))
    assert changes.timeline == [] and changes.new_timers == [] and instance.to_dict() == before


def test_a_timer_for_an_unknown_instance_does_nothing() -> None:
    customer = Customer([SERIES])
    changes = customer.apply(TimerFired("no-such-instance", "1"))
    assert changes.timeline == [] and changes.ended == set()


def test_the_same_timer_fired_twice_acts_once() -> None:
    customer = Customer([SERIES])
    customer.event("go")
    customer.event("message.delivered", message_id=customer.attempts[0].message_id)
    [(instance_id, token)] = customer.timers
    customer.now += DAY
    customer.apply(TimerFired(instance_id, token), TimerFired(instance_id, token))
    customer.apply(TimerFired(instance_id, token))
    assert customer.channels() == ["sms", "email"]


@pytest.mark.parametrize("journey_id", ["j", "other"])
def test_a_drain_applied_twice_ends_once(journey_id: str) -> None:
    customer = Customer([SERIES])
    customer.event("go")
    customer.apply(DrainJourney(journey_id), DrainJourney(journey_id))
    assert customer.milestones().count("exited (drained)") == (1 if journey_id == "j" else 0)


# -- the same work on the same state decides the same -------------------------------------------------------


def _decisions(customer: Customer) -> dict[str, Any]:
    return {
        "attempts": [(a.message_id, a.channel, a.to, a.content) for a in customer.attempts],
        "timers": sorted((i, t, due) for (i, t), due in customer.timers.items()),
        "instances": {iid: i.to_dict() for iid, i in customer.state.instances.items()},
        "timeline": customer.timeline,
    }


def _work(customer: Customer) -> list[Work]:
    return [EventArrived(customer.make_event("go", cart="K1")), EventArrived(customer.make_event("order"))]


@pytest.mark.parametrize("wait", [0.0, 2 * HOUR, DAY, 2 * DAY])
def test_the_same_work_on_the_same_state_gives_the_same_ids_and_timers(wait: float) -> None:
    first = Customer([SERIES])
    first.event("go")
    first.pass_time(wait)
    second = first.fork()
    first.attempts, first.timeline = [], []
    first.event("go")
    second.event("go")
    first.pass_time(DAY)
    second.pass_time(DAY)
    assert _decisions(first) == _decisions(second)


def test_a_replay_after_a_crash_recognises_every_send_it_made() -> None:
    def first_answer(attempt: Attempt) -> Outcome:
        return Refused("invalid number") if attempt.channel == "sms" else Handed("sent", provider_id="P1")

    first = Customer([SERIES], answer=first_answer)
    replay = first.fork()
    work = _work(first)
    first.apply(work[0])
    claimed = {a.message_id: ("failed" if a.channel == "sms" else "sent") for a in first.attempts}
    replay.answer = lambda attempt: Replayed(claimed[attempt.message_id])
    replay.apply(work[0])
    assert [a.message_id for a in replay.attempts] == list(claimed)
    assert [m["status"] for m in replay.messages()] == [m["status"] for m in first.messages()] == ["sent"]
    assert replay.timers == first.timers


def test_a_send_whose_outcome_was_lost_is_unknown_on_replay_and_the_journey_goes_on_the_same() -> None:
    first = Customer([SERIES])
    replay = first.fork()
    work = _work(first)
    first.apply(*work)
    replay.answer = lambda attempt: Replayed("unknown")
    replay.apply(*work)
    assert [a.message_id for a in replay.attempts] == [a.message_id for a in first.attempts]
    assert [m["status"] for m in replay.messages()] == ["unknown"]
    assert replay.milestones() == first.milestones() == ["started", "exited (bought)"]


def test_a_retry_is_scheduled_at_the_same_moment_on_replay() -> None:
    answer = lambda attempt: Refused("503", transient=True, retry_after=None)  # noqa: E731
    first = Customer([SERIES], answer=answer)
    second = first.fork()
    first.event("go")
    second.event("go")
    assert first.timers == second.timers and first.messages("retrying") == second.messages("retrying")


def test_a_crash_after_a_transient_refusal_replays_as_unknown_and_never_sends_again() -> None:
    """The claim still says `sending` (its record is written with the commit that never happened): the core
    cannot tell a refusal from a send that went, so it records `unknown` and moves on rather than risk a
    duplicate."""
    first = Customer([SERIES], answer=lambda attempt: Refused("503", transient=True))
    replay = first.fork()
    first.event("go")
    replay.answer = lambda attempt: Replayed("unknown")
    replay.event("go")
    assert [a.message_id for a in replay.attempts] == [first.attempts[0].message_id]
    assert [m["status"] for m in replay.messages()] == ["unknown"]
    instance = replay.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "wait_for"


def test_each_visit_of_a_step_sends_under_its_own_id() -> None:
    customer = Customer([SERIES])
    for _ in range(3):
        customer.event("go")
        customer.pass_time(2 * DAY)
    ids = [a.message_id for a in customer.attempts]
    assert len(ids) == len(set(ids)) == 3 * 3  # sms, its fallback by e-mail, the e-mail after the timeout


# -- a replay whose channel rules changed since the crash --------------------------------------------------------

NIGHTLY = flow("""
- send: {template: offer, channels: [sms, email], fallback_after: 2h}
- wait: 1d
""")
EVENING = 1_800_000_000.0 + 12 * HOUR + 59 * 60  # 20:59 UTC, a minute before the quiet hours


def _crashed_after_claiming(first_answer: Any = None) -> tuple[Customer, Customer]:
    """`go` applied at 20:59 (the first customer: what the crashed worker did before dying), and the same customer
    as the replay finds them two minutes later: the state of before, the claims of the crashed work."""
    first = Customer([NIGHTLY], rules=Rules(quiet_hours=QuietHours.parse("21:00-08:00")), now=EVENING)
    if first_answer is not None:
        first.answer = first_answer
    replay = first.fork()
    first.event("go", event_id="evt_go")
    replay.state.claimed = frozenset(attempt.message_id for attempt in first.attempts)
    replay.now += 120
    return first, replay


def test_a_replay_that_falls_in_quiet_hours_replays_the_claim_instead_of_holding_it() -> None:
    first, replay = _crashed_after_claiming()
    replay.answer = lambda attempt: Replayed("unknown")
    replay.event("go", event_id="evt_go")
    assert [a.message_id for a in replay.attempts] == [a.message_id for a in first.attempts]
    assert [(m["channel"], m["status"]) for m in replay.messages()] == [("sms", "unknown")]
    replay.pass_time(DAY)  # the morning brings nothing: the message was sent once, at 20:59
    assert [a.channel for a in replay.attempts] == ["sms", "email"]  # the fallback, its 2 h passed without receipt
    assert replay.attempts[1].message_id.startswith(first.attempts[0].message_id)


def test_a_replay_after_the_consent_was_withdrawn_replays_the_claim_and_sends_nowhere_else() -> None:
    first, replay = _crashed_after_claiming()
    replay.now = first.now  # before the quiet hours: only the consent differs
    replay.state.customer["consents"] = {"sms": {"marketing": {"granted": False, "source": "stop"}}}
    replay.answer = lambda attempt: Replayed("sent")
    replay.event("go", event_id="evt_go")
    assert [a.channel for a in replay.attempts] == ["sms"]
    assert [(m["channel"], m["status"]) for m in replay.messages()] == [("sms", "sent")]


def test_a_replay_whose_claimed_channels_all_failed_goes_on_to_the_next_as_the_rules_say_now() -> None:
    first, replay = _crashed_after_claiming(lambda attempt: Refused("invalid number"))
    claimed = {attempt.message_id for attempt in first.attempts}
    replay.answer = lambda attempt: Replayed("failed") if attempt.message_id in claimed else Handed("sent")
    replay.event("go", event_id="evt_go")
    assert [a.channel for a in first.attempts] == ["sms", "email"]  # both refused at 20:59
    assert [a.channel for a in replay.attempts] == ["sms", "email"]  # both replayed, nothing new tried
    assert [m["status"] for m in replay.messages()] == ["failed"]


def test_claims_of_another_visit_change_nothing() -> None:
    _, replay = _crashed_after_claiming()
    replay.state.claimed = frozenset({"someone-else.1.sms"})
    replay.event("go", event_id="evt_go")
    assert replay.attempts == [] and [m["status"] for m in replay.messages()] == ["held"]


def test_a_claim_is_kept_while_its_visit_may_still_be_replayed() -> None:
    first, replay = _crashed_after_claiming()
    [sms] = [attempt.message_id for attempt in first.attempts]
    instance_id, visit, _ = sms.split(".")
    later, gone = f"{instance_id}.{int(visit) + 10}.sms", "0123456789abcdef0123.1.sms"
    replay.state.claimed = frozenset({sms, later, gone, "not-a-message-id"})
    replay.answer = lambda attempt: Replayed("sent")
    replay.event("go", event_id="evt_go")
    assert settled_claims(replay.state) == {sms, gone, "not-a-message-id"}  # `later`: a visit still to come


def test_a_fallbacks_claim_is_kept_while_the_fallback_is_pending() -> None:
    customer = Customer([NIGHTLY])  # 08:00: no quiet hours
    customer.event("go")
    [sms] = [attempt.message_id for attempt in customer.attempts]
    fallback = f"{sms}~fallback.email"
    customer.state.claimed = frozenset({fallback})
    assert settled_claims(customer.state) == set()  # its 2 h have not passed: the fallback may still run
    customer.answer = lambda attempt: Replayed("sent")
    customer.pass_time(3 * HOUR)
    assert [a.message_id for a in customer.attempts] == [sms, fallback]  # replayed, not sent again
    assert settled_claims(customer.state) == {fallback}


# -- a replay that takes another path than the crashed work ------------------------------------------------------

BRANCHING = flow("""
- branch:
    - {when: "customer.vip", goto: vip}
    - {else: regular}
- id: vip
  send: {template: offer, channels: [sms]}
- exit: {reason: vip}
- id: regular
  update: {vars: {regular: "true"}}
- id: welcome
  send: {template: offer, channels: [sms]}
- id: thanks
  send: {template: offer, channels: [email]}
""")


def _crashed_on_the_vip_path() -> tuple[Customer, Customer]:
    first = Customer([BRANCHING])
    first.state.customer["vip"] = True
    replay = first.fork()
    first.event("go", event_id="evt_go")
    replay.state.claimed = frozenset(attempt.message_id for attempt in first.attempts)
    return first, replay


def test_a_replay_on_another_branch_sends_none_of_its_messages() -> None:
    first, replay = _crashed_on_the_vip_path()
    replay.state.customer["vip"] = False  # changed by a PUT between the crash and the replay
    replay.event("go", event_id="evt_go")
    assert [a.step for a in first.attempts] == ["vip"]
    assert replay.attempts == []
    why = f"replayed on another path: {first.attempts[0].message_id} went before the crash"
    assert [(m["step"], m["status"], m["skipped"][0]["reason"]) for m in replay.messages()] == [
        ("welcome", "suppressed", why), ("thanks", "suppressed", why)]


def test_a_replay_on_the_same_path_is_recognised_as_before() -> None:
    first, replay = _crashed_on_the_vip_path()
    replay.answer = lambda attempt: Replayed("sent")
    replay.event("go", event_id="evt_go")
    assert [a.message_id for a in replay.attempts] == [a.message_id for a in first.attempts]
    assert [(m["step"], m["status"]) for m in replay.messages()] == [("vip", "sent")]


def test_a_claim_whose_visit_the_replay_passed_with_a_send_does_not_stop_the_next_ones() -> None:
    """The crashed work's first message failed on its only channel and the journey went on to its next send:
    the replay passes the same visit (the claim answers `failed`) and the next message is sent as before."""
    first = Customer([BRANCHING])
    first.answer = lambda attempt: Refused("invalid number") if attempt.step == "welcome" else Handed("sent")
    replay = first.fork()
    first.event("go", event_id="evt_go")
    assert [a.step for a in first.attempts] == ["welcome", "thanks"]
    replay.state.claimed = frozenset({first.attempts[0].message_id})
    replay.answer = lambda attempt: Replayed("failed") if attempt.step == "welcome" else Handed("sent")
    replay.event("go", event_id="evt_go")
    assert [(a.step, a.channel) for a in replay.attempts] == [("welcome", "sms"), ("thanks", "email")]
