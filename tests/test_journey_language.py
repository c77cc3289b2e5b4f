"""The journey language: files in, Journey models or located problems out, and the Mermaid drawing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from textwrap import dedent

import pytest

from omnicanal.errors import ConfigError, JourneyError, Problem
from omnicanal.expressions import compile_expression
from omnicanal.journey.durations import format_duration, parse_duration
from omnicanal.journey.graph import to_mermaid
from omnicanal.journey.loader import load_journeys, parse_journey, validate_project
from omnicanal.journey.model import (
    BranchStep,
    ExitStep,
    Goal,
    GotoStep,
    SendStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from omnicanal.journey.validate import TemplateLookup
from omnicanal.render import TemplateCatalog

# Three header lines, so the first step is on line 4.
HEAD = "id: j\ntrigger: {event: e}\nsteps:\n"
DURATION_HINT = "use a number followed by s, m, h, d or w, e.g. 30s, 15m, 2d"
ONE_KIND = ("a step needs exactly one of send, wait, wait_for, branch, update, goto, exit, digest, split, fetch; "
            "this one has")

REFERENCE = """\
id: abandoned_cart
name: Abandoned cart
trigger: {event: cart_abandoned, where: "event.properties.total >= 20"}
re_entry: after 7d
exit_on:
  - {event: unsubscribed_all}
goal: {event: order_placed, within: 3d}
steps:
  - update:
      vars: {cart_id: "event.properties.cart_id", total: "event.properties.total"}
      customer: {last_cart_total: "event.properties.total"}
  - id: choose
    branch:
      - {when: "vars.total >= 100", goto: vip_offer}
      - {else: standard_offer}
  - id: vip_offer
    send: {template: cart_vip, channels: [whatsapp, sms], data: {percent: "15"}}
  - goto: wait_order
  - id: standard_offer
    send: {template: cart_discount, channel: push}
  - wait: 1h
  - id: wait_order
    wait_for:
      event: order_placed
      where: "event.properties.cart_id == vars.cart_id"
      timeout: 48h
      on_timeout: reminder
  - send: {template: order_thanks, channels: [whatsapp, sms]}
  - exit
  - id: reminder
    send: {template: cart_reminder, channels: [email]}
