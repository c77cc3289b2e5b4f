"""`omnicanal simulate` as a journey author runs it: every kind of timeline entry reads as a sentence."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import write_journey
from test_cli import at_once, run


def test_a_fallback_is_reported_with_its_message_and_reason(project: Path) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
steps:
  - send: {template: welcome_offer, channels: [sms, email], fallback_after: 2h}
  - wait: 1d
""")
    result = run("simulate", "promo", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["+0s", "sent", "sms"] for line in lines), result.stdout
    fallback = next(line for line in lines if "fallback" in line.split()[1:2])
    assert fallback.split()[0] == "+2h"
    assert "(not delivered in time): next channel of step 1_send" in fallback
    assert any(line.split()[:3] == ["+2h", "sent", "email"] for line in lines), result.stdout
    assert "None" not in result.stdout


MORNINGS = """
id: gold_mornings
trigger: {schedule: "0 9 * * MON", timezone: customer, audience: gold}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""

SEVERAL = """
customers:
  paris: {attributes: {tier: gold}, timezone: Europe/Paris, addresses: {email: p@example.com}, consents: {email: true}}
  new_york: {attributes: {tier: gold}, timezone: America/New_York, addresses: {email: n@example.com}}
  lyon: {attributes: {tier: silver}, timezone: Europe/Paris, addresses: {email: l@example.com}}
  lille: {attributes: {tier: silver}, timezone: Europe/Paris, addresses: {email: x@example.com}}
updates:
  - {at: 1d, customer: lyon, profile: {attributes: {tier: gold}}}
until: 4d
"""


def sections(report: str) -> dict[str, list[list[str]]]:
    """Each customer's report lines, split into words, by customer."""
    found: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in report.splitlines()[1:]:
        if line.startswith("customer "):
            current = found.setdefault(line.removeprefix("customer ").rstrip(":"), [])
        else:
            current.append(line.split())
    return found


def test_a_scenario_of_several_customers_plays_a_schedule_each_at_nine_on_their_clock(project: Path) -> None:
    write_journey(project, "gold_mornings", MORNINGS)
    (project / "segments").mkdir()
    (project / "segments" / "gold.yaml").write_text("id: gold\nwhere: \"customer.tier == 'gold'\"\n")
    (project / "several.yaml").write_text(SEVERAL)
    result, as_json = at_once(lambda: run("simulate", "gold_mornings", "--scenario", "several.yaml", cwd=project),
                              lambda: run("simulate", "gold_mornings", "--scenario", "several.yaml", "--json",
                                          cwd=project))
    assert result.returncode == 0, result.stdout + result.stderr
    found = sections(result.stdout)
    # Friday 08:00 UTC + 59 h: Sunday 19:00 UTC, Monday 09:00 at UTC+14; then 09:00 on each customer's clock
    assert [words[:3] for words in found["paris"] if words[1] in ("sent", "journey")] == [
        ["+59h", "journey", "started"], ["+3d", "sent", "email"], ["+3d", "journey", "completed"]]
    assert [words[:3] for words in found["new_york"] if words[1] == "sent"] == [["+3d6h", "sent", "email"]]
    assert ["+24h", "event", "customer.updated"] in found["lyon"]  # the update made Lyon gold on Saturday
    assert [words[:3] for words in found["lyon"] if words[1] == "sent"] == [["+3d", "sent", "email"]]
    assert not any(words[1] == "sent" for words in found["lille"] if len(words) > 1)
    assert "the journey did not start: it starts on its schedule (0 9 * * MON, customer) for the members of " \
           "segment 'gold'" in result.stdout

    timelines = json.loads(as_json.stdout)
    assert sorted(timelines) == ["lille", "lyon", "new_york", "paris"]
    assert [e["at"][:19] for e in timelines["new_york"] if e["kind"] == "message"] == ["2027-01-18T14:00:00"]


def test_a_scenario_says_whose_event_it_is_when_there_are_several(project: Path) -> None:
    (project / "bad.yaml").write_text("customers: {paris: {}, lyon: {}}\nevents:\n  - {name: promo}\n"
                                      "updates:\n  - {customer: lion, profile: {locale: fr}}\n")
    write_journey(project, "promo", "id: promo\ntrigger: {event: promo}\nsteps:\n  - exit\n")
    result = run("simulate", "promo", "--scenario", "bad.yaml", cwd=project)
    assert result.returncode != 0
    assert "events[0]: say whose it is with `customer:` (one of paris, lyon)" in result.stderr


def test_a_message_that_failed_says_why(project: Path) -> None:
    """A failed send printed its status alone: the reason was only in `--json`. An event without `items` makes
    the reference reminder loop over the mapping's `items` method, which is named as such."""
    write_journey(project, "nudge", """
id: nudge
trigger: {event: nudge}
steps:
  - send: {template: cart_reminder, channels: [email]}
""")
    (project / "nudge.scenario.yaml").write_text(
        "customer: {addresses: {email: lea@example.com}}\nevents:\n  - {at: 0s, name: nudge}\n", encoding="utf-8")
    result = run("simulate", "nudge", "--scenario", "nudge.scenario.yaml", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    failed = next(index for index, line in enumerate(lines) if line.split()[1:3] == ["failed", "email"])
    assert lines[failed + 1].split()[0] == "error:", result.stdout
    located = r"templates/cart_reminder\.yaml:\d+: template cart_reminder \(en, email\.text\)"
    assert re.search(located, lines[failed + 1]), result.stdout
    assert "loops over the function items, not data: call it, or name a key that is there" in lines[failed + 1]


def test_an_event_and_a_timer_at_one_moment_are_applied_in_the_same_order_on_every_run(project: Path) -> None:
    """The third view comes exactly as the digest's hour ends: the simulation applies the scenario's event first,
    then the window's timer, so the digest holds three items on every run (the engine's timer loop used to race
    the scenario and sometimes closed the window first)."""
    write_journey(project, "viewed", """
id: viewed
trigger: {event: viewed}
steps:
  - digest: {event: viewed, window: 1h, template: viewed_digest, channels: [email]}
""")
    (project / "views.yaml").write_text("""
customer: {addresses: {email: a@example.com}}
events:
  - {at: 0s, name: viewed, properties: {sku: A, name: Alpha, price: 1}}
  - {at: 30m, name: viewed, properties: {sku: B, name: Beta, price: 2}}
  - {at: 1h, name: viewed, properties: {sku: C, name: Gamma, price: 3}}
until: 3h
""")

    def simulated() -> subprocess.CompletedProcess[str]:
        return run("simulate", "viewed", "--scenario", "views.yaml", "--json", cwd=project,
                   OMNICANAL_QUIET_HOURS="off")

    results = [*at_once(*[simulated] * 4), *at_once(*[simulated] * 4)]
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        sent = [entry for entry in json.loads(result.stdout) if entry["kind"] == "message"]
        assert [(entry["at"], entry["content"]["subject"]) for entry in sent] == [
            ("2027-01-15T09:00:00.000Z", "3 items you viewed are on sale")], sent
