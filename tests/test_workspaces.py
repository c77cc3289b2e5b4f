"""Workspaces for real (OMNICANAL_WORKSPACES_DIR), through HTTP with real Redis: one process serves `shop-fr` and
`shop-de`, each with its own journeys, templates and segments; a key of one never reads or changes the other's
data, on any route of api/permissions.py (a new route is swept as soon as it is listed there); events start the
journeys of their key's workspace only, counters stay apart, signed links act in the workspace that signed them,
each workspace's files are reloaded on their own, and the command line addresses each workspace."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from conftest import settings_for
from omnicanal.admin import create_key
from omnicanal.api import permissions
from omnicanal.api.app import create_app
from omnicanal.cli import app as cli
from omnicanal.config import Settings
from omnicanal.engine.deployment import Deployment
from omnicanal.errors import ConfigError
from omnicanal.scopes import Scope
from omnicanal.workspaces import workspace_settings, workspaces_of
from standins import TwilioStandIn
from test_channels_end_to_end import PHONE, twilio_post
from test_daemon import OMNICANAL, free_port
from test_metrics import Exposition

FR, DE = "shop-fr", "shop-de"
CUSTOMER = "kunde-1"
"""A customer id known to shop-de; the sweep uses it with shop-fr's key."""
DE_MARKERS = ("DE-SECRET-7731", "DE-TEMPLATE-TEXT", "de_hidden_step", "tier_de", "DE-BROADCAST-DATA")
"""Strings only shop-de's data holds (attribute, rendered message, step id, segment condition, broadcast data):
never in an answer to shop-fr's key. The requests never spell them."""

FILES = {
    FR: {
        "journeys/bienvenue.yaml": """
id: bienvenue
trigger: {event: signed_up}
steps:
  - id: fr_welcome
    send: {template: bienvenue_mail, channels: [email], purpose: transactional}
""",
        "templates/bienvenue_mail.yaml": """
en:
  email:
    subject: "Bienvenue"
    text: "FR-TEMPLATE-TEXT {{ track('https://shop.example/fr') }}"
""",
        "segments/fideles.yaml": "id: fideles\nwhere: \"customer.tier == 'gold'\"\n",
    },
    DE: {
        "journeys/willkommen.yaml": """
id: willkommen
trigger: {event: signed_up}
steps:
  - id: de_hidden_step
    send: {template: willkommen_mail, channels: [email, sms], purpose: transactional}
  - wait_for: {event: bestellt, timeout: 3650d}
""",
        "templates/willkommen_mail.yaml": """
en:
  email:
    subject: "Willkommen"
    text: "DE-TEMPLATE-TEXT {{ track('https://shop.example/de') }} {{ unsubscribe_url }}"
  sms:
    body: "DE-TEMPLATE-TEXT"
""",
        "segments/stammkunden.yaml": "id: stammkunden\nwhere: \"customer.tier_de == 'gold'\"\n",
    },
}


def write_workspaces(root: Path) -> Path:
    for workspace, files in FILES.items():
        for name, text in files.items():
            path = root / "workspaces" / workspace / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.lstrip(), encoding="utf-8")
    return root / "workspaces"


def base_settings(root: Path, redis_url: str, **overrides: Any) -> Settings:
    return settings_for(root, **{"redis_url": redis_url, "workspaces_dir": write_workspaces(root),
                                 "reload_interval": 0.05, "public_url": "http://links.test", "link_secret": "s" * 32,
                                 **overrides})


