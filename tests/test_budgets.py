"""One event, one journey file or one template can cost at most its own failure, never the daemon's availability:
expressions and renders have a budget, event properties have size limits, the shipped journey is linear."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, StartApi, has_message, journey_ended, write_journey
from omnicanal.errors import BudgetExceeded
from omnicanal.expressions import Expression

HEALTH_BOUND = 2.0
"""Generous: the longest a health check may wait while the worker applies hostile work (a budget is 1 s)."""


class HealthProbe:
    """Polls /healthz while work is applied, keeping the slowest answer's time."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.slowest = 0.0
        self.answers = 0
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            began = time.monotonic()
            response = await self.api.client.get("/healthz")
            assert response.status == 200
            self.slowest = max(self.slowest, time.monotonic() - began)
            self.answers += 1
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> HealthProbe:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def large(body: Any) -> dict[str, Any]:
    """Request arguments for a large JSON body (aiohttp warns about large raw bytes)."""
    return {"data": io.BytesIO(json.dumps(body).encode()), "headers": {"Content-Type": "application/json"}}


async def large_event(api: Api, name: str, customer_id: str, properties: dict[str, Any]) -> None:
    await api.request("POST", "/v1/events", 202, **large({"name": name, "customer_id": customer_id,
                                                          "properties": properties}))


def cart(count: int) -> dict[str, Any]:
    return {"items": [{"sku": f"SKU-{i}", "name": "Chaussette", "price": 1.0} for i in range(count)],
            "total": float(count)}


async def test_a_20000_item_cart_is_refused_at_the_door_naming_the_field(start_api: StartApi) -> None:
    api = await start_api(max_body_bytes=4_000_000)
    event = {"name": "cart_abandoned", "customer_id": "c1", "properties": cart(20_000)}
    too_big = await api.request("POST", "/v1/events", 413, **large(event))
    assert too_big["errors"][0]["field"] == "properties"
    assert "more than 65,536 (OMNICANAL_MAX_PROPERTIES_BYTES)" in too_big["errors"][0]["message"]
    long_list = {"n": list(range(1_001))}
    batch = await api.request("POST", "/v1/events/batch", 202, json={"events": [
        {"name": "x", "customer_id": "c1"}, {"name": "x", "customer_id": "c1", "properties": long_list}]})
    assert batch["results"][1]["errors"][0]["field"] == "events.1.properties.n"
    profile = await api.request("PUT", "/v1/customers/c1", 422, json={"attributes": {"tags": list(range(1_001))}})
    assert profile["errors"][0]["field"] == "attributes.tags"

    roomy = await start_api(max_body_bytes=4_000_000, max_properties_bytes=4_000_000)
    too_long = await roomy.request("POST", "/v1/events", 422, **large(event))
    assert too_long["errors"][0]["field"] == "properties.items"
    assert "a list of 20,000 items, more than 1,000 (OMNICANAL_MAX_LIST_ITEMS)" in too_long["errors"][0]["message"]


@pytest.mark.slow  # 20,000-item events through the whole reference journey
async def test_a_20000_item_cart_and_order_go_through_the_reference_journey_without_blocking_the_loop(
        start_api: StartApi) -> None:
    api = await start_api(max_body_bytes=4_000_000, max_properties_bytes=4_000_000, max_list_items=50_000,
                          clock_speed=600.0)
    await api.put_customer("big", {"addresses": {"sms": "+33612345678"}, "locale": "fr"})
    async with HealthProbe(api) as probe:
        await large_event(api, "cart_abandoned", "big", cart(20_000))
        await api.wait_until("big", lambda es: any(e["kind"] == "journey" for e in es), timeout=30)
        await large_event(api, "order_placed", "big", {**cart(20_000), "order_id": "T-1", "channel": "web"})
        entries = await api.wait_until("big", journey_ended("abandoned_cart"), timeout=60)
    assert entries[-1]["reason"] == "bought"  # the order's items matched the cart's: the condition ran, linearly
    assert not [e for e in entries if e["kind"] == "error"], entries[-3:]
    assert probe.answers > 0 and probe.slowest < HEALTH_BOUND, probe.slowest


HOSTILE = """
id: hostile
trigger: {event: poke}
steps:
  - update:
      vars:
        power: "10 ** event.properties.n"
        repeated: "'a' * event.properties.times"
        fine: "event.properties.n + 1"
  - send: {template: loops, channels: [sms]}
"""
LOOPS = """
en:
  sms:
    body: |
      {% for i in range(event.properties.steps) %}{% for j in range(event.properties.steps) %}{{ j }}{% endfor %}
      {% endfor %}
"""


