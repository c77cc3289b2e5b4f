"""`omnicanal keys` and `omnicanal audit` as an operator runs them, against the daemon's Redis, with the API
answering the keys they make."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import StartApi, settings_for
from omnicanal.access import CACHE_SECONDS
from omnicanal.admin import control_journey, read_audit
from omnicanal.store.schema import WorkItem
from test_access import bearer, until_status
from test_cli import OMNICANAL

pytestmark = pytest.mark.slow  # each command is its own process


@dataclass
class Result:
    code: int
    out: str
    err: str


OPERATOR = "ops-lea"
"""The operating system user the commands run as (LOGNAME, the first place getpass looks): the audit log names it."""


async def omnicanal(*args: str, **env: str) -> Result:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNICANAL_")}
    process = await asyncio.create_subprocess_exec(OMNICANAL, *args, env={**clean, "LOGNAME": OPERATOR, **env},
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def test_keys_are_created_shown_once_listed_and_revoked(start_api: StartApi, redis_url: str) -> None:
    api = await start_api()
    env = {"OMNICANAL_REDIS_URL": redis_url}
    created = await omnicanal("keys", "create", "--scope", "events:write", "--scope", "customers:read",
                              "--name", "shop-backend", **env)
    assert created.code == 0, created.err
    secret = created.out.strip()
    assert secret.startswith("ock.default.") and len(created.out.splitlines()) == 1  # the secret alone
    key_id = secret.split(".")[2]
    assert f"created key {key_id}" in created.err and "not shown again" in created.err

    await until_status(api, 401, "/v1/customers/c1")  # the first key closes the open API
    await api.request("POST", "/v1/events", 202, headers=bearer(secret),
                      json={"name": "page_viewed", "customer_id": "c1"})
    await api.request("GET", "/v1/journeys", 403, headers=bearer(secret))
    await asyncio.sleep(CACHE_SECONDS)
    await api.request("GET", "/v1/customers/c1", 200, headers=bearer(secret))  # the next read records the use

    listed = await omnicanal("keys", "list", **env)
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if line.startswith(key_id))
    assert "shop-backend" in row and "customers:read,events:write" in row and "never" not in row
    assert secret.split(".")[3] not in listed.out

    revoked = await omnicanal("keys", "revoke", key_id, **env)
    assert (revoked.code, revoked.out.strip()) == (0, f"revoked key {key_id}")
    assert await until_status(api, 401, "/v1/customers/c1", bearer(secret)) < CACHE_SECONDS
    active, every, again, unknown = await asyncio.gather(  # commands that change nothing more: at once
        omnicanal("keys", "list", **env), omnicanal("keys", "list", "--all", **env),
        omnicanal("keys", "revoke", key_id, **env), omnicanal("keys", "revoke", "nope", **env))
    assert key_id not in active.out
    assert "(revoked " in every.out
    assert (again.code, again.out.strip()) == (0, f"key {key_id} was already revoked")
    assert unknown.code == 1 and key_id in unknown.err  # names the keys there are

    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    audit, later = await asyncio.gather(omnicanal("audit", "--json", **env),
                                        omnicanal("audit", "--since", future, **env))
    entries = [json.loads(line) for line in audit.out.splitlines()]
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        (f"cli:{OPERATOR}", "keys.revoke", key_id), (f"cli:{OPERATOR}", "keys.create", key_id)]
    assert entries[1]["details"] == {"name": "shop-backend", "scopes": ["customers:read", "events:write"],
                                     "signing": False}
    assert later.out == ""


async def test_a_signing_key_shows_its_signing_secret_once_and_send_event_signs_with_it(start_api: StartApi,
                                                                                          redis_url: str) -> None:
    api = await start_api()
    env = {"OMNICANAL_REDIS_URL": redis_url}
    created = await omnicanal("keys", "create", "--scope", "events:write", "--name", "shop-backend", "--signing",
                              **env)
    assert created.code == 0, created.err
    secret, signing_secret = created.out.splitlines()
    assert secret.startswith("ock.default.") and signing_secret.startswith("ocs.")
    assert "its requests signed" in created.err and "they are not shown again" in created.err
    key_id = secret.split(".")[2]
    listed = (await omnicanal("keys", "list", **env)).out
    assert "events:write  (signed requests)" in next(line for line in listed.splitlines() if line.startswith(key_id))
    assert signing_secret.split(".")[1] not in listed

    base = str(api.client.make_url("")).rstrip("/")
    signed = await omnicanal("send-event", "page_viewed", "c1", "-p", '{"page": "/shoes"}', "--url", base,
                             OMNICANAL_API_KEY=secret, OMNICANAL_SIGNING_SECRET=signing_secret)
    assert signed.code == 0 and json.loads(signed.out)["status"] == "accepted", (signed.out, signed.err)
    unsigned = await omnicanal("send-event", "page_viewed", "c1", "--url", base, OMNICANAL_API_KEY=secret)
    assert unsigned.code == 1 and json.loads(unsigned.out)["reason"] == "unsigned"
    too_wide = await omnicanal("keys", "create", "--scope", "events:write", "--scope", "customers:read", "--signing",
                               **env)
    assert too_wide.code == 1 and "events:write only" in too_wide.err
    [entry] = [json.loads(line) for line in (await omnicanal("audit", "--json", **env)).out.splitlines()]
    assert (entry["action"], entry["details"]["signing"]) == ("keys.create", True)


async def test_keys_belong_to_a_workspace_and_bad_input_is_one_line(redis_url: str) -> None:
    env = {"OMNICANAL_REDIS_URL": redis_url}
    shop = await omnicanal("keys", "create", "--scope", "ui:read", "--workspace", "shop-fr", **env)
    assert shop.code == 0 and shop.out.startswith("ock.shop-fr.")
    in_shop, in_default, bad_scope, bad_workspace, embedded = await asyncio.gather(  # none writes: at once
        omnicanal("keys", "list", "--workspace", "shop-fr", **env), omnicanal("keys", "list", **env),
        omnicanal("keys", "create", "--scope", "everything", **env),
        omnicanal("keys", "create", "--scope", "ui:read", "--workspace", "Shop FR", **env),
        omnicanal("keys", "create", "--scope", "ui:read"))
    assert "shop-fr" in in_shop.out
    assert shop.out.split(".")[2] not in in_default.out
    assert bad_scope.code == 2 and "events:write" in bad_scope.err
    assert bad_workspace.code == 2 and "OMNICANAL_WORKSPACE" in bad_workspace.err
    assert embedded.code == 1 and "OMNICANAL_REDIS_URL" in embedded.err


async def test_operator_commands_are_audited(start_api: StartApi, redis_url: str) -> None:
    api = await start_api()
    env = {"OMNICANAL_REDIS_URL": redis_url}
    event = {"id": "e1", "name": "cart_abandoned", "customer_id": "c42", "properties": {}, "timestamp": 0}
    await api.runtime.queue.dead_letter(WorkItem(0, "0-1", "event", "c42", event=event), "boom")
    [(parked, _, _)] = await api.runtime.queue.dead_letters()
    assert (await omnicanal("journeys", "pause", "abandoned_cart", **env)).code == 0
    assert (await omnicanal("dlq", "drop", **env)).code == 0
    lines = (await omnicanal("audit", "--limit", "5", **env)).out.splitlines()
    assert len(lines) == 2
    assert f"  cli:{OPERATOR}  dlq.drop  dlq  " in lines[0] and parked in lines[0]
    assert f"  cli:{OPERATOR}  journey.pause  abandoned_cart  " in lines[1]
    listed = await api.request("GET", "/v1/audit", 200)  # the API reads the same log
    assert [(e["actor"], e["action"]) for e in listed["entries"]] == [
        (f"cli:{OPERATOR}", "dlq.drop"), (f"cli:{OPERATOR}", "journey.pause")]


NAME_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")
"""Where getpass.getuser() looks for the user's name, before the passwd entry of their uid."""


def no_passwd_entry(uid: int) -> pwd.struct_passwd:
    raise KeyError(f"getpwuid(): uid not found: {uid}")  # what the system answers for a uid it cannot name


async def test_an_operator_the_system_cannot_name_is_audited_by_uid(redis_url: str, project: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's uid may have no passwd entry and no LOGNAME: the command still runs, its uid named. (Run in
    this process: the test cannot create a uid without a name, nor run a command as one that reaches the venv.)"""
    for variable in NAME_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_passwd_entry)
    settings = settings_for(project, redis_url=redis_url)
    await control_journey(settings, "pause", "abandoned_cart")
    [entry] = await read_audit(settings, None, 10)
    assert (entry["actor"], entry["action"]) == (f"cli:uid-{os.getuid()}", "journey.pause")