"""


def problems(source: str, templates: TemplateLookup | None = None) -> list[Problem]:
    with pytest.raises(JourneyError) as caught:
        parse_journey(source, "j.yaml", templates)
    return caught.value.problems


def only(source: str, templates: TemplateLookup | None = None) -> Problem:
    found = problems(source, templates)
    assert len(found) == 1, found
    assert found[0].path == "j.yaml"
    return found[0]


@pytest.fixture
def catalog(tmp_path: Path) -> TemplateCatalog:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "cart_discount.yaml").write_text(dedent("""\
        en:
          push: {title: "Still thinking?", body: "-10%"}
          sms: {body: "Hi {{ customer.first_name }}"}
        """))
    (directory / "order_thanks.yaml").write_text('en:\n  sms: {body: "Thanks!"}\n')
    return TemplateCatalog.load(directory, "en")


# --- a valid journey -------------------------------------------------------------------------------------


def test_reference_journey_parses_into_steps_with_ids_kinds_and_targets() -> None:
    journey = parse_journey(REFERENCE, "journeys/abandoned_cart.yaml")

    assert [(s.id, s.kind, s.line) for s in journey.steps] == [
        ("1_update", "update", 9), ("choose", "branch", 12), ("vip_offer", "send", 16),
        ("4_goto", "goto", 18), ("standard_offer", "send", 19), ("6_wait", "wait", 21),
        ("wait_order", "wait_for", 22), ("8_send", "send", 28), ("9_exit", "exit", 29),
        ("reminder", "send", 30),
    ]
    steps = {s.id: s.action for s in journey.steps}
    assert isinstance(branch := steps["choose"], BranchStep)
    assert [(c.when.source, c.goto) for c in branch.cases] == [("vars.total >= 100", "vip_offer")]
    assert branch.otherwise == "standard_offer"
    assert steps["4_goto"] == GotoStep(target="wait_order")
    assert steps["standard_offer"] == SendStep(template="cart_discount", channels=("push",))
    assert steps["6_wait"] == WaitStep(seconds=3600)
    assert isinstance(wait_for := steps["wait_order"], WaitForStep)
    assert (wait_for.event, wait_for.timeout, wait_for.on_timeout) == ("order_placed", 172800, "reminder")
    assert steps["9_exit"] == ExitStep()
    assert isinstance(send := steps["vip_offer"], SendStep)
    assert send.data["percent"].evaluate({}) == 15
    assert isinstance(update := steps["1_update"], UpdateStep)
    assert update.vars["total"].evaluate({"event": {"properties": {"total": 89}}}) == 89

    assert (journey.id, journey.name, journey.path, journey.source) == (
        "abandoned_cart", "Abandoned cart", "journeys/abandoned_cart.yaml", REFERENCE)
    assert journey.trigger.where == compile_expression("event.properties.total >= 20")
    assert (journey.re_entry.mode, journey.re_entry.after) == ("after", 7 * 86400)
    assert [m.event for m in journey.exit_on] == ["unsubscribed_all"]
    assert journey.goal == Goal(event="order_placed", within=3 * 86400)
    assert journey.version == hashlib.sha256(REFERENCE.encode()).hexdigest()[:12]
    assert journey.events() == {"cart_abandoned", "unsubscribed_all", "order_placed"}
    assert journey.step_index("wait_order") == 6
    with pytest.raises(KeyError):
        journey.step_index("nope")


def test_defaults_literal_values_and_every_exit_form() -> None:
    journey = parse_journey(HEAD + dedent("""\
          - update: {vars: {n: 15, ratio: 0.5, flag: true}}
          - branch:
              - {when: "vars.flag", goto: bought}
              - {when: "vars.n > 1", goto: bare}
              - {else: quiet}
          - id: quiet
            exit: null
          - id: bought
            exit: {reason: bought}
          - id: bare
            exit:
        """), "j.yaml")

    assert (journey.name, journey.re_entry.mode, journey.exit_on, journey.goal) == ("j", "never", (), None)
    assert isinstance(update := journey.steps[0].action, UpdateStep)
    assert {name: e.evaluate({}) for name, e in update.vars.items()} == {"n": 15, "ratio": 0.5, "flag": True}
    assert [s.action for s in journey.steps[2:]] == [ExitStep(), ExitStep(reason="bought"), ExitStep()]


@pytest.mark.parametrize(("written", "mode", "after"), [("never", "never", None), ("always", "always", None),
                                                        ("after 1h30m", "after", 5400)])
def test_re_entry_forms(written: str, mode: str, after: float | None) -> None:
    journey = parse_journey(f"re_entry: {written}\n" + HEAD + "  - exit\n", "j.yaml")
    assert (journey.re_entry.mode, journey.re_entry.after) == (mode, after)


# --- durations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "seconds"), [
    ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("1h30m", 5400),
    ("1.5h", 5400), (90, 90), (0.5, 0.5), ("90", 90),
])
def test_durations(written: object, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["1 hour", "h", "", "1x", "0", 0, -5, "0s", True, None, [1]])
def test_bad_durations(written: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(written)


@pytest.mark.parametrize(("seconds", "text"), [
    (30, "30s"), (5400, "1h30m"), (86400, "24h"), (172800, "48h"), (3 * 86400, "3d"), (604800, "1w"),
    (0.5, "0.5s"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- one test per kind of problem, each with its line ----------------------------------------------------


def test_yaml_syntax_error_has_its_line() -> None:
    problem = only(HEAD + "  - send: {template: x, channels: [push}\n")
    assert problem.line == 4 and "YAML syntax error" in problem.message


def test_a_character_yaml_refuses_is_a_located_problem_in_journeys_and_templates(tmp_path: Path) -> None:
    problem = only(HEAD + '  - wait: "1h\x07"\n')
    assert (problem.line, problem.message) == (4, "YAML syntax error: unacceptable character #x0007: special "
                                                  "characters are not allowed")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.yaml").write_text('en:\n  sms: {body: "hi\x07"}\n', encoding="utf-8")
    (tmp_path / "journeys").mkdir()
    found = validate_project(tmp_path / "journeys", tmp_path / "templates", "en")
    assert [(Path(p.path).name, p.line, p.message) for p in found] == [
        ("t.yaml", 2, "YAML syntax error: unacceptable character #x0007: special characters are not allowed")
    ]


def test_a_character_yaml_refuses_after_accented_text_is_on_its_own_line() -> None:
    """libyaml counts a refused character's position in bytes of UTF-8: it was read as ~1 line per 100 é."""
    problem = only(HEAD + "  # " + "é" * 300 + "\n" * 3 + '  - wait: "1h\x07"\n')
    assert (problem.line, problem.message) == (7, "YAML syntax error: unacceptable character #x0007: special "
                                                  "characters are not allowed")