@dataclass
class Served:
    """The process's app, and a full-scope key of each workspace."""

    client: TestClient[Any, Any]
    deployment: Deployment
    keys: dict[str, str]
    key_ids: dict[str, str]

    async def call(self, method: str, path: str, workspace: str | None, expect: int | None = None,
                   **kwargs: Any) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self.keys[workspace]}"} if workspace else {}
        response = await self.client.request(method, path, headers=headers, allow_redirects=False, **kwargs)
        text = await response.text()
        if expect is not None:
            assert response.status == expect, (method, path, response.status, text)
        return response.status, text

    async def json(self, method: str, path: str, workspace: str, expect: int = 200, **kwargs: Any) -> Any:
        return json.loads((await self.call(method, path, workspace, expect, **kwargs))[1])

    async def outbox(self, workspace: str) -> list[dict[str, Any]]:
        return list((await self.json("GET", "/v1/outbox", workspace))["messages"])

    async def until_outbox(self, workspace: str, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):
            while len(messages := await self.outbox(workspace)) < count:
                await asyncio.sleep(0.02)
        return messages


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Served]:
    """The deployment of `settings` behind one app, with a full-scope stored key of each workspace."""
    deployment = await Deployment.start(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deployment)))
    await client.start_server()
    keys, ids = {}, {}
    for workspace in (FR, DE):
        key, secret = await create_key(workspace_settings(settings, workspace), "test", [s.value for s in Scope])
        keys[workspace], ids[workspace] = secret, key.id
    try:
        yield Served(client, deployment, keys, ids)
    finally:
        await client.close()
        await deployment.stop()


@pytest.fixture
async def served(tmp_path: Path, redis_url: str) -> AsyncIterator[Served]:
    async with serving(base_settings(tmp_path, redis_url)) as started:
        yield started


async def de_data(served: Served) -> dict[str, Any]:
    """Everything shop-de holds that the sweep could reach, read with shop-de's key."""
    reads = ["/v1/customers/kunde-1", "/v1/customers/kunde-1/timeline", "/v1/customers/kunde-1/export",
             "/v1/journeys", "/v1/journeys/willkommen", "/v1/journeys/willkommen/stats", "/v1/segments",
             "/v1/broadcasts", "/v1/audit", "/v1/outbox"]
    data = {path: await served.json("GET", path, DE) for path in reads}
    stats = data["/v1/journeys/willkommen/stats"]
    del data["/v1/customers/kunde-1/export"]["exported_at"], stats["to"]  # now
    del stats["series"]  # the days up to now: the fast journey clock may cross midnight during the sweep
    return data


async def fill_de(served: Served) -> str:
    """shop-de's customer in its journey, its message, a broadcast and audit entries; returns the broadcast id."""
    await served.json("PUT", f"/v1/customers/{CUSTOMER}", DE, json={
        "attributes": {"secret": "DE-SECRET-7731", "tier_de": "gold"},
        "addresses": {"email": "kunde@example.de"}})
    await served.json("POST", "/v1/events", DE, 202, json={"name": "signed_up", "customer_id": CUSTOMER})
    await served.until_outbox(DE, 1)
    broadcast = await served.json("POST", "/v1/broadcasts", DE, 201, json={
        "journey": "willkommen", "audience": {"segment": "stammkunden"}, "at": "2100-01-01T00:00:00Z",
        "data": {"note": "DE-BROADCAST-DATA"}})
    await served.json("POST", "/v1/journeys/willkommen/pause", DE, 202)
    await served.json("POST", "/v1/journeys/willkommen/resume", DE, 202)
    return str(broadcast["id"])


BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/events"): {"name": "signed_up", "customer_id": CUSTOMER},
    ("POST", "/v1/events/batch"): {"events": [{"name": "bestellt", "customer_id": CUSTOMER}]},
    ("POST", "/v1/events/cancel"): {"customer_id": CUSTOMER, "idempotency_key": "k1"},
    ("PUT", "/v1/customers/{customer_id}"): {"attributes": {"secret": "overwritten"}},
    ("POST", "/v1/broadcasts"): {"journey": "willkommen", "audience": {"everyone": True}},
}
"""What the sweep sends, aimed at shop-de's ids; any other route gets `{}` (or nothing for GET and DELETE)."""
QUERIES = {"/v1/outbox": f"?customer_id={CUSTOMER}", "/ui/customers": f"?q={CUSTOMER}",
           "/ui/preview": f"?template=willkommen_mail&customer={CUSTOMER}",
           "/v1/journeys/{journey_id}/stats": "?bucket=day"}


