"""`GET /metrics` of a running daemon, read with Prometheus' own text parser: the labelled series the reference
journey leaves (messages by journey, step, channel and status; provider latency by connector and outcome; event
lag; timer lateness; work backlog and pending), and the Grafana dashboard in deploy/ drawing only metrics that
are there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from conftest import ROOT, Api, StartApi, has_message, journey_ended, write_journey
from standins import TwilioStandIn
from test_reference_journey import abandon_cart, in_store_order

DASHBOARD = ROOT / "deploy" / "grafana" / "omnicanal.json"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
"""The series names a metric family of each type is queried by."""
HOME = {"workspace": "default"}
"""The label of every series of a process serving the one workspace OMNICANAL_WORKSPACE (its default)."""


class Exposition:
    """One reading of /metrics, parsed."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        """The sample's value (0 for a labelled series not yet exposed: it appears at its first use)."""
        found = [s.value for s in self.samples() if s.name == name and s.labels == labels]
        return found[0] if found else 0.0

    def samples(self) -> list[Sample]:
        return [sample for family in self.families.values() for sample in family.samples]

    def series_names(self) -> set[str]:
        """Every name a query may use: each family's name with its type's suffixes."""
        return {family.name + suffix for family in self.families.values()
                for suffix in SUFFIXES.get(family.type, ("",))}


async def metrics(api: Api) -> Exposition:
    response = await api.client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    return Exposition(await response.text())


async def bought_in_store(api: Api) -> None:
    """The reference journey: the push after the 1h wait (a timer), an order in store, the WhatsApp thanks."""
    await abandon_cart(api)
    await api.wait_until("c42", has_message("cart_discount"))
    await api.event("order_placed", "c42", properties=in_store_order())
    await api.wait_until("c42", journey_ended("abandoned_cart"))
    await api.settled()


async def test_metrics_after_the_reference_journey_have_the_labelled_series(start_api: StartApi) -> None:
    api = await start_api()
    before = await metrics(api)
    await bought_in_store(api)
    after = await metrics(api)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return after.value(name, **labels) - before.value(name, **labels) >= by

    push = {**HOME, "journey": "abandoned_cart", "step": "push_discount", "channel": "push", "status": "sent"}
    thanks = {**HOME, "journey": "abandoned_cart", "step": "thank_you", "channel": "whatsapp", "status": "sent"}
    assert grew("omnicanal_messages_total", **push) and grew("omnicanal_messages_total", **thanks)
    assert after.families["omnicanal_provider_seconds"].type == "histogram"
    assert grew("omnicanal_provider_seconds_count", 2, **HOME, connector="outbox", outcome="ok")
    assert grew("omnicanal_provider_seconds_bucket", 2, **HOME, connector="outbox", outcome="ok", le="+Inf")
    assert grew("omnicanal_event_lag_seconds_count", 2, **HOME)  # the cart and the order
    assert grew("omnicanal_timer_lateness_seconds_count", 1, **HOME)  # the hour waited for an order
    assert grew("omnicanal_events_accepted_total", 2, **HOME)
    for gauge in ("omnicanal_work_backlog", "omnicanal_work_pending", "omnicanal_waiting_timers"):
        assert after.families[gauge].type == "gauge" and after.families[gauge].samples, gauge
    labels = {name for sample in after.samples() if sample.name.startswith("omnicanal_")
              for name in sample.labels}
    assert labels <= {"workspace", "journey", "step", "channel", "status", "connector", "outcome", "kind", "loop",
                      "le"}
    assert all("workspace" in sample.labels for sample in after.samples() if sample.name.startswith("omnicanal_"))


async def test_provider_latency_is_told_by_outcome(project: Path, start_api: StartApi,
                                                   twilio: TwilioStandIn) -> None:
    write_journey(project, "promo", "id: promo\ntrigger: {event: promo}\nsteps:\n"
                                    "  - send: {template: welcome_offer, channels: [sms]}\n")
    twilio.fail_next(1, status=503)
    api = await start_api(channels={"sms": "twilio_sms"})
    before = await metrics(api)
    await api.put_customer("c5", {"addresses": {"sms": "+33612345678"}})
    await api.event("promo", "c5")
    entries = await api.wait_until("c5", journey_ended("promo"))
    after = await metrics(api)
    [retrying, queued] = [e for e in entries if e["kind"] == "message"]
    assert (retrying["status"], queued["status"]) == ("retrying", "queued")
    for outcome in ("transient", "ok"):
        labels = {**HOME, "connector": "twilio_sms", "outcome": outcome}
        assert after.value("omnicanal_provider_seconds_count", **labels) \
            == before.value("omnicanal_provider_seconds_count", **labels) + 1, outcome
    retried = {**HOME, "journey": "promo", "step": retrying["step"], "channel": "sms", "status": "retrying"}
    assert after.value("omnicanal_messages_total", **retried) == before.value("omnicanal_messages_total",
                                                                              **retried) + 1


def _queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables' queries."""
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return exprs + [variable["definition"] for variable in dashboard["templating"]["list"]
                    if variable["type"] == "query"]


async def test_the_dashboard_and_the_readme_name_only_metrics_that_are_exposed(start_api: StartApi) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    [source] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(panel["datasource"]["uid"] == f"${{{source['name']}}}" for panel in panels)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])

    api = await start_api()
    await bought_in_store(api)
    exposition = await metrics(api)
    exposed = exposition.series_names()
    queries = _queries(dashboard)
    named = {name for query in queries for name in re.findall(r"\bomnicanal_\w+", query)}
    assert named and named <= exposed, named - exposed
    shown = {re.sub(r"_(total|bucket)$", "", name) for name in named}
    assert {"omnicanal_messages", "omnicanal_provider_seconds", "omnicanal_event_lag_seconds",
            "omnicanal_timer_lateness_seconds", "omnicanal_work_backlog", "omnicanal_work_pending"} <= shown
    assert any("histogram_quantile(0.99" in query and "omnicanal_provider_seconds" in query for query in queries)
    workspaces = next(v for v in dashboard["templating"]["list"] if v["name"] == "workspace")["definition"]
    assert workspaces == "label_values(omnicanal_work_backlog, workspace)"
    unfiltered = [query for query in queries if query != workspaces and 'workspace=~"$workspace"' not in query]
    assert not unfiltered, unfiltered  # every panel shows the workspaces chosen, not all of the process's
    section = README[README.index("**Metrics**"):README.index("\n## ", README.index("**Metrics**"))]
    documented = set(re.findall(r"`(omnicanal_\w+)", section))  # a histogram by its family's name
    assert "omnicanal_work_pending" in documented
    assert documented <= exposed | set(exposition.families), documented - exposed