def test_a_key_written_next_to_a_merge_key_overrides_the_merged_one() -> None:
    """YAML's merge keys, as in any YAML tool: `{<<: *defaults, template: other}` is the defaults with another
    template (it was refused as a duplicate key), an alias of such a mapping means the same, and the first
    mapping of `<<: [*a, *b]` wins over the second. A key written twice by hand is still refused."""
    journey = parse_journey(HEAD + dedent("""\
          - send: &marketing {template: welcome, channels: [email, sms], purpose: marketing}
          - send: &thanks {<<: *marketing, template: order_thanks, purpose: transactional}
          - send: *thanks
          - send: {<<: [*thanks, *marketing], channels: [push]}
        """), "j.yaml")
    sends = [step.action for step in journey.steps]
    assert all(isinstance(send, SendStep) for send in sends)
    assert [(s.template, list(s.channels), s.purpose) for s in sends if isinstance(s, SendStep)] == [
        ("welcome", ["email", "sms"], "marketing"), ("order_thanks", ["email", "sms"], "transactional"),
        ("order_thanks", ["email", "sms"], "transactional"), ("order_thanks", ["push"], "transactional")]
    problem = only(HEAD + "  - send: {<<: *m, template: a, template: b}\n".replace("*m", "{channels: [sms]}"))
    assert (problem.line, problem.message) == (4, "duplicate key 'template' (first at line 4)")


def test_a_syntax_error_at_the_end_of_a_file_without_a_final_line_break_is_on_its_last_line() -> None:
    """libyaml marks the end of such a text one line below it (the fuzzing of the shipped journeys found it)."""
    problem = only(HEAD + "  - exit\nnot a key")
    assert problem.line == 5 and "could not find expected ':'" in problem.message


def test_a_large_journey_loads_and_its_mistake_keeps_its_line() -> None:
    """~400 KB of steps (PyYAML's Python reader took seconds for it; the daemon reloads every file): the one
    misspelt key near the end is reported at its own line."""
    steps = "".join(f"  - id: s{i}\n    update: {{vars: {{n: \"{i}\"}}}}\n" for i in range(8_000))
    problem = only(HEAD + steps + "  - wiat: 1h\n")
    assert problem.line == 4 + 2 * 8_000 and "wiat" in problem.message


@pytest.mark.parametrize(("source", "gist"), [("- a\n- b\n", "holds list"), ("", "holds NoneType")])
def test_file_must_be_a_mapping(source: str, gist: str) -> None:
    problem = only(source)
    assert problem.line == 1 and "a journey file is a mapping" in problem.message and gist in problem.message


def test_duplicate_yaml_key() -> None:
    problem = only(HEAD + "  - exit\nid: k\n")
    assert (problem.line, problem.message) == (5, "duplicate key 'id' (first at line 1)")


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    problem = only("nmae: x\n" + HEAD + "  - exit\n")
    assert problem.line == 1
    assert problem.message == ("unknown key 'nmae' in the journey; expected one of: caps, exit_on, goal, id, "
                               "name, re_entry, steps, trigger (did you mean 'name'?)")