def aimed_at_de(path: str, broadcast_id: str) -> str:
    """The route with shop-de's ids in it (the most damaging action where the route takes one)."""
    values = {"customer_id": CUSTOMER, "journey_id": "willkommen", "action": "stop", "segment_id": "stammkunden",
              "broadcast_id": broadcast_id}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path) + QUERIES.get(path, "")


def keyed_routes() -> list[tuple[str, str]]:
    return sorted(route for route, needs in permissions.ROUTES.items() if needs != permissions.PUBLIC)


async def test_no_route_lets_one_workspace_read_or_change_another(served: Served) -> None:
    broadcast_id = await fill_de(served)
    before = await de_data(served)
    shown = json.dumps(before)
    assert all(marker in shown for marker in DE_MARKERS), "the markers must be in shop-de's data to prove anything"
    assert served.key_ids[DE] in shown  # the audit's actor
    for method, route in keyed_routes():
        path = aimed_at_de(route, broadcast_id)
        body = BODIES.get((method, route), {} if method in ("POST", "PUT") else None)
        status, text = await served.call(method, path, FR, **({"json": body} if body is not None else {}))
        assert status < 500, (method, path, status, text)
        leaked = [m for m in (*DE_MARKERS, served.key_ids[DE]) if m in text]
        assert not leaked, (method, path, status, leaked, text[:500])
    await asyncio.sleep(0.3)  # what the sweep queued in shop-fr is applied there, if anywhere
    assert await de_data(served) == before
    assert (await served.json("GET", f"/v1/broadcasts/{broadcast_id}", DE))["status"] == "scheduled"


async def test_a_key_is_refused_outside_its_workspace_and_a_key_is_always_needed(served: Served) -> None:
    broadcast_id = await fill_de(served)
    fr_id, fr_random = served.keys[FR].split(".")[2:]
    forged = f"ock.{DE}.{fr_id}.{fr_random}"  # shop-fr's secret claiming shop-de
    for method, route in keyed_routes():
        path = aimed_at_de(route, broadcast_id)
        for headers in ({"Authorization": f"Bearer {forged}"}, {"X-API-Key": "ock.shop-xx.a.b"}, {}):
            response = await served.client.request(method, path, headers=headers, allow_redirects=False)
            await response.read()
            if route.startswith("/ui") and not route.endswith(".json") and not headers:
                assert response.status == 303, (method, path)  # to the login form
            else:
                assert response.status == 401, (method, path, headers, response.status)


async def test_events_start_their_workspace_journeys_and_counters_stay_apart(served: Served) -> None:
    for workspace in (FR, DE):
        await served.json("PUT", "/v1/customers/c1", workspace, json={"addresses": {"email": "c1@example.com"},
                                                                      "attributes": {"shop": workspace}})
    await served.json("POST", "/v1/events", FR, 202, json={"name": "signed_up", "customer_id": "c1"})
    [fr_message] = await served.until_outbox(FR, 1)
    assert fr_message["journey"] == "bienvenue" and "FR-TEMPLATE-TEXT" in json.dumps(fr_message)
    fr_customer = await served.json("GET", "/v1/customers/c1", FR)
    assert fr_customer["attributes"]["shop"] == FR
    await asyncio.sleep(0.2)
    assert await served.outbox(DE) == []  # the same event name and customer id, in the other workspace: nothing
    assert (await served.json("GET", "/v1/customers/c1", DE))["journeys"] == []
    fr_journeys = await served.json("GET", "/v1/journeys", FR)
    de_journeys = await served.json("GET", "/v1/journeys", DE)
    assert [j["id"] for j in fr_journeys["journeys"]] == ["bienvenue"]
    assert [j["id"] for j in de_journeys["journeys"]] == ["willkommen"]
    assert fr_journeys["journeys"][0]["counts"]["started"] == 1
    assert de_journeys["journeys"][0]["counts"]["started"] == 0
    await served.call("GET", "/v1/journeys/willkommen", FR, 404)
    assert [s["id"] for s in (await served.json("GET", "/v1/segments", FR))["segments"]] == ["fideles"]