async def test_runaway_expressions_and_templates_fail_themselves_not_the_worker(project: Path,
                                                                                start_api: StartApi) -> None:
    write_journey(project, "hostile", HOSTILE)
    (project / "templates" / "loops.yaml").write_text(LOOPS, encoding="utf-8")
    api = await start_api()
    await api.put_customer("mallory", {"addresses": {"sms": "+33612345678"}})
    async with HealthProbe(api) as probe:
        began = time.monotonic()
        await api.event("poke", "mallory", properties={"n": 10_000_000, "times": 10**9, "steps": 20_000})
        entries = await api.wait_until("mallory", journey_ended("hostile"), timeout=30)
        took = time.monotonic() - began
    errors = {e["where"]: e["message"] for e in entries if e["kind"] == "error"}
    assert "bits" in errors["hostile.1_update.vars.power"], errors
    assert "1,000,000,000 characters" in errors["hostile.1_update.vars.repeated"], errors
    [message] = [e for e in entries if e["kind"] == "message"]
    assert message["status"] == "failed" and "over its budget" in message["error"], message
    assert (await api.request("GET", "/v1/customers/mallory", 200))["journeys"] == []
    assert took < 10 and probe.slowest < HEALTH_BOUND, (took, probe.slowest)
    await api.put_customer("lea", {"addresses": {"sms": "+33612345679"}})  # the worker goes on for everyone
    await api.event("poke", "lea", properties={"n": 2, "times": 3, "steps": 3})
    sent = await api.wait_until("lea", has_message("loops"))
    assert next(e for e in sent if e["kind"] == "message")["content"]["body"] == "012012012"


async def test_a_journey_with_a_constant_over_the_budget_is_refused_at_reload_at_once(
        project: Path, start_api: StartApi) -> None:
    api = await start_api(reload_interval=0)
    write_journey(project, "folded", "id: folded\ntrigger: {event: poke}\nsteps:\n"
                                     "  - update: {vars: {x: \"10**(10**7)\"}}\n")
    began = time.monotonic()
    assert await api.runtime.reload() is False
    assert time.monotonic() - began < 5
    assert "folded" not in api.runtime.registry.current


@pytest.mark.slow  # runs the command as its own process
def test_validate_refuses_constants_over_the_budget_at_once_with_file_and_line(project: Path) -> None:
    write_journey(project, "folded", "id: folded\ntrigger: {event: poke}\nsteps:\n"
                                     "  - update: {vars: {x: \"10**(10**7)\"}}\n"
                                     "  - send: {template: folded, channels: [sms]}\n")
    (project / "templates" / "folded.yaml").write_text("en:\n  sms:\n    body: \"{{ 'a' * 10**9 }}\"\n",
                                                       encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNICANAL_")}
    result = subprocess.run([str(Path(sys.executable).with_name("omnicanal")), "validate", str(project)],
                            env=clean, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    journey, template = project / "journeys" / "folded.yaml", project / "templates" / "folded.yaml"
    assert any(line.startswith(f"{journey}:4: ") and "a constant over the budget" in line and "bits" in line
               for line in lines), lines
    assert any(line.startswith(f"{template}:3: ") and "1,000,000,000 characters" in line for line in lines), lines


N = {"event": {"properties": {"n": 10**7, "big": 10**9, "text": "a" * 100_000, "lines": "\n" * 100_000,
                              "list": list(range(100_000))}}}


@pytest.mark.parametrize(("source", "refusal"), [
    ("10 ** event.properties.n", "bits"),
    ("'a' * event.properties.big", "1,000,000,000 characters"),
    ("[0] * event.properties.big", "1,000,000,000 characters"),
    ("event.properties.n * 10 ** 3000 * 10 ** 3000 * 10 ** 3000", "bits"),
    ("('%' ~ event.properties.big ~ 'd') % 1", "a %-format"),
    ("('{:>' ~ event.properties.big ~ '}').format(1)", "a format spec"),
    ("'{:>{}}'.format(1, event.properties.big)", "nested field"),
    ("'x'.ljust(event.properties.big)", "str.ljust"),
    ("event.properties.text.replace('a', event.properties.text)", "str.replace"),
    ("event.properties.text | replace('', event.properties.text)", "replace"),
    ("event.properties.text | center(event.properties.big)", "center"),
    ("event.properties.lines | indent(event.properties.text)", "indent"),
    ("([event.properties.text] * 100) | join(event.properties.text)", "join"),
    ("[1] | batch(event.properties.big, 0) | list", "batch"),
    ("lipsum(event.properties.n)", "lipsum"),
    ("(event.properties.text * 10) | groupby('x')", "operations"),
    ("(event.properties.text * 10) | sort", "operations"),
    ("event.properties.list | map('string') | select('in', event.properties.list | map('string') | list) | list",
     "operations"),
])
def test_every_way_to_grow_is_refused_before_it_runs(source: str, refusal: str) -> None:
    began = time.monotonic()
    with pytest.raises(BudgetExceeded, match=re.escape(refusal)):
        Expression(source).evaluate(N)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(("source", "value"), [
    ("2 ** 64", 2**64),
    ("'%.2f' % 3.14159", "3.14"),
    ("'{:>6}'.format('ok')", "    ok"),
    ("event.properties.list | map('string') | intersect(['5', '99999', 'x']) | list", ["5", "99999"]),
    ("event.properties.list | sum", sum(range(100_000))),
    ("(event.properties.list | map('string') | join(',')) | length", 588_889),
])
def test_ordinary_work_on_large_data_stays_within_the_budget(source: str, value: Any) -> None:
    assert Expression(source).evaluate(N) == value