def test_unknown_keys_in_trigger_goal_and_exit_on() -> None:
    found = problems(dedent("""\
        id: j
        trigger: {event: e, wehre: "true"}
        exit_on:
          - {event: stop, when: "true"}
        goal: {event: bought, witihn: 3d}
        steps: [exit]
        """))
    assert [(p.line, p.message) for p in found] == [
        (2, "unknown key 'wehre' in trigger; expected one of: audience, event, key, rate, schedule, timezone, "
            "where (did you mean 'where'?)"),
        (4, "unknown key 'when' in exit_on item; expected one of: any_key, event, where (did you mean 'where'?)"),
        (5, "unknown key 'witihn' in goal; expected one of: any_key, event, revenue, where, within "
            "(did you mean 'within'?)"),
    ]


def test_unknown_key_in_a_send_step_is_reported_once_with_its_correction() -> None:
    problem = only(HEAD + "  - send:\n      template: t\n      chanels: [push]\n")
    assert problem.line == 6
    assert problem.message == ("unknown key 'chanels' in send step; expected one of: channel, channels, "
                               "coupon, data, delivered_on, fallback_after, purpose, template (did you mean "
                               "'channels'?)")


def test_unknown_key_in_wait_for_and_branch_items() -> None:
    found = problems(HEAD + dedent("""\
          - wait_for: {event: x, timout: 1h}
          - branch:
              - {when: "true", goto: 1_wait_for, then: x}
              - {else: 1_wait_for}
        """))
    assert [(p.line, p.message.split(";")[0]) for p in found] == [
        (4, "unknown key 'timout' in wait_for step"), (6, "unknown key 'then' in branch item"),
    ]


def test_unknown_step_kind_suggests_the_right_one() -> None:
    problem = only(HEAD + "  - sned: {template: t, channel: push}\n")
    assert problem.line == 4 and problem.message.startswith("unknown key 'sned' in step")
    assert "(did you mean 'send'?)" in problem.message


@pytest.mark.parametrize(("source", "line", "message"), [
    ("trigger: {event: e}\nsteps: [exit]\n", 1, "missing required key 'id' in the journey: e.g. `id: "),
    ("id: j\nsteps: [exit]\n", 1, "missing required key 'trigger' in the journey"),
    ("id: j\ntrigger: {event: e}\n", 1, "missing required key 'steps' in the journey"),
    ("id: j\ntrigger: {where: 'true'}\nsteps: [exit]\n", 2, "trigger: a trigger is an event (`trigger: {event: "),
    (HEAD + "  - send: {channel: push}\n", 4, "missing required key 'template' in send step"),
    (HEAD + "  - send: {template: t}\n", 4, "missing required key 'channels' in send step"),
    ("id: j\ntrigger: {event: e}\nsteps: []\n", 3, "steps: expected at least one item"),
])
def test_missing_required_keys(source: str, line: int, message: str) -> None:
    problem = only(source)
    assert problem.line == line and problem.message.startswith(message)


def test_a_step_needs_exactly_one_kind() -> None:
    found = problems(HEAD + "  - id: lonely\n  - send: {template: t, channel: push}\n    wait: 1h\n")
    assert [(p.line, p.message) for p in found] == [
        (4, f"{ONE_KIND} none"),
        (5, f"{ONE_KIND} 'send' and 'wait': split it into one step per action"),
    ]


def test_a_step_must_be_a_mapping_or_exit() -> None:
    problem = only(HEAD + "  - 42\n")
    assert problem.line == 4 and "a step is a mapping" in problem.message


def test_bad_durations_are_reported_on_their_line() -> None:
    found = problems(dedent("""\
        id: j
        trigger: {event: e}
        goal: {event: g, within: 3 days}
        steps:
          - wait: 1 hour
          - wait_for:
              event: x
              timeout: -1h
        """))
    assert [(p.line, p.message) for p in found] == [
        (3, f"goal.within: bad duration '3 days': {DURATION_HINT}"),
        (5, f"wait: bad duration '1 hour': {DURATION_HINT}"),
        (8, f"wait_for.timeout: bad duration '-1h': {DURATION_HINT}"),
    ]


@pytest.mark.parametrize(("written", "gist"), [("sometimes", "use never, always or 'after <duration>'"),
                                               ("after a while", "bad duration 'a while'")])