async def test_signed_links_act_in_the_workspace_that_signed_them(served: Served) -> None:
    for workspace in (FR, DE):
        await served.json("PUT", f"/v1/customers/{CUSTOMER}", workspace, json={
            "addresses": {"email": "k@example.com"}, "consents": {"email": True}})
    await served.json("POST", "/v1/events", DE, 202, json={"name": "signed_up", "customer_id": CUSTOMER})
    text = json.dumps(await served.until_outbox(DE, 1))
    click, unsubscribe = re.search(r"/r/[\w-]+", text), re.search(r"/u/[\w-]+", text)
    assert click is not None and unsubscribe is not None, text
    await served.call("GET", click.group(), None, 302)
    await served.call("POST", unsubscribe.group(), None, 200, data={"scope": "channel"})
    async with asyncio.timeout(10):
        while not any(e.get("name") == "message.clicked" for e in (await served.json(
                "GET", f"/v1/customers/{CUSTOMER}/timeline", DE))["entries"]):
            await asyncio.sleep(0.02)
    de_profile = await served.json("GET", f"/v1/customers/{CUSTOMER}", DE)
    fr_profile = await served.json("GET", f"/v1/customers/{CUSTOMER}", FR)
    assert de_profile["consents"]["email"]["marketing"]["granted"] is False
    assert fr_profile["consents"]["email"]["marketing"]["granted"] is True
    fr_timeline = await served.json("GET", f"/v1/customers/{CUSTOMER}/timeline", FR)
    assert not [e for e in fr_timeline["entries"] if e.get("name") in ("message.clicked", "unsubscribed")]


async def test_probes_cover_every_workspace_and_the_dashboard_shows_its_own(served: Served) -> None:
    ready = await served.json("GET", "/readyz", FR)
    assert ready["checks"]["shop-fr/journeys"] == "1 loaded" and ready["checks"]["shop-de/store"] == "ok"
    await served.call("GET", "/healthz", None, 200)
    _, page = await served.call("GET", "/ui/journeys", DE, 200)
    assert "willkommen" in page and "bienvenue" not in page and 'class="workspace"' in page and DE in page
    served.deployment.runtimes[DE].broken = "the worker loop stopped: boom"
    status, text = await served.call("GET", "/readyz", None)
    assert status == 503 and json.loads(text)["checks"]["shop-de/loops"].startswith("the worker loop")


async def test_metrics_show_each_workspace_its_own_work(tmp_path: Path, redis_url: str) -> None:
    """The work gauges were one series for the process, set by each workspace's worker in turn: an autoscaler
    read whichever workspace reported last. Now every series names its workspace: shop-fr's customer waits on a
    timer, shop-de's two customers each on theirs, and /metrics says 1 and 2 (read at a start, where every
    worker reports at once, rather than waiting for the next report)."""
    settings = base_settings(tmp_path, redis_url)
    (tmp_path / "workspaces" / FR / "journeys" / "rappel.yaml").write_text(
        "id: rappel\ntrigger: {event: signed_up}\nsteps:\n  - wait: 3650d\n", encoding="utf-8")
    async with serving(settings) as served:
        before = Exposition(await (await served.client.get("/metrics")).text())
        waiting = [(FR, "c1"), (DE, "c1"), (DE, "c2")]
        for workspace, customer in waiting:
            await served.json("PUT", f"/v1/customers/{customer}", workspace,
                              json={"addresses": {"email": f"{customer}@example.com"}})
            await served.json("POST", "/v1/events", workspace, 202, json={"name": "signed_up",
                                                                          "customer_id": customer})
        async with asyncio.timeout(10):
            for workspace, customer in waiting:
                while not (await served.json("GET", f"/v1/customers/{customer}", workspace))["journeys"]:
                    await asyncio.sleep(0.02)
        await served.until_outbox(FR, 1)
        await served.until_outbox(DE, 2)
        after = Exposition(await (await served.client.get("/metrics")).text())
    for workspace, accepted, sent in ((FR, 1, ("bienvenue", "fr_welcome")), (DE, 2, ("willkommen", "de_hidden_step"))):
        ws = {"workspace": workspace}
        assert after.value("omnicanal_events_accepted_total", **ws) \
            - before.value("omnicanal_events_accepted_total", **ws) == accepted
        message = {**ws, "journey": sent[0], "step": sent[1], "channel": "email", "status": "sent"}
        assert after.value("omnicanal_messages_total", **message) \
            - before.value("omnicanal_messages_total", **message) == accepted
    async with serving(settings) as served:
        async with asyncio.timeout(5):
            while True:
                exposition = Exposition(await (await served.client.get("/metrics")).text())
                timers = {w: exposition.value("omnicanal_waiting_timers", workspace=w) for w in (FR, DE)}
                if timers == {FR: 1, DE: 2}:
                    break
                await asyncio.sleep(0.02)
        for workspace in (FR, DE):
            assert exposition.value("omnicanal_owned_partitions", workspace=workspace) == settings.partitions


