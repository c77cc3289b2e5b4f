"""`fetch` steps through the running daemon: a stock service on 127.0.0.1 answers, fails for now, hangs, answers
too much, or is a private address nobody allowed — and `omnicanal simulate` answers from the scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from conftest import StartApi, journey_ended, write_journey
from standins.http import Failure, HttpStandIn
from test_cli import run


class StockService(HttpStandIn):
    """`GET /stock/<sku>` → `{"sku", "in_stock"}`; `/huge` → a body over any sane limit."""

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/stock/{sku}", self._stock)
        app.router.add_get("/huge", self._huge)

    def error_body(self, failure: Failure) -> Any:
        return {"error": failure.status}

    async def _stock(self, request: web.Request) -> web.Response:
        await self.record(request)
        if (failed := await self.failure()) is not None:
            return failed
        return web.json_response({"sku": request.match_info["sku"], "in_stock": 3})

    async def _huge(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"padding": "x" * 300_000})


JOURNEY = """
id: restock
trigger: {event: viewed}
re_entry: always
steps:
  - fetch: {url: "URL", timeout: 1s, into: stock, on_error: no_stock}
  - branch:
      - {when: "vars.stock.in_stock > 0", goto: in_stock}
      - {else: no_stock}
  - id: in_stock
    exit: {reason: "in stock"}
  - id: no_stock
    exit: {reason: "no stock"}
"""


async def _ending(project: Path, start_api: StartApi, url: str, allowed: str, customer_id: str,
                  **settings: Any) -> tuple[str, list[dict[str, Any]]]:
    write_journey(project, "restock", JOURNEY.replace("URL", url))
    api = await start_api(fetch_allowed_hosts=allowed, **settings)
    await api.event("viewed", customer_id, properties={"sku": "SKU-1"})
    entries = await api.wait_until(customer_id, journey_ended("restock"), timeout=20)
    ended = next(e for e in entries if e["kind"] == "journey" and e["status"] != "started")
    return ended["reason"], [e for e in entries if e["kind"] == "fetch"]


async def test_the_answer_decides_the_branch(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        reason, fetches = await _ending(project, start_api, stock.url + "/stock/{{ event.properties.sku }}",
                                        "127.0.0.1", "f1")
    assert reason == "in stock" and [f["status"] for f in fetches] == ["ok"]
    assert stock.received[0].path == "/stock/SKU-1"
    assert stock.received[0].headers["Host"].startswith("127.0.0.1")


async def test_a_failing_service_is_retried_then_answers(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        stock.fail_next(2, status=503)
        reason, fetches = await _ending(project, start_api, stock.url + "/stock/A", "127.0.0.1", "f2")
    assert reason == "in stock"
    assert [f["status"] for f in fetches] == ["retrying", "retrying", "ok"] and len(stock.received) == 3


async def test_a_hanging_service_times_out_and_the_budget_ends_it(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        stock.fail_next(10, hang=True)
        reason, fetches = await _ending(project, start_api, stock.url + "/stock/A", "127.0.0.1", "f3",
                                        send_retry_budget=30.0)
    assert reason == "no stock"
    assert fetches[0]["error"] == "no answer within 1s" and fetches[-1]["status"] == "failed"


async def test_too_much_is_refused(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        reason, fetches = await _ending(project, start_api, stock.url + "/huge", "127.0.0.1", "f4")
    assert reason == "no stock" and "larger than 262144 bytes" in fetches[-1]["error"]


async def test_a_private_address_is_refused_unless_listed_by_name(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        reason, fetches = await _ending(project, start_api, stock.url + "/stock/A", "*", "f5")
    assert reason == "no stock" and "non-public address" in fetches[0]["error"]
    assert stock.received == []  # the call never left


async def test_a_host_not_allowed_is_refused(project: Path, start_api: StartApi) -> None:
    async with StockService() as stock:
        reason, fetches = await _ending(project, start_api, stock.url + "/stock/A", "shop.example", "f6")
    assert reason == "no stock" and "not in OMNICANAL_FETCH_ALLOWED_HOSTS" in fetches[0]["error"]
    assert stock.received == []


def test_simulate_answers_from_the_scenario(project: Path) -> None:
    write_journey(project, "restock", JOURNEY.replace("URL", "https://shop.example/stock/{{ event.properties.sku }}"))
    scenario = project / "scenario.yaml"
    scenario.write_text("""
events: [{at: 0s, name: viewed, properties: {sku: SKU-9}}]
fetches:
  "https://shop.example/stock/*": {json: {in_stock: 0}}
""", encoding="utf-8")
    result = run("simulate", "restock", "--scenario", str(scenario), cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetch    ok       https://shop.example/stock/SKU-9" in result.stdout
    assert "journey  exited (no stock)" in result.stdout


async def test_a_url_over_its_budget_fails_the_fetch_saying_so(project: Path, start_api: StartApi) -> None:
    """The URL was rendered on what the evaluation before it had left of its budget, and its failure was told as
    any error in an expression (`BudgetExceeded: ...`), not as a budget spent."""
    reason, fetches = await _ending(project, start_api, "http://127.0.0.1:1/{{ event.properties.sku * 1000000 }}",
                                    "127.0.0.1", "f7")
    assert reason == "no stock" and fetches[0]["status"] == "failed", fetches
    assert "over its budget: a repetition (`*`) would have 5,000,000 characters" in fetches[0]["error"], fetches