def test_bad_re_entry(written: str, gist: str) -> None:
    problem = only(HEAD + f"  - exit\nre_entry: {written}\n")
    assert problem.line == 5 and problem.message.startswith("re_entry: ") and gist in problem.message


def test_unknown_jump_targets_suggest_the_right_step() -> None:
    found = problems(HEAD + dedent("""\
          - branch:
              - {when: "true", goto: remindr}
              - {else: nowhere}
          - wait_for: {event: x, timeout: 1h, on_timeout: remider}
          - goto: reminder_
          - id: reminder
            exit: null
        """))
    assert [(p.line, p.message) for p in found] == [
        (5, "branch[0].goto: no step has the id 'remindr' (did you mean 'reminder'?)"),
        (6, "branch[1].else: no step has the id 'nowhere'"),
        (7, "wait_for.on_timeout: no step has the id 'remider' (did you mean 'reminder'?)"),
        (8, "goto: no step has the id 'reminder_' (did you mean 'reminder'?)"),
    ]


def test_a_jump_to_a_broken_step_is_not_reported_as_unknown() -> None:
    problem = only(HEAD + "  - goto: later\n  - id: later\n    wait: soon\n")
    assert problem.line == 6 and problem.message.startswith("wait: bad duration 'soon'")


def test_branch_needs_a_final_else() -> None:
    problem = only(HEAD + "  - branch:\n      - {when: 'true', goto: 2_exit}\n  - exit\n")
    assert problem.line == 4
    assert problem.message.startswith("missing required key 'else' in branch step: a branch ends with")


def test_else_must_be_the_last_branch_item() -> None:
    problem = only(HEAD + "  - branch:\n      - {else: 2_exit}\n      - {when: x, goto: 2_exit}\n  - exit\n")
    assert (problem.line, problem.message) == (5, "'else' must be the last item of a branch; move it down")


def test_unreachable_steps() -> None:
    found = problems(HEAD + dedent("""\
          - exit
          - id: orphan
            wait: 1h
          - goto: orphan
          - id: after_goto
            exit: null
        """))
    assert [(p.line, p.message.split(":")[0]) for p in found] == [
        (5, "step 'orphan' can never run"),
        (7, "step '3_goto' can never run"),
        (8, "step 'after_goto' can never run"),
    ]
    assert found[0].message.endswith("no goto, branch or on_timeout leads to it; jump to it or remove it")


def test_a_wait_for_with_on_timeout_still_continues_to_the_next_step() -> None:
    journey = parse_journey(HEAD + dedent("""\
          - wait_for: {event: x, timeout: 1h, on_timeout: late}
          - exit: {reason: on_time}
          - id: late
            exit: {reason: late}
        """), "j.yaml")
    assert len(journey.steps) == 3


def test_templates_and_channels_are_checked(catalog: TemplateCatalog) -> None:
    found = problems(HEAD + dedent("""\
          - send: {template: cart_discount, channels: [push, fax, email]}
          - send: {template: order_thanks, channel: whatsapp}
          - send:
              template: no_such_template
              channels: [sms]
        """), catalog)
    assert [(p.line, p.message) for p in found] == [
        (4, "template 'cart_discount' has no 'email' variant: add one to cart_discount.yaml or drop "
            "'email' here"),
        (4, "unknown channel 'fax'; expected one of: email, inbox, messenger, push, sms, webhook, whatsapp"),
        (5, "template 'order_thanks' has no 'whatsapp' variant: add one to order_thanks.yaml or drop "
            "'whatsapp' here"),
        (7, "template 'no_such_template' does not exist: add no_such_template.yaml to the templates "
            "directory or fix the name"),
    ]


def test_channels_are_checked_without_templates_too() -> None:
    problem = only(HEAD + "  - send:\n      template: t\n      channels:\n        - push\n        - smss\n")
    assert (problem.line, problem.message.split(";")[0]) == (8, "unknown channel 'smss'")
    assert problem.message.endswith("(did you mean 'sms'?)")


NEVER_DELIVERED = ("send.fallback_after: channel push never reports delivery, so the fallback would always "
                   "send: add e.g. `delivered_on: push.opened` (an event your app sends when the message is "
                   "seen) or put channels that report delivery (sms, whatsapp) first")


