"""The right of erasure and the right of access, through the HTTP API on real Redis with the engine running: a
customer who went through the reference journey (and merged an anonymous visit, got a coupon) is exported whole,
then erased, and no key name, value or member of the database holds their id, e-mail, phone or push token any
more — while another customer is untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as redis

from conftest import Api, StartApi, has_message, journey_ended, write_journey
from omnicanal.store.keys import Keyspace
from test_reference_journey import CART, in_store_order

LEA = {
    "attributes": {"first_name": "Léa", "tier": "gold"},
    "addresses": {"sms": "+33612345678", "whatsapp": "+33612345678", "email": "lea.dupont@example.com",
                  "push": ["device-token-lea"]},
    "locale": "fr", "timezone": "Europe/Paris", "channel_preference": ["push", "whatsapp"],
}
TOM = {"attributes": {"first_name": "Tom"}, "locale": "fr",
       "addresses": {"sms": "+33698765432", "email": "tom.martin@example.com", "push": ["device-token-tom"]}}
LEAS = ("lea.dupont", "visit-lea-77", "lea.dupont@example.com", "+33612345678", "612345678", "device-token-lea")
"""What must not be left anywhere of Léa: her id, her anonymous visit's id, her addresses."""
COUPON_TEMPLATE = """
en:
  email:
    subject: "Votre code"
    text: "Utilisez {{ coupon.code }}"
"""
COUPON_JOURNEY = """
id: winback
trigger: {event: lapsed}
steps:
  - send: {template: winback_code, channels: [email], coupon: {prefix: BACK, length: 8, valid_for: 2d}}
  - wait: 30d
"""


async def dump(client: redis.Redis | redis.RedisCluster) -> dict[str, str]:
    """Every key of the database (of every node of a Cluster) and its whole content as text: names, values,
    members, stream entries."""
    contents: dict[str, str] = {}
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        value: Any = {
            "string": client.get, "hash": client.hgetall, "set": client.smembers,
            "list": lambda k: client.lrange(k, 0, -1), "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: client.xrange(k),
        }[kind](key)
        contents[key] = repr(await value)
    return contents


AUDIT_KEY = ":audit"
"""The audit log (store/audit.py): the one place an erased customer's id stays, in the record of the erasure (and of
consents written through the API)."""


def holding(contents: dict[str, str], secrets: tuple[str, ...]) -> dict[str, str]:
    return {key: value[:300] for key, value in contents.items()
            if not key.endswith(AUDIT_KEY) and any(s in key or s in value for s in secrets)}


def erasure_record(contents: dict[str, str]) -> str:
    """The audit log's text; it names the erased customer's id and nothing else of theirs."""
    audit = next(value for key, value in contents.items() if key.endswith(AUDIT_KEY))
    assert "customer.erase" in audit and not any(s in audit for s in LEAS[2:]), audit
    return audit


def with_coupons(project: Path) -> None:
    """A journey that sends a coupon, beside the reference one."""
    (project / "templates" / "winback_code.yaml").write_text(COUPON_TEMPLATE, encoding="utf-8")
    write_journey(project, "winback", COUPON_JOURNEY)


async def lea_goes_through_everything(api: Api) -> str:
    """Léa browses anonymously, identifies, abandons her cart, gets the push, buys in store, is thanked on
    WhatsApp, and is sent a coupon; Tom abandons a cart too. Returns Léa's coupon code."""
    await api.event("page_viewed", "visit-lea-77", properties={"page": "/sneakers"})
    await api.settled()
    await api.put_customer("lea.dupont", LEA)
    await api.put_customer("tom.martin", TOM)
    await api.event("identify", "lea.dupont", properties={"anonymous_id": "visit-lea-77"})
    for customer_id in ("lea.dupont", "tom.martin"):
        await api.event("cart_abandoned", customer_id, idempotency_key="cart-981", properties=CART)
    await api.wait_until("lea.dupont", has_message("cart_discount"))
    await api.event("order_placed", "lea.dupont", properties=in_store_order())
    await api.wait_until("lea.dupont", journey_ended("abandoned_cart"))
    await api.event("lapsed", "lea.dupont")
    entries = await api.wait_until("lea.dupont", has_message("winback_code"))
    await api.wait_until("tom.martin", has_message("cart_discount"))
    await api.settled()
    return str(next(e["coupon"] for e in entries if e.get("template") == "winback_code"))