async def test_each_workspace_reloads_its_own_files(served: Served, tmp_path: Path) -> None:
    journey = FILES[DE]["journeys/willkommen.yaml"].replace("id: willkommen", "id: zweite")
    (tmp_path / "workspaces" / DE / "journeys" / "zweite.yaml").write_text(journey.lstrip(), encoding="utf-8")
    async with asyncio.timeout(10):
        while "zweite" not in [j["id"] for j in (await served.json("GET", "/v1/journeys", DE))["journeys"]]:
            await asyncio.sleep(0.05)
    assert [j["id"] for j in (await served.json("GET", "/v1/journeys", FR))["journeys"]] == ["bienvenue"]


async def test_static_keys_reach_the_home_workspace_only(tmp_path: Path, redis_url: str) -> None:
    async with serving(base_settings(tmp_path, redis_url, api_keys=["static-key-for-fr"], workspace=FR)) as served:
        response = await served.client.get("/v1/journeys", headers={"Authorization": "Bearer static-key-for-fr"})
        assert [j["id"] for j in (await response.json())["journeys"]] == ["bienvenue"]
        response = await served.client.get("/v1/journeys/willkommen", headers={"X-API-Key": "static-key-for-fr"})
        assert response.status == 404


async def test_twilio_callbacks_reach_the_workspace_that_sent_or_that_the_url_names(
        tmp_path: Path, redis_url: str, twilio: TwilioStandIn) -> None:
    async with serving(base_settings(tmp_path, redis_url, channels={"sms": "twilio_sms"}, public_url=None)) as served:
        for workspace in (FR, DE):
            await served.json("PUT", "/v1/customers/k", workspace, json={"addresses": {"sms": PHONE}})
        await served.json("POST", "/v1/events", DE, 202, json={"name": "signed_up", "customer_id": "k"})
        async with asyncio.timeout(10):
            while not (sent := [e for e in (await served.json("GET", "/v1/customers/k/timeline", DE))["entries"]
                                if e["kind"] == "message" and e.get("provider_id")]):
                await asyncio.sleep(0.02)
        receipt = {"MessageSid": sent[0]["provider_id"], "MessageStatus": "delivered"}
        assert await twilio_post(served, "/webhooks/twilio/status", receipt, twilio.auth_token) == 204
        async with asyncio.timeout(10):
            while not any(e.get("name") == "message.delivered" for e in (await served.json(
                    "GET", "/v1/customers/k/timeline", DE))["entries"]):
                await asyncio.sleep(0.02)
        stop = {"From": PHONE, "To": "+1", "Body": "STOP", "MessageSid": "SM-stop"}
        assert await twilio_post(served, "/webhooks/twilio/inbound", stop, twilio.auth_token) == 404  # which one?
        assert await twilio_post(served, "/webhooks/twilio/inbound?workspace=nope", stop, twilio.auth_token) == 404
        assert await twilio_post(served, f"/webhooks/twilio/inbound?workspace={DE}", stop, twilio.auth_token) == 200
        de_profile = await served.json("GET", "/v1/customers/k", DE)
        fr_profile = await served.json("GET", "/v1/customers/k", FR)
        assert de_profile["consents"]["sms"]["marketing"]["granted"] is False
        assert "sms" not in (fr_profile.get("consents") or {})
        fr_timeline = (await served.json("GET", "/v1/customers/k/timeline", FR))["entries"]
        assert [e["kind"] for e in fr_timeline if e["kind"] != "event"] == []


