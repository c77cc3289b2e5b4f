"""Every step kind run by the pure core: what it sends, what it records, where it leaves the instance."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, REACHABLE, START, Customer, flow, profile

from omnicanal.journey.advance import MAX_STEPS

# -- send ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "content"), [
    ("sms", {"body": "offer none"}),
    ("email", {"subject": "offer", "text": "offer none"}),
    ("push", {"title": "offer", "body": "offer none"}),
    ("webhook", {"payload": {"code": "none"}}),
    ("messenger", {"body": "offer none"}),
    ("whatsapp", {"body": "offer none"}),
])
def test_a_send_renders_the_channels_variant_and_hands_it_over(channel: str, content: dict[str, Any]) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channel: {channel}}}")],
                        profile=profile(whatsapp_last_inbound=START - HOUR))
    customer.event("go")
    [attempt] = customer.attempts
    assert (attempt.channel, attempt.template, attempt.journey, attempt.step, attempt.locale) == (
        channel, "offer", "j", "1_send", "en")
    assert attempt.content == content
    to = REACHABLE[channel]
    assert attempt.to == (to[-1] if isinstance(to, list) else to)
    [message] = customer.messages()
    assert {k: message[k] for k in ("status", "channel", "message_id", "to", "content", "purpose")} == {
        "status": "sent", "channel": channel, "message_id": attempt.message_id, "to": attempt.to,
        "content": content, "purpose": "marketing"}


def test_a_send_then_the_end_of_the_steps_completes_the_journey() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms, email]}")])
    customer.event("go")
    assert customer.channels() == ["sms"]
    assert customer.milestones() == ["started", "completed"]
    assert customer.instance("j") is None and customer.state.entries == {"j": START}


@pytest.mark.parametrize(("data", "body"), [
    ("{code: \"'SAVE' ~ event.properties.pct\"}", "offer SAVE15"),
    ("{code: 15}", "offer 15"),
    ("{code: true}", "offer True"),
    ("{code: \"customer.first_name | upper\"}", "offer ALEX"),
    ("{code: \"event.properties.missing | default('NONE')\"}", "offer NONE"),
])
def test_send_data_values_are_expressions_over_the_scope(data: str, body: str) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channels: [sms], data: {data}}}")],
                        attributes={"first_name": "Alex"})
    customer.event("go", pct=15)
    assert customer.attempts[0].content == {"body": body}


def test_a_data_value_that_fails_fails_the_message_visibly_and_the_journey_goes_on() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms, email], data: {code: "event.properties.missing"}}
- send: {template: offer, channels: [email]}
""")])
    customer.event("go")
    failed = customer.messages("failed")[0]
    assert failed["channel"] == "sms" and "missing" in failed["error"]
    assert customer.channels() == ["email"]  # only the next step's: the failure is not the channel's fault
    assert customer.milestones() == ["started", "completed"]


def test_a_template_that_fails_to_render_fails_the_message_without_a_send() -> None:
    customer = Customer([flow("- send: {template: fragile, channels: [sms, email]}")])
    customer.event("go")
    assert customer.attempts == []
    [message] = customer.messages()
    assert message["status"] == "failed" and message["channel"] == "sms"
    assert "code" in message["error"]
    assert customer.milestones() == ["started", "completed"]


@pytest.mark.parametrize("purpose", ["marketing", "transactional"])
def test_the_purpose_is_recorded_with_the_message(purpose: str) -> None:
    customer = Customer([flow(f"- send: {{template: offer, channels: [sms], purpose: {purpose}}}")])
    customer.event("go")
    assert customer.messages()[0]["purpose"] == purpose


def test_a_step_id_names_the_step_in_messages_and_attempts() -> None:
    customer = Customer([flow("""
- id: hello
  send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    assert customer.attempts[0].step == customer.messages()[0]["step"] == "hello"


def test_steps_without_an_id_are_named_by_position_and_kind() -> None:
    customer = Customer([flow("""
- wait: 1h
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    customer.pass_time(HOUR)
    assert customer.messages()[0]["step"] == "2_send"


# -- wait -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "seconds"), [
    ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 2 * 86400), ("1w", 7 * 86400), ("1h30m", 5400), ("90", 90),
])
def test_a_wait_parks_the_instance_for_its_duration(written: str, seconds: float) -> None:
    customer = Customer([flow(f"""
- wait: {written}
- send: {{template: offer, channels: [sms]}}
""")])
    customer.event("go")
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None
    assert (instance.waiting.kind, instance.waiting.until) == ("wait", START + seconds)
    assert list(customer.timers.values()) == [START + seconds]
    customer.pass_time(seconds - 1)
    assert customer.sent() == []
    customer.pass_time(1)
    assert customer.channels() == ["sms"]
    assert customer.milestones() == ["started", "completed"]