def test_fallback_after_a_channel_that_never_reports_delivery_is_refused_at_its_line() -> None:
    problem = only(HEAD + "  - send:\n      template: t\n      channels: [push, sms]\n      fallback_after: 2h\n")
    assert (problem.line, problem.message) == (7, NEVER_DELIVERED)


def test_every_channel_a_fallback_may_leave_must_report_delivery() -> None:
    problem = only(HEAD + "  - send: {template: t, channels: [sms, push, email, whatsapp], fallback_after: 1h}\n")
    assert problem.line == 4
    assert problem.message.startswith("send.fallback_after: channels push, email never report delivery, so the "
                                      "fallback would always send: add e.g. `delivered_on: push.opened`")


@pytest.mark.parametrize("step", ["send: {template: t, channels: [sms, email, sms], fallback_after: 1h}",
                                  "digest: {event: e, window: 1d, template: t, channels: [email, email]}"])
def test_a_channel_listed_twice_is_refused(step: str) -> None:
    """Each channel is tried once: written twice, it would get the same message again as its own fallback."""
    problem = only(HEAD + f"  - {step}\n")
    assert problem.line == 4
    assert problem.message.split(": ", 1)[0] in ("send.channels", "digest.channels")
    assert "listed more than once: each channel is tried once" in problem.message
    assert "remove the repeat" in problem.message


@pytest.mark.parametrize("channels", ["[sms, email]", "[whatsapp, sms, push]", "[push]"])
def test_fallback_after_channels_with_receipts_or_from_the_last_channel_loads(channels: str) -> None:
    journey = parse_journey(HEAD + f"  - send: {{template: t, channels: {channels}, fallback_after: 2h}}\n", "j.yaml")
    assert isinstance(send := journey.steps[0].action, SendStep)
    assert send.fallback_after == 7200 and send.delivered_on is None


@pytest.mark.parametrize(("written", "events"), [
    ("push.opened", ("push.opened",)),
    ("[push.opened, message.clicked]", ("push.opened", "message.clicked")),
])
def test_delivered_on_names_the_events_that_count_as_delivery(written: str, events: tuple[str, ...]) -> None:
    journey = parse_journey(HEAD + "  - send: {template: t, channels: [push, email, sms], fallback_after: 2h, "
                                   f"delivered_on: {written}}}\n", "j.yaml")
    assert isinstance(send := journey.steps[0].action, SendStep)
    assert send.delivered_on == events


def test_delivered_on_without_fallback_after_is_refused() -> None:
    problem = only(HEAD + "  - send: {template: t, channels: [push, sms], delivered_on: push.opened}\n")
    assert (problem.line, problem.message) == (4, "send: delivered_on is set but fallback_after is not, so it "
                                                  "would change nothing: add e.g. `fallback_after: 2h`, or "
                                                  "remove delivered_on")


def test_delivered_on_must_name_an_event() -> None:
    found = problems(HEAD + "  - send: {template: t, channels: [push, sms], fallback_after: 2h, delivered_on: []}\n"
                            "  - send: {template: t, channels: [push, sms], fallback_after: 2h, delivered_on: ['']}\n")
    assert [(p.line, p.message.split(":")[0]) for p in found] == [(4, "send.delivered_on"), (5, "send.delivered_on[0]")]
    assert found[0].message == "send.delivered_on: expected at least one item"


def test_validate_reports_a_fallback_that_would_always_send_as_file_and_line(
    tmp_path: Path, catalog: TemplateCatalog
) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "promo.yaml").write_text(HEAD + dedent("""\
          - send: {template: cart_discount, channels: [sms, push], fallback_after: 2h}
          - send:
              template: cart_discount
              channels: [push, sms]
              fallback_after: 2h
          - send: {template: cart_discount, channels: [push, sms], fallback_after: 2h, delivered_on: push.opened}
        """))
    found = validate_project(journeys, tmp_path / "templates", "en")
    assert [str(p) for p in found] == [f"{journeys / 'promo.yaml'}:8: {NEVER_DELIVERED}"]