def test_the_workspaces_folder_is_checked(tmp_path: Path) -> None:
    folder = write_workspaces(tmp_path)
    settings = Settings(workspaces_dir=folder)
    assert workspaces_of(settings) == [DE, FR]
    assert workspace_settings(settings, DE).journeys_dir == folder / DE / "journeys"
    with pytest.raises(ConfigError, match=r"OMNICANAL_API_KEYS.*'default'"):
        workspaces_of(Settings(workspaces_dir=folder, api_keys=["k"]))
    (folder / "Shop IT").mkdir()
    with pytest.raises(ConfigError, match="'Shop IT'"):
        workspaces_of(settings)
    with pytest.raises(ConfigError, match="cannot read"):
        workspaces_of(Settings(workspaces_dir=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no workspace"):
        workspaces_of(Settings(workspaces_dir=tmp_path / "empty"))


async def test_the_command_line_addresses_each_workspace(served: Served, tmp_path: Path, redis_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_WORKSPACES_DIR", str(tmp_path / "workspaces"))
    monkeypatch.setenv("OMNICANAL_REDIS_URL", redis_url)
    monkeypatch.setenv("OMNICANAL_WORKSPACE", DE)
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, cli, ["validate"])
    assert result.exit_code == 0 and str(Path(DE) / "journeys") in result.output, result.output
    await fill_de(served)
    result = await asyncio.to_thread(runner.invoke, cli, ["stats", "willkommen", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["started"] == 1
    monkeypatch.setenv("OMNICANAL_WORKSPACE", FR)
    result = await asyncio.to_thread(runner.invoke, cli, ["stats", "willkommen", "--json"])
    assert result.exit_code != 0 and "no journey 'willkommen'" in result.output


@pytest.mark.slow
async def test_serve_runs_every_workspace_in_one_process(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_PORT": str(port),
           "OMNICANAL_WORKSPACES_DIR": str(write_workspaces(tmp_path)), "OMNICANAL_QUIET_HOURS": "off",
           "OMNICANAL_CLOCK_SPEED": "36000", "OMNICANAL_WORKER_ID": "test-worker"}
    keys = {}
    for workspace in (FR, DE):
        made = subprocess.run([OMNICANAL, "keys", "create", "--workspace", workspace, "--scope", "events:write",
                               "--scope", "customers:read", "--scope", "customers:write"],
                              env=env, capture_output=True, text=True, check=True)
        keys[workspace] = {"Authorization": f"Bearer {made.stdout.strip()}"}
    process = subprocess.Popen([OMNICANAL, "serve"], env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    assert process.poll() is None
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with http.get(f"{base}/readyz") as response:
                            if response.status == 200:
                                checks = (await response.json())["checks"]
                                break
                    await asyncio.sleep(0.05)
            assert {"shop-fr/journeys", "shop-de/journeys"} <= set(checks)
            async with http.get(f"{base}/v1/outbox") as response:
                assert response.status == 401  # several workspaces: no way in without a key
            async with http.put(f"{base}/v1/customers/c1", headers=keys[FR],
                                json={"addresses": {"email": "c1@example.com"}}) as response:
                assert response.status == 200
            async with http.post(f"{base}/v1/events", headers=keys[FR],
                                 json={"name": "signed_up", "customer_id": "c1"}) as response:
                assert response.status == 202
            async with asyncio.timeout(10):
                while True:
                    async with http.get(f"{base}/v1/outbox", headers=keys[FR]) as response:
                        if messages := (await response.json())["messages"]:
                            break
                    await asyncio.sleep(0.05)
            assert [m["journey"] for m in messages] == ["bienvenue"]
            async with http.get(f"{base}/v1/customers/c1", headers=keys[DE]) as response:
                assert response.status == 404
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err.decode()[-2000:]
    stopped = [line for line in err.decode().splitlines() if '"event": "stopped"' in line]
    assert len(stopped) == 2, err.decode()[-2000:]


INBOX_SECRET = "i" * 32
DE_INBOX = {
    "journeys/nachricht.yaml": """
id: nachricht
trigger: {event: nachricht}
steps:
  - send: {template: nachricht_inbox, channels: [inbox], purpose: transactional}
""",
    "templates/nachricht_inbox.yaml": """
en:
  inbox:
    title: "DE-INBOX-TEXT"
    body: "DE-INBOX-TEXT"
""",
}


def cli_inbox_signature(tmp_path: Path, workspace: str, *options: str) -> str:
    """What `omnicanal inbox-signature` prints for kunde-1 in `workspace` (its backend signs the same way)."""
    env = {"OMNICANAL_WORKSPACES_DIR": str(tmp_path / "workspaces"), "OMNICANAL_WORKSPACE": workspace,
           "OMNICANAL_INBOX_SECRET": INBOX_SECRET}
    result = CliRunner().invoke(cli, ["inbox-signature", CUSTOMER, *options], env=env)
    assert result.exit_code == 0, result.output
    return result.output.strip()


async def test_an_inbox_signature_reads_the_inbox_of_its_own_workspace_only(tmp_path: Path, redis_url: str) -> None:
    """OMNICANAL_INBOX_SECRET is one setting for the process: the same id signed for shop-fr was taken as
    shop-de's (the first workspace whose secret matched), so shop-fr's app (or any brand's backend holding the
    secret) read shop-de's customer's inbox, and shop-fr's customers never reached their own. Under
    OMNICANAL_WORKSPACES_DIR each workspace now signs with its own secret, derived from OMNICANAL_INBOX_SECRET and
    its name: a signature reads its workspace's inbox, and one workspace's secret signs for no other."""
    settings = base_settings(tmp_path, redis_url, inbox_secret=INBOX_SECRET)
    for name, text in DE_INBOX.items():
        (tmp_path / "workspaces" / DE / name).write_text(text.lstrip(), encoding="utf-8")
    async with serving(settings) as served:
        await served.json("POST", "/v1/events", DE, 202, json={"name": "nachricht", "customer_id": CUSTOMER})
        async with asyncio.timeout(10):
            while '"channel": "inbox"' not in (await served.call("GET", f"/v1/customers/{CUSTOMER}/timeline",
                                                                  DE))[1]:
                await asyncio.sleep(0.02)
        fr, de = cli_inbox_signature(tmp_path, FR), cli_inbox_signature(tmp_path, DE)
        assert fr != de
        _, text = await served.call("GET", f"/v1/inbox?customer={CUSTOMER}&signature={de}", None, 200)
        assert "DE-INBOX-TEXT" in text
        _, text = await served.call("GET", f"/v1/inbox?customer={CUSTOMER}&signature={fr}", None, 200)
        assert "DE-INBOX-TEXT" not in text and json.loads(text)["messages"] == []
        # the secret shop-fr's backend is given signs for shop-fr only
        fr_secret = cli_inbox_signature(tmp_path, FR, "--secret")
        assert fr_secret != INBOX_SECRET
        forged = hmac.new(fr_secret.encode(), CUSTOMER.encode(), hashlib.sha256).hexdigest()
        assert forged == fr
        # the process-wide secret itself signs for no workspace
        shared = hmac.new(INBOX_SECRET.encode(), CUSTOMER.encode(), hashlib.sha256).hexdigest()
        await served.call("GET", f"/v1/inbox?customer={CUSTOMER}&signature={shared}", None, 401)
