"""Signed requests through HTTP with real Redis: a key made with `--signing` is taken only with a signature of the
body and a timestamp within the window, each signature once, on every API process; the handler still gets the body;
and README's curl and Python examples sign the way the API checks."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import time
from typing import Any

import pytest

from conftest import ROOT, Api, StartApi
from omnicanal.admin import create_key
from omnicanal.codec import encode
from omnicanal.errors import InputError
from omnicanal.scopes import Scope
from omnicanal.signing import WINDOW, signature, signed_headers
from test_access import bearer, new_key

EVENT = {"name": "page_viewed", "customer_id": "c1", "properties": {"page": "/shoes", "note": "café"}}


async def signing_key(api: Api) -> tuple[str, str]:
    """(key, signing secret) of a key made as `omnicanal keys create --scope events:write --signing` does."""
    key, secret = await create_key(api.runtime.settings, "source", [Scope.EVENTS_WRITE.value], signing=True)
    assert key.signing_secret is not None
    return secret, key.signing_secret


async def send(api: Api, key: str, body: bytes, headers: dict[str, str], method: str = "POST",
               path: str = "/v1/events") -> tuple[int, Any]:
    response = await api.client.request(method, path, data=body, headers={
        **bearer(key), "Content-Type": "application/json", **headers})
    return response.status, await response.json()


async def refused(api: Api, key: str, body: bytes, headers: dict[str, str], reason: str) -> str:
    """The message of the 401 the request gets, checked to give `reason`."""
    status, answer = await send(api, key, body, headers)
    assert (status, answer["error"], answer.get("reason")) == (401, "unauthorized", reason), answer
    return str(answer["message"])


async def test_a_signed_event_is_accepted_and_its_handler_gets_the_body(start_api: StartApi) -> None:
    api = await start_api(api_keys=["reader-static-key"])
    key, secret = await signing_key(api)
    body = encode(EVENT)
    status, answer = await send(api, key, body, signed_headers(secret, body, time.time()))
    assert (status, answer["status"]) == (202, "accepted"), answer
    api.client.session.headers.update(bearer("reader-static-key"))
    first, *_ = await api.wait_until("c1", bool)  # the bytes checked are the bytes applied:
    assert (first["name"], first["properties"]) == ("page_viewed", EVENT["properties"])


async def test_stale_future_tampered_wrong_secret_and_unsigned_requests_are_refused(start_api: StartApi) -> None:
    api = await start_api()
    key, secret = await signing_key(api)
    body, now = encode(EVENT), time.time()
    assert "300 s" in await refused(api, key, body, signed_headers(secret, body, now - WINDOW - 2), "stale")
    assert "NTP" in await refused(api, key, body, signed_headers(secret, body, now + WINDOW + 2), "future")
    other = encode({**EVENT, "customer_id": "c2"})
    await refused(api, key, other, signed_headers(secret, body, now), "mismatch")  # the body was changed on the way
    await refused(api, key, body, signed_headers(secret + "x", body, now), "mismatch")
    unsigned = await refused(api, key, body, {}, "unsigned")
    assert "X-Omnicanal-Signature" in unsigned and "X-Omnicanal-Timestamp" in unsigned
    good = signed_headers(secret, body, now)
    for broken in ({**good, "X-Omnicanal-Timestamp": "1.5e9"}, {**good, "X-Omnicanal-Signature": "v2=" + "0" * 64},
                   {"X-Omnicanal-Timestamp": good["X-Omnicanal-Timestamp"]}, {**good, "X-Omnicanal-Timestamp": "٣"}):
        await refused(api, key, body, broken, "malformed")
    response = await api.client.post("/v1/events", data=body, headers={  # bytes that are not text: a 401, never a 500
        **bearer(key), **good, "X-Omnicanal-Signature": "v1=é".encode().decode("latin-1")})
    assert response.status == 401
    # Inside the window, either side, the same request is taken: an upper-case signature too.
    early = signed_headers(secret, body, now - WINDOW + 5)
    assert (await send(api, key, body, early))[0] == 202
    late = signed_headers(secret, body, now + WINDOW - 5)
    assert (await send(api, key, body, {**late, "X-Omnicanal-Signature": late["X-Omnicanal-Signature"].upper()
                                        .replace("V1=", "v1=")}))[0] == 202


async def test_a_signature_is_taken_once_on_every_api_process(start_api: StartApi) -> None:
    first, second = await start_api(), await start_api()
    key, secret = await signing_key(first)
    body = encode(EVENT)
    headers = signed_headers(secret, body, time.time())
    assert (await send(first, key, body, headers))[0] == 202
    assert "already used" in await refused(second, key, body, headers, "replayed")
    await refused(first, key, body, headers, "replayed")
    [remembered] = await first.runtime.redis.keys("oc:default:signed:*")
    assert 0 < await first.runtime.redis.ttl(remembered) <= WINDOW + 1  # as long as the timestamp is in the window
    later = encode({**EVENT, "idempotency_key": "view-1"})  # a new request: its own signature
    assert (await send(second, key, later, signed_headers(secret, later, time.time())))[0] == 202


async def test_keys_without_signing_ignore_the_headers_and_signing_keys_only_send_events(
        start_api: StartApi) -> None:
    api = await start_api()
    _, plain = await new_key(api, Scope.EVENTS_WRITE)
    body = encode(EVENT)
    assert (await send(api, plain, body, {"X-Omnicanal-Signature": "v1=nonsense"}))[0] == 202
    for scopes in ([Scope.UI_READ.value], [Scope.EVENTS_WRITE.value, Scope.CUSTOMERS_READ.value]):
        with pytest.raises(InputError, match="events:write only"):
            await create_key(api.runtime.settings, "source", scopes, signing=True)


def readme_example(language: str) -> str:
    """The README's example of a signed request in `language` (a fenced block that sends X-Omnicanal-Signature)."""
    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    [example] = [block for block in blocks if "X-Omnicanal-Signature" in block]
    return example


async def run_example(api: Api, command: list[str], key: str, secret: str) -> str:
    env = {**os.environ, "OMNICANAL_URL": str(api.client.make_url("")).rstrip("/"), "OMNICANAL_API_KEY": key,
           "OMNICANAL_SIGNING_SECRET": secret}
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_the_readme_examples_sign_as_the_api_checks(start_api: StartApi) -> None:
    api = await start_api()
    key, secret = await signing_key(api)
    printed = await run_example(api, [sys.executable, "-c", readme_example("python")], key, secret)
    assert printed.startswith("202 ") and '"accepted"' in printed, printed
    if not (shutil.which("curl") and shutil.which("openssl")):
        pytest.skip("curl or openssl is not installed")
    printed = await run_example(api, ["bash", "-c", readme_example("sh")], key, secret)
    assert '"accepted"' in printed, printed


def test_the_signature_is_the_hmac_of_the_timestamp_and_the_body() -> None:
    """The documented construction, against a value computed by hand with `openssl dgst -sha256 -hmac`."""
    expected = "250f90c025be09fcdede94e715171f68321766469420512e46de8241fb1363da"
    assert signature("ocs.test", 1764840000, b'{"name":"x"}') == expected
