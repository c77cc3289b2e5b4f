"""schemathesis against the OpenAPI document the daemon serves: every operation, with generated requests valid and
invalid, on the daemon and a real Redis, with and without API keys.

What must hold for every request: no 5xx, and the answer is one the document describes (status code, content
type, body and headers). Whatever the document gets wrong is fixed in the document (api/openapi.py), whatever the
daemon gets wrong in the daemon. Left out: schemathesis' `positive_data_acceptance`, which expects every request
the schema allows to succeed, while the daemon also checks what JSON Schema cannot say (that a phone number is
one, a time zone exists, a looked-up customer is known).

Then the engine must have taken every accepted event without breaking a loop, and the customers made before the
run must be as they were unless a request named them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from conftest import Api, StartApi
from fuzz_support import ASKED, examples

ST = str(Path(sys.executable).with_name("st"))
KEY = "fuzz-key"
CUSTOMERS = ("fuzz-a", "fuzz-b")
JOURNEYS = ("abandoned_cart", "welcome_series", "browse_digest", "click_and_collect")
EVENTS = ("cart_abandoned", "order_placed", "product_viewed", "signed_up", "order_picked_up", "identify")
BYSTANDER = "fuzz-bystander"
"""A customer no generated request names: nothing the run does may change it."""


def profile_of(customer: str) -> dict[str, object]:
    """A full profile, with addresses of its own (an address belongs to its first owner)."""
    number = 10 + (*CUSTOMERS, BYSTANDER).index(customer)
    return {"attributes": {"first_name": "Léa", "tier": "gold"}, "locale": "fr", "timezone": "Europe/Paris",
            "addresses": {"sms": f"+336123456{number}", "email": f"{customer}@example.com",
                          "push": [f"device-{customer}"]},
            "consents": {"sms": True, "email": {"marketing": False}}}


def config(path: Path) -> Path:
    """The run's settings: identifiers that exist, so that requests reach more than the 404 (a generated journey
    id is never a loaded one), and event names the shipped journeys listen to, so that events run them."""
    toml = f"""
[dictionaries.journeys]
values = {json.dumps(JOURNEYS)}
[dictionaries.customers]
values = {json.dumps(CUSTOMERS)}
[dictionaries.events]
values = {json.dumps(EVENTS)}

[parameters]
"path.journey_id" = {{ dictionary = "journeys", probability = 0.7 }}
"path.customer_id" = {{ dictionary = "customers", probability = 0.5 }}
"body.customer_id" = {{ dictionary = "customers", probability = 0.3 }}
"body.name" = {{ dictionary = "events", probability = 0.5 }}
"""
    path.write_text(toml, encoding="utf-8")
    return path


OPERATIONS = frozenset({"get", "put", "post", "delete", "patch"})


async def schemathesis(api: Api, config_file: Path, *headers: str) -> tuple[int, str]:
    """`st run` against the document the daemon serves, while the test's event loop goes on serving it."""
    url = str(api.client.make_url("/openapi.json"))
    seed = [] if ASKED else ["--seed", "20261204"]  # CI: the same requests every run
    # 10 random requests per operation in CI, on top of the coverage phase's boundary cases (about 800 requests
    # in all); OMNICANAL_FUZZ_EXAMPLES searches longer
    process = await asyncio.create_subprocess_exec(
        ST, "--no-color", "--config-file", str(config_file), "run", url, "--workers", "1",
        "--max-examples", str(examples(10)), *seed, "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--suppress-health-check", "all", "--request-timeout", "10", *(f"-H{header}" for header in headers),
        cwd=config_file.parent,  # its caches and example database stay out of the checkout
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(0 if ASKED else 120)
@pytest.mark.parametrize("keys", [False, True], ids=["open", "with-api-keys"])
async def test_every_operation_answers_as_documented_and_never_5xx(start_api: StartApi, tmp_path: Path,
                                                                  keys: bool) -> None:
    api = await start_api(**({"api_keys": [KEY]} if keys else {}))
    auth = {"Authorization": f"Bearer {KEY}"} if keys else {}
    for customer in (*CUSTOMERS, BYSTANDER):
        await api.request("PUT", f"/v1/customers/{customer}", 200, json=profile_of(customer), headers=auth)
    bystander = await api.request("GET", f"/v1/customers/{BYSTANDER}", 200, headers=auth)

    code, output = await schemathesis(api, config(tmp_path / "schemathesis.toml"),
                                      *([f"Authorization: Bearer {KEY}"] if keys else []))
    assert code == 0, output
    served = await api.request("GET", "/openapi.json", 200)
    operations = sum(method in OPERATIONS for item in served["paths"].values() for method in item)
    assert f"Operations:       {operations} selected / {operations} total" in output, output

    await api.settled()  # every event it sent was taken by the worker...
    ready = await api.request("GET", "/readyz", 200)  # ...and no loop broke on one
    assert ready["status"] == "ready" and "loops" not in ready["checks"], ready
    # No request named the bystander, whatever it held: its profile and timeline are as they were.
    assert await api.request("GET", f"/v1/customers/{BYSTANDER}", 200, headers=auth) == bystander
    assert await api.request("GET", f"/v1/customers/{BYSTANDER}/timeline", 200, headers=auth) == {
        "customer_id": BYSTANDER, "entries": []}


@pytest.mark.slow
async def test_with_api_keys_every_operation_without_one_is_401(start_api: StartApi, tmp_path: Path) -> None:
    """The same run without the key: every /v1 answer is a documented 401, none a 2xx or a 5xx."""
    api = await start_api(api_keys=[KEY])
    code, output = await schemathesis(api, config(tmp_path / "schemathesis.toml"))
    assert code == 0, output
    body = await api.request("GET", "/v1/journeys", 401)
    assert body["error"] == "unauthorized"