def test_channel_and_channels_together() -> None:
    problem = only(HEAD + "  - send: {template: t, channels: [sms], channel: push}\n")
    assert problem.line == 4
    assert problem.message == "use either 'channel' (one) or 'channels' (a list), not both"


def test_expressions_that_do_not_compile() -> None:
    found = problems(dedent("""\
        id: j
        trigger: {event: e, where: "event.total >"}
        steps:
          - update:
              vars:
                ok: "1"
                broken: "a +"
          - branch:
              - {when: "vars.x ==", goto: 3_exit}
              - {else: 3_exit}
          - exit
        """))
    assert [(p.line, p.message.split(":")[0]) for p in found] == [
        (2, "trigger.where"), (7, "update.vars.broken"), (9, "branch[0].when"),
    ]
    assert all("does not compile" in p.message for p in found)


def test_conditions_must_be_strings() -> None:
    problem = only("id: j\ntrigger: {event: e, where: 5}\nsteps: [exit]\n")
    assert problem.line == 2 and problem.message.startswith("trigger.where: expected an expression in quotes")


def test_duplicate_and_invalid_ids() -> None:
    found = problems(dedent("""\
        id: Not Valid
        trigger: {event: e}
        steps:
          - id: same
            wait: 1h
          - id: same
            exit: null
          - id: Bad-Step
            exit: null
          - id: 3_exit
            exit: null
        """))
    assert [(p.line, p.message.split(": use")[0]) for p in found] == [
        (1, "id: invalid id 'Not Valid'"),
        (6, "duplicate step id 'same' (also used at line 4): step ids must be unique"),
        (8, "id: invalid id 'Bad-Step'"),
    ]
    assert problems(HEAD + "  - wait: 1h\n  - id: 1_wait\n    exit: null\n")[0].message.startswith(
        "duplicate step id '1_wait' (also used at line 4)")


def test_on_timeout_needs_a_timeout() -> None:
    problem = only(HEAD + "  - wait_for: {event: x, on_timeout: 2_exit}\n  - exit\n")
    assert (problem.line, problem.message) == (4, "wait_for: on_timeout is set but timeout is not: add e.g. "
                                                  "`timeout: 48h`")


def test_an_update_must_set_something() -> None:
    problem = only(HEAD + "  - update: {vars: {}}\n")
    assert problem.line == 4 and "needs 'vars' or 'customer'" in problem.message


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    found = problems(dedent("""\
        id: cart
        trigger: {event: cart_abandoned}
        re_entry: sometimes
        steps:
          - wait: 1 hour
          - send: {template: t, chanels: [push]}
          - goto: nowhere
          - id: choose
            branch:
              - {when: "vars.total >=", goto: choose}
        """))
    assert [(p.line, p.message.split(":")[0].split(";")[0]) for p in found] == [
        (3, "re_entry"),
        (5, "wait"),
        (6, "unknown key 'chanels' in send step"),
        (7, "goto"),
        (9, "missing required key 'else' in branch step"),
        (10, "branch[0].when"),
    ]


# --- directories and projects ----------------------------------------------------------------------------


def test_load_journeys_reads_yaml_and_yml_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD.replace("id: j", "id: a") + "  - exit\n")
    (tmp_path / "b.yml").write_text(HEAD.replace("id: j", "id: b") + "  - exit\n")
    (tmp_path / "notes.txt").write_text("not a journey")
    journeys = load_journeys(tmp_path)
    assert sorted(journeys) == ["a", "b"]
    assert journeys["b"].path == str(tmp_path / "b.yml")
    assert journeys["a"].version == hashlib.sha256((tmp_path / "a.yaml").read_bytes()).hexdigest()[:12]


