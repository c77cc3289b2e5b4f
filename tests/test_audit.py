"""The audit log through HTTP: admin actions made with API keys are recorded with the key's id, what and on what,
and read newest first, a page at a time, by a key with journeys:admin."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import StartApi
from omnicanal.scopes import Scope
from omnicanal.store import audit
from omnicanal.store.audit import AuditLog
from omnicanal.timestamps import iso
from test_access import bearer, new_key, until_known


async def test_admin_actions_are_recorded_with_the_key_that_made_them(start_api: StartApi) -> None:
    api = await start_api(api_keys=["s3cret"])
    admin_id, admin = await new_key(api, Scope.JOURNEYS_ADMIN)
    writer_id, writer = await new_key(api, Scope.CUSTOMERS_WRITE)
    await until_known(api, admin, writer)
    await api.request("POST", "/v1/journeys/abandoned_cart/pause", 202, headers=bearer(admin))
    await api.request("POST", "/v1/journeys/abandoned_cart/resume", 202, headers=bearer("s3cret"))
    await api.request("PUT", "/v1/customers/c42", 200, headers=bearer(writer),
                      json={"consents": {"sms": False, "email": {"marketing": True}}, "locale": "fr"})
    await api.request("PUT", "/v1/customers/c42", 200, headers=bearer(writer), json={"locale": "en"})

    body = await api.request("GET", "/v1/audit", 200, headers=bearer(admin))
    entries = [(e["actor"], e["action"], e["target"], e["details"]) for e in body["entries"]]
    assert entries[:3] == [
        (writer_id, "customer.consent", "c42", {"consents": {"sms": {"marketing": False, "transactional": False},
                                                             "email": {"marketing": True}}}),
        ("static", "journey.resume", "abandoned_cart", {"customers": 0}),
        (admin_id, "journey.pause", "abandoned_cart", {"customers": 0}),
    ]  # newest first; a profile update without consents is not an admin action
    assert [e["action"] for e in body["entries"][3:]] == ["keys.create", "keys.create"]
    assert body["entries"][0]["at"].endswith("Z") and body["next"] is None
    denied = await api.request("GET", "/v1/audit", 403, headers=bearer(writer))
    assert denied["scope"] == "journeys:admin"


async def test_the_log_is_read_a_page_at_a_time_and_from_a_time(start_api: StartApi) -> None:
    api = await start_api()
    log = AuditLog(api.runtime.redis, api.runtime.keys)
    for n in range(5):
        await log.record("cli", "journey.pause", f"j{n}")
    middle = time.time()
    await asyncio.sleep(0.02)
    await log.record("cli", "journey.stop", "j5")
    first = await api.request("GET", "/v1/audit?limit=4", 200)
    assert [e["target"] for e in first["entries"]] == ["j5", "j4", "j3", "j2"]
    rest = await api.request("GET", f"/v1/audit?limit=4&before={first['next']}", 200)
    assert [e["target"] for e in rest["entries"]] == ["j1", "j0"] and rest["next"] is None
    since = await api.request("GET", "/v1/audit", 200, params={"since": iso(middle + 0.005)})
    assert [e["target"] for e in since["entries"]] == ["j5"]
    bad = await api.request("GET", "/v1/audit?before=yesterday", 422)
    assert bad["errors"][0]["field"] == "before"
    await api.request("GET", "/v1/audit?limit=0", 422)


async def test_the_log_keeps_the_newest_entries(start_api: StartApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "AUDIT_KEPT", 100)  # the real bound, 100,000, works the same
    api = await start_api()
    log = audit.AuditLog(api.runtime.redis, api.runtime.keys)
    for n in range(500):
        await log.record("cli", "journey.pause", f"j{n}")
    assert 100 <= await api.runtime.redis.xlen(api.runtime.keys.audit) < 300  # trimmed by whole nodes (~)
    newest = await api.request("GET", "/v1/audit?limit=1", 200)
    assert newest["entries"][0]["target"] == "j499"