def test_waits_in_a_row_add_up() -> None:
    customer = Customer([flow("""
- wait: 1h
- wait: 2h
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    customer.pass_time(3 * HOUR - 1)
    assert customer.sent() == []
    customer.pass_time(1)
    assert customer.messages()[0]["at"] == "2027-01-15T11:00:00.000Z"


def test_a_wait_for_without_timeout_waits_without_a_timer() -> None:
    customer = Customer([flow("""
- wait_for: {event: order}
- send: {template: offer, channels: [sms]}
""")])
    customer.event("go")
    assert customer.timers == {}
    customer.pass_time(365 * DAY)
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "wait_for"
    customer.event("order")
    assert customer.channels() == ["sms"]


# -- exit and goto --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "milestone"), [
    ("- exit", "exited"),
    ("- exit: {reason: bought}", "exited (bought)"),
])
def test_exit_ends_the_journey_and_skips_the_steps_after_it(written: str, milestone: str) -> None:
    customer = Customer([flow(f"""
- branch: [{{when: "event.properties.skip", goto: after}}, {{else: 2_exit}}]
{written}
- id: after
  send: {{template: offer, channels: [sms]}}
""")])
    customer.event("go")
    assert customer.milestones() == ["started", milestone]
    assert customer.attempts == [] and customer.instance("j") is None


@pytest.mark.parametrize(("properties", "channels"), [({}, ["email"]), ({"long": True}, ["sms", "email"])])
def test_goto_jumps_over_steps(properties: dict[str, Any], channels: list[str]) -> None:
    customer = Customer([flow("""
- branch: [{when: "event.properties.long", goto: middle}, {else: hop}]
- id: hop
  goto: last
- id: middle
  send: {template: offer, channels: [sms]}
- id: last
  send: {template: offer, channels: [email]}
""")])
    customer.event("go", **properties)
    assert customer.channels() == channels


def test_goto_back_with_a_wait_loops_and_each_visit_sends_its_own_message() -> None:
    customer = Customer([flow("""
- id: top
  send: {template: offer, channels: [sms]}
- wait: 1d
- goto: top
""")])
    customer.event("go")
    customer.pass_time(3 * DAY)
    assert customer.channels() == ["sms"] * 4
    assert len({a.message_id for a in customer.attempts}) == 4
    assert customer.milestones() == ["started"]


def test_a_goto_loop_without_a_wait_is_stopped_and_marked_failed() -> None:
    customer = Customer([flow("""
- id: spin
  goto: spin
""")])
    customer.event("go")
    assert customer.milestones() == ["started", "failed (step limit)"]
    assert customer.errors() == [f"j: more than {MAX_STEPS} steps without a wait: is there a goto loop?"]
    assert customer.instance("j") is None and "j" in customer.state.entries


def _counting_loop(turns: int) -> Customer:
    """A loop of `2 * turns + 2` steps without a wait, which ends by running off the end of the steps."""
    customer = Customer([flow(f"""
- update: {{vars: {{i: 0}}}}
- id: loop
  update: {{vars: {{i: "vars.i + 1"}}}}
- branch:
    - {{when: "vars.i < {turns}", goto: loop}}
    - {{else: done}}
- id: done
  update: {{vars: {{done: true}}}}
""")])
    customer.event("go")
    return customer


@pytest.mark.parametrize(("turns", "outcome"), [
    (10, "completed"),
    (498, "completed"),  # 998 steps
    (499, "completed"),  # exactly 1000 steps
    (500, "failed (step limit)"),  # 1002 steps
])
def test_the_step_limit_counts_the_steps_run_without_waiting(turns: int, outcome: str) -> None:
    assert _counting_loop(turns).milestones() == ["started", outcome]


def test_the_step_limit_is_per_run_a_loop_with_a_wait_goes_on() -> None:
    customer = Customer([flow("""
- id: top
  update: {vars: {n: "vars.n | default(0) + 1"}}
- branch:
    - {when: "vars.n % 400 == 0", goto: rest}
    - {else: top}
- id: rest
  wait: 1h
- goto: top
""")])
    customer.event("go")
    customer.pass_time(3 * HOUR)
    instance = customer.instance("j")
    assert instance is not None and instance.vars["n"] == 1600
    assert customer.milestones() == ["started"]
