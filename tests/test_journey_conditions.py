"""A journey's trigger condition with data that is not there, through the API and the engine on real Redis:
`or` holds on its true operand whichever side it is written on, and a missing value records no error."""

from __future__ import annotations

from pathlib import Path

from conftest import StartApi, write_journey

ORDERS = {"vip_first": "customer.vip or event.properties.total >= 100",
          "total_first": "event.properties.total >= 100 or customer.vip"}


def started(entries: list[dict[str, object]]) -> set[object]:
    return {e["journey"] for e in entries if e["kind"] == "journey" and e["status"] == "started"}


async def test_either_operand_of_or_starts_the_journey_in_either_order(project: Path, start_api: StartApi) -> None:
    for journey, where in ORDERS.items():
        write_journey(project, journey, f"""
id: {journey}
trigger: {{event: order_placed, where: "{where}"}}
re_entry: always
steps:
  - exit: {{reason: done}}
""")
    api = await start_api()
    await api.put_customer("plain", {"attributes": {"first_name": "Lea"}})  # no `vip`
    await api.put_customer("vip", {"attributes": {"vip": True}})
    await api.event("order_placed", "plain", properties={"total": 150, "channel": "web"})
    await api.event("order_placed", "plain", properties={"total": 50, "channel": "web"}, idempotency_key="small")
    await api.event("order_placed", "vip", properties={"channel": "web"})  # no `total`
    await api.settled()

    plain, vip = await api.timeline("plain"), await api.timeline("vip")
    assert started(plain) == started(vip) == set(ORDERS)
    assert sum(e["kind"] == "journey" and e["status"] == "started" for e in plain) == 2  # not for the 50
    assert [e for e in plain + vip if e["kind"] == "error"] == []