async def test_export_gives_everything_held_then_erasure_leaves_nothing(
        project: Path, start_api: StartApi, redis_url: str) -> None:
    with_coupons(project)
    api = await start_api()
    code = await lea_goes_through_everything(api)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert holding(await dump(client), LEAS)  # she is in the store, under many keys

    export = await api.request("GET", "/v1/customers/email:lea.dupont@example.com/export", 200)
    assert export["customer_id"] == "lea.dupont"
    assert export["attributes"] == {"first_name": "Léa", "tier": "gold", "last_cart_total": 89.0}
    assert export["profile"]["addresses"]["email"] == "lea.dupont@example.com"
    assert export["profile"]["locale"] == "fr" and export["profile"]["merged_from"] == ["visit-lea-77"]
    assert {(i["kind"], i["value"]) for i in export["identities"]} == {
        ("phone", "+33612345678"), ("email", "lea.dupont@example.com"), ("push", "device-token-lea"),
        ("anon", "visit-lea-77")}
    assert [j["journey"] for j in export["journeys"]] == ["winback"]
    kinds = [entry["kind"] for entry in export["timeline"]]
    assert {"event", "message", "journey", "conversion", "identity"} <= set(kinds)
    assert any(e.get("name") == "page_viewed" for e in export["timeline"])  # the anonymous visit, merged
    sent = {(m["channel"], m["status"]) for m in export["messages"].values()}
    assert {("push", "sent"), ("whatsapp", "sent"), ("email", "sent")} <= sent
    assert [(r["channel"], r["template"]) for r in export["outbox"]] == [
        ("push", "cart_discount"), ("whatsapp", "order_thanks"), ("email", "winback_code")]
    assert [(c["code"], c["customer"]) for c in export["coupons"]] == [(code, "lea.dupont")]
    assert export["profile"]["consents"] == {} and "applied_entry" not in export["profile"]

    erased = await api.request("DELETE", "/v1/customers/lea.dupont", 200)
    assert erased["customer_id"] == "lea.dupont" and erased["status"] == "erased"
    summary = erased["erased"]
    assert summary["identities"] == 4 and summary["merged_ids"] == 1 and summary["coupons"] == 1
    assert summary["outbox_records"] == 3 and summary["journey_instances"] == 1 and summary["timers"] >= 1
    assert summary["keys"] >= 5

    after = await dump(client)
    await client.aclose()
    assert holding(after, LEAS) == {}
    assert "lea.dupont" in erasure_record(after)
    assert holding(after, ("tom.martin", "tom.martin@example.com", "+33698765432", "device-token-tom"))
    for path in ("/v1/customers/lea.dupont", "/v1/customers/lea.dupont/export", "/v1/customers/visit-lea-77",
                 "/v1/customers/email:lea.dupont@example.com"):
        assert (await api.client.get(path)).status == 404, path
    assert (await api.client.delete("/v1/customers/lea.dupont")).status == 404
    tom = await api.request("GET", "/v1/customers/email:tom.martin@example.com", 200)
    assert [j["journey"] for j in tom["journeys"]] == ["abandoned_cart"]
    outbox = await api.request("GET", "/v1/outbox", 200)
    assert {"erased": True} in outbox["messages"] and len(outbox["messages"]) == 4  # positions kept for pagers
    keys = Keyspace("default", 4)
    assert set(await api.runtime.redis.smembers(keys.customers)) == {"tom.martin"}


async def test_an_event_after_the_erasure_starts_a_new_customer(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("lea.dupont", LEA)
    await api.event("cart_abandoned", "lea.dupont", properties=CART)
    await api.settled()
    await api.request("DELETE", "/v1/customers/lea.dupont", 200)
    await api.event("page_viewed", "lea.dupont", properties={"page": "/"})
    entries = await api.wait_until("lea.dupont", lambda es: bool(es))
    assert [(e["kind"], e.get("name")) for e in entries] == [("event", "page_viewed")]
    customer = await api.request("GET", "/v1/customers/lea.dupont", 200)
    assert customer["addresses"] == {} and customer["attributes"] == {} and customer["journeys"] == []


async def test_erasing_nobody_is_404_and_a_malformed_id_422(start_api: StartApi) -> None:
    api = await start_api()
    assert (await api.request("DELETE", "/v1/customers/nobody"))["error"]
    assert (await api.client.delete("/v1/customers/nobody")).status == 404
    assert (await api.client.get("/v1/customers/nobody/export")).status == 404
    assert (await api.client.delete("/v1/customers/-starts-with-a-dash")).status == 422


async def test_consents_written_through_the_api_leave_their_audit_records_and_nothing_else(
        start_api: StartApi, redis_url: str) -> None:
    """The audit log is append-only: the `customer.consent` records of consents written through the API stay after
    the erasure beside its own record, naming the customer's id and the decisions (proof of what was consented to,
    and when) — never an address. The README said one record remained; it says which ones now."""
    api = await start_api()
    await api.put_customer("lea.dupont", {**LEA, "consents": {"sms": True, "email": {"marketing": False}}})
    await api.request("DELETE", "/v1/customers/lea.dupont", 200)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    after = await dump(client)
    await client.aclose()
    assert holding(after, LEAS) == {}
    audit = erasure_record(after)
    entries = await api.request("GET", "/v1/audit", 200)
    about_lea = [(e["action"], e["target"]) for e in entries["entries"] if e["target"] == "lea.dupont"]
    assert about_lea == [("customer.erase", "lea.dupont"), ("customer.consent", "lea.dupont")], audit