def test_load_journeys_reports_every_file_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "  - exit\n")
    (tmp_path / "b.yaml").write_text("name: copy\n" + HEAD + "  - exit\n")
    (tmp_path / "c.yaml").write_text(HEAD.replace("id: j", "id: c") + "  - wait: 1 hour\n")
    with pytest.raises(JourneyError) as caught:
        load_journeys(tmp_path)
    assert [(Path(p.path).name, p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        ("b.yaml", 2, f"journey id 'j' is also in {tmp_path / 'a.yaml'}"),
        ("c.yaml", 4, "wait"),
    ]


def test_missing_journeys_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OMNICANAL_JOURNEYS_DIR"):
        load_journeys(tmp_path / "absent")


def test_validate_project_checks_templates_and_journeys(tmp_path: Path, catalog: TemplateCatalog) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "j.yaml").write_text(HEAD + "  - send: {template: nope, channel: sms}\n  - wait: soon\n")
    found = validate_project(journeys, tmp_path / "templates", "en")
    assert [(p.line, p.message.split(":")[0]) for p in found] == [
        (4, "template 'nope' does not exist"), (5, "wait"),
    ]

    (tmp_path / "templates" / "broken.yaml").write_text("en:\n  sms: {bdy: x}\n")
    found = validate_project(journeys, tmp_path / "templates", "en")
    # templates that do not load are reported, and journeys are still checked, without the template check
    assert [(Path(p.path).name, p.line) for p in found] == [
        ("j.yaml", 5), ("broken.yaml", 2), ("broken.yaml", 2),
    ]


# --- graph -----------------------------------------------------------------------------------------------


def test_mermaid_graph_has_every_edge() -> None:
    graph = to_mermaid(parse_journey(REFERENCE, "j.yaml"))
    assert graph.startswith("flowchart TD\n")
    for line in [
        'start(["on cart_abandoned"])',
        's1{"choose: branch"}',
        's2["vip_offer: send cart_vip via whatsapp, sms"]',
        's5["6_wait: wait 1h"]',
        "start --> s0",
        "s0 --> s1",
        's1 -->|"vars.total #gt;= 100"| s2',
        's1 -->|"else"| s4',
        "s3 --> s6",
        's6 -->|"timeout 48h"| s9',
        's6 -->|"order_placed"| s7',
        "s8 --> finish",
        "s9 --> finish",
    ]:
        assert f"    {line}\n" in graph, line
    assert "s8 --> s9" not in graph  # nothing follows an exit


def test_a_loop_that_sends_without_waiting_is_refused_where_it_sends() -> None:
    found = problems("""
        id: flood
        trigger: {event: go}
        steps:
          - id: again
            send: {template: welcome_offer, channels: [email]}
          - goto: again
    """)
    assert [(p.line, p.message) for p in found] == [
        (5, "the loop through steps again, 2_goto sends without waiting: each turn would send another message at "
            "once; add a wait or wait_for inside the loop")]
    parse_journey(dedent("""
        id: nudges
        trigger: {event: go}
        steps:
          - id: again
            send: {template: welcome_offer, channels: [email]}
          - wait: 1d
          - goto: again
    """), "j.yaml")


def test_split_keyed_trigger_and_dated_wait_validate_with_file_and_line() -> None:
    found = problems("""
        id: lab
        trigger: {event: order_ready, key: "event.properties.order_id", any_key: true}
        steps:
          - split:
              - {weight: 50, goto: later}
              - {weight: 50, goto: nowhere}
              - {weight: 0, holdout: true}
          - id: later
            wait: {at: "event.properties.deadline", offset: -1x, on_past: gone}
    """)
    messages = [(p.line, p.message) for p in found]
    assert any(line == 3 and "any_key" in message for line, message in messages), messages
    assert any(line == 8 and "split[2].weight" in message and "greater than 0" in message
               for line, message in messages), messages
    assert (10, "wait.offset: bad duration '1x': use a number followed by s, m, h, d or w, e.g. 30s, 15m, 2d") \
        in messages


def test_a_split_says_how_many_arms_it_needs_and_not_for_an_arm_that_failed() -> None:
    """A split of two arms, one with weight 0, was also told `split: expected at least one item`: wrong twice (it
    has two, it needs two)."""
    found = problems(HEAD + "  - split:\n      - {weight: 0, goto: x}\n      - {weight: 1, goto: x}\n"
                            "  - split: [{weight: 1, goto: x}]\n  - id: x\n    exit: {}\n")
    assert [(p.line, p.message) for p in found] == [
        (5, "split[0].weight: Input should be greater than 0"), (7, "split: expected at least 2 items")]
