"""`fetch` steps in the pure core: the call asked for, the answer kept in vars, retries held on a timer within the
budget, failures said on the timeline and sent to `on_error`."""

from __future__ import annotations

import pytest
from harness import HOUR, Customer, flow

from omnicanal.errors import JourneyError
from omnicanal.journey.effects import Fetch, Fetched, Outcome, Refused

STOCK = flow("""
- fetch: {url: "https://shop.example/stock/{{ event.properties.sku }}", timeout: 2s, into: stock, on_error: no_stock}
- branch:
    - {when: "vars.stock.in_stock > 0", goto: push_it}
    - {else: no_stock}
- id: push_it
  send: {template: offer, channels: [sms]}
- exit: {reason: pushed}
- id: no_stock
  exit: {reason: no stock}
""")


def answering(*outcomes: Outcome) -> Customer:
    queue = list(outcomes)
    return Customer([STOCK], fetch=lambda request: queue.pop(0))


def test_the_answer_is_kept_in_vars_for_the_steps_after() -> None:
    customer = answering(Fetched({"in_stock": 3}))
    customer.event("go", sku="SKU 1")
    [request] = customer.fetches
    assert request == Fetch("https://shop.example/stock/SKU 1", "GET", None, 2.0, "c1", "j", "1_fetch")
    assert customer.milestones() == ["started", "exited (pushed)"]
    assert [e["status"] for e in customer.of_kind("fetch")] == ["ok"]


def test_a_failure_for_good_goes_to_on_error_with_the_error_shown() -> None:
    customer = answering(Refused("HTTP 404"))
    customer.event("go", sku="X")
    assert customer.milestones() == ["started", "exited (no stock)"]
    [entry] = customer.of_kind("fetch")
    assert (entry["status"], entry["error"]) == ("failed", "HTTP 404")


def test_a_failure_for_now_is_retried_with_backoff_then_succeeds() -> None:
    customer = answering(Refused("HTTP 503", transient=True, retry_after=60.0), Fetched({"in_stock": 1}))
    customer.event("go", sku="X")
    instance = customer.instance("j")
    assert instance is not None and instance.waiting is not None and instance.waiting.kind == "hold"
    customer.pass_time(HOUR)
    assert len(customer.fetches) == 2
    assert customer.milestones() == ["started", "exited (pushed)"]
    assert [e["status"] for e in customer.of_kind("fetch")] == ["retrying", "ok"]


def test_retries_stop_at_the_budget() -> None:
    customer = Customer([STOCK], retry_budget=120.0, fetch=lambda r: Refused("timeout", transient=True))
    customer.event("go", sku="X")
    customer.pass_time(HOUR)
    assert customer.milestones() == ["started", "exited (no stock)"]
    assert customer.of_kind("fetch")[-1]["status"] == "failed"


def test_a_url_with_a_hole_is_never_called() -> None:
    customer = answering()
    customer.event("go")  # no sku
    assert customer.fetches == []
    assert customer.milestones() == ["started", "exited (no stock)"]
    assert "sku" in customer.of_kind("fetch")[0]["error"]


def test_skip_continues_with_the_var_unset_and_post_sends_the_body() -> None:
    customer = Customer([flow("""
- update: {vars: {stock: "'stale'"}}
- fetch: {url: "https://crm.example/score", method: POST, body: {id: "customer.id", n: 2}, into: stock}
- exit: {reason: done}
""")], fetch=lambda request: Refused("HTTP 400"))
    customer.event("go")
    assert customer.fetches[0].body == {"id": "c1", "n": 2}
    instance_vars = customer.of_kind("fetch")
    assert instance_vars[0]["status"] == "failed"
    assert customer.milestones() == ["started", "exited (done)"]


@pytest.mark.parametrize(("step", "message"), [
    ("- fetch: {url: 'https://x.example', into: Stock}", "into"),
    ("- fetch: {url: 'https://x.example', into: s, timeout: 1m}", "at most 30s"),
    ("- fetch: {url: 'https://x.example', into: s, body: {a: 1}}", "method: POST"),
    ("- fetch: {url: 'https://x.example/{{ vars.a ', into: s}", "does not compile"),
    ("- fetch: {url: 'https://x.example', into: s, on_error: nowhere}", "nowhere"),
])
def test_a_wrong_fetch_is_refused_at_load(step: str, message: str) -> None:
    with pytest.raises(JourneyError, match=message):
        flow(step)
