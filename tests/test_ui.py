"""The dashboard over HTTP, on real Redis: who may see it, what each page shows, and that customer data is
escaped and addresses masked. The same pages in a real browser: tests/test_ui_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import Api, StartApi, has_message, journey_ended, write_journey
from omnicanal.store.work import WorkItem
from omnicanal.ui.masking import mask_address
from test_reference_journey import CART, LEA, in_store_order

KEY = "ui-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HOSTILE = "<script>alert(1)</script>"


async def page(api: Api, path: str, status: int = 200, **kwargs: Any) -> str:
    response = await api.client.get(path, allow_redirects=False, **kwargs)
    text = await response.text()
    assert response.status == status, (response.status, text[:2000])
    return text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def counts_in(html: str) -> dict[str, str]:
    """Every live number of a page: data-count name -> the number shown."""
    return dict(re.findall(r'data-count="([^"]+)">([^<]*)<', html))


async def play_reference_scenario(api: Api, headers: dict[str, str] | None = None) -> None:
    """Léa abandons her cart, gets the push, buys in the store and gets the WhatsApp thank-you."""
    await api.request("PUT", "/v1/customers/c42", 200, json=LEA, headers=headers)
    await api.request("POST", "/v1/events", 202, headers=headers, json={
        "name": "cart_abandoned", "customer_id": "c42", "idempotency_key": "cart-981", "properties": CART})
    await api.wait_until("c42", has_message("cart_discount"))
    await api.request("POST", "/v1/events", 202, headers=headers, json={
        "name": "order_placed", "customer_id": "c42", "properties": in_store_order()})
    await api.wait_until("c42", journey_ended("abandoned_cart"))


# -- who may see it ---------------------------------------------------------------------------------------------

async def test_without_a_key_pages_go_to_the_login_and_json_is_401(start_api: StartApi) -> None:
    api = await start_api(api_keys=[KEY])
    response = await api.client.get("/ui/journeys/abandoned_cart?from=x", allow_redirects=False)
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/ui/login" and parse_qs(location.query) == {"next": ["/ui/journeys/abandoned_cart?from=x"]}
    for path in ("/ui", "/ui/customers/c42", "/ui/operations", "/ui/preview"):
        assert (await api.client.get(path, allow_redirects=False)).status == 303
    body = await api.request("GET", "/ui/journeys/abandoned_cart/counts.json", 401)
    assert body["error"] == "unauthorized"


async def test_a_wrong_key_is_401_and_a_right_one_opens_every_page(start_api: StartApi) -> None:
    api = await start_api(api_keys=["other-key", KEY])
    wrong = {"Authorization": "Bearer nope"}
    assert "wrong API key" in await page(api, "/ui/journeys", 401, headers=wrong)
    await api.request("GET", "/ui/journeys/abandoned_cart/counts.json", 401, headers=wrong)
    for path in ("/ui", "/ui/journeys", "/ui/journeys/abandoned_cart", "/ui/customers", "/ui/operations",
                 "/ui/preview"):
        await page(api, path, headers=AUTH)
    await page(api, "/ui/operations", headers={"X-API-Key": KEY})
    await api.request("GET", "/v1/journeys", 401)  # the API keeps its own check


async def test_login_keeps_a_signed_session_in_an_httponly_strict_cookie(start_api: StartApi) -> None:
    api = await start_api(api_keys=[KEY])
    form = await page(api, "/ui/login?next=/ui/operations")
    token = csrf_of(form)
    fields = {"key": KEY, "next": "/ui/operations"}

    assert "expired" in await _post(api, "/ui/login", {**fields}, 403)  # no CSRF token
    assert "expired" in await _post(api, "/ui/login", {**fields, "csrf": token}, 403,
                                    headers={"Origin": "https://evil.example"})
    assert "wrong API key" in await _post(api, "/ui/login", {**fields, "key": "nope", "csrf": token}, 401)

    response = await api.client.post("/ui/login", data={**fields, "csrf": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/operations"
    cookie = response.cookies["omnicanal_ui"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui"
    assert KEY not in cookie.value  # the cookie holds a signed fingerprint of the key, not the key
    await page(api, "/ui/operations")

    jar = api.client.session.cookie_jar
    csrf_cookie = jar.filter_cookies(api.client.make_url("/ui"))["omnicanal_ui_csrf"].value
    tampered = cookie.value[:-1] + ("1" if cookie.value.endswith("0") else "0")
    jar.clear()
    jar.update_cookies({"omnicanal_ui": tampered, "omnicanal_ui_csrf": csrf_cookie})
    assert (await api.client.get("/ui/operations", allow_redirects=False)).status == 303
    jar.clear()
    token = csrf_of(await page(api, "/ui/login"))
    await _post(api, "/ui/login", {**fields, "csrf": token}, 303)

    assert "expired" in await _post(api, "/ui/logout", {"csrf": "forged"}, 403)
    await page(api, "/ui/journeys")
    response = await api.client.post("/ui/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login"
    assert (await api.client.get("/ui/journeys", allow_redirects=False)).status == 303


async def test_after_login_only_dashboard_paths_are_followed(start_api: StartApi) -> None:
    api = await start_api(api_keys=[KEY])
    token = csrf_of(await page(api, "/ui/login"))
    for target in ("https://evil.example/", "//evil.example/ui", "/v1/journeys", "/ui\\@evil.example",
                   "/ui/../../v1/customers", "/ui/%2e%2e/metrics", "/ui/./%2E%2E/x"):  # a browser resolves dots
        response = await api.client.post("/ui/login", data={"key": KEY, "next": target, "csrf": token},
                                         allow_redirects=False)
        assert response.headers["Location"] == "/ui", target


async def test_sessions_outlive_a_restart_with_a_set_secret_and_end_with_their_key(start_api: StartApi) -> None:
    first = await start_api(api_keys=[KEY], ui_secret="s3cret")
    token = csrf_of(await page(first, "/ui/login"))
    response = await first.client.post("/ui/login", data={"key": KEY, "csrf": token}, allow_redirects=False)
    cookies = {"omnicanal_ui": response.cookies["omnicanal_ui"].value}

    same = await start_api(api_keys=[KEY], ui_secret="s3cret")
    same.client.session.cookie_jar.update_cookies(cookies)
    await page(same, "/ui/journeys")
    key_gone = await start_api(api_keys=["another-key"], ui_secret="s3cret")
    key_gone.client.session.cookie_jar.update_cookies(cookies)
    assert (await key_gone.client.get("/ui/journeys", allow_redirects=False)).status == 303
    other_secret = await start_api(api_keys=[KEY])
    other_secret.client.session.cookie_jar.update_cookies(cookies)
    assert (await other_secret.client.get("/ui/journeys", allow_redirects=False)).status == 303


async def test_without_configured_keys_the_dashboard_is_open(start_api: StartApi) -> None:
    api = await start_api()
    html = await page(api, "/ui")
    assert "/ui/logout" not in html and "abandoned_cart" in html
    assert (await api.client.get("/ui/login", allow_redirects=False)).headers["Location"] == "/ui"


async def test_pages_forbid_framing_caching_and_foreign_scripts(start_api: StartApi) -> None:
    api = await start_api()
    response = await api.client.get("/ui/journeys")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"
    static = await api.client.get("/ui/static/journey.js")
    assert static.status == 200 and "data-count" in await static.text()


async def _post(api: Api, path: str, data: dict[str, str], status: int, **kwargs: Any) -> str:
    response = await api.client.post(path, data=data, allow_redirects=False, **kwargs)
    text = await response.text()
    assert response.status == status, (response.status, text[:1000])
    return text


# -- journeys ---------------------------------------------------------------------------------------------------

async def test_journey_pages_show_the_numbers_of_the_api(start_api: StartApi) -> None:
    api = await start_api()
    await play_reference_scenario(api)
    listing = await page(api, "/ui/journeys")
    for journey in (await api.request("GET", "/v1/journeys", 200))["journeys"]:
        assert f'href="/ui/journeys/{journey["id"]}"' in listing and journey["version"] in listing

    expected = await api.request("GET", "/v1/journeys/abandoned_cart", 200)
    html = await page(api, "/ui/journeys/abandoned_cart")
    shown = counts_in(html)
    for step in expected["steps"]:
        for name, value in step["counts"].items():
            assert shown[f"step:{step['id']}:{name}"] == str(value), (step["id"], name)
    for channel, statuses in expected["channels"].items():
        for status, value in statuses.items():
            assert shown[f"channel:{channel}:{status}"] == str(value)
    assert shown["count:converted"] == "1" and shown["active"] == "0"

    polled = (await api.request("GET", "/ui/journeys/abandoned_cart/counts.json", 200))["counts"]
    assert polled["step:thank_you:sent"] == 1 and polled["channel:push:sent"] == 1
    assert polled["count:started"] == expected["counts"]["started"]


async def test_the_journey_page_draws_every_step_and_shows_its_file(start_api: StartApi) -> None:
    api = await start_api()
    journey = api.runtime.registry.current["abandoned_cart"]
    html = await page(api, "/ui/journeys/abandoned_cart")
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert sorted(re.findall(r'data-step="([^"]+)"', svg)) == sorted([s.id for s in journey.steps] + ["start", "end"])
    assert svg.count('class="link') == 11  # as many as `omnicanal graph` draws: start's edge and the steps' 10
    assert "timeout 1h" in svg and "wait for order_placed" in svg
    assert journey.path in html and journey.version in html
    assert "re_entry: after 7d" in html  # the YAML, as written


async def test_a_jump_back_is_drawn_beside_the_steps(start_api: StartApi, project: Path) -> None:
    write_journey(project, "loop", """
id: loop
trigger: {event: ping}
steps:
  - id: top
    wait: 1h
  - branch:
      - {when: "event.properties.again", goto: top}
      - {else: done}
  - {id: done, exit: {reason: looped}}
""")
    api = await start_api()
    svg = await page(api, "/ui/journeys/loop")
    assert svg.count('class="link back"') == 1 and svg.count('class="link"') == 4
    assert 'data-step="done"' in svg and "exit (looped)" in svg


async def test_a_time_range_shows_the_stats_of_that_period(start_api: StartApi) -> None:
    api = await start_api()
    await play_reference_scenario(api)
    now = datetime.fromtimestamp(api.runtime.clock.now(), UTC)
    period = {"from": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
              "to": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
    stats = await api.request("GET", "/v1/journeys/abandoned_cart/stats", 200, params=period)
    html = await page(api, "/ui/journeys/abandoned_cart", params=period)
    shown = counts_in(html)
    assert f'value="{period["from"]}"' in html and "UTC" in html[html.index('id="period"'):]
    for step in stats["steps"]:
        for name, value in step["counts"].items():
            assert shown[f"step:{step['id']}:{name}"] == str(value), (step["id"], name)
    assert shown["count:converted"] == str(stats["counts"]["converted"]) == "1"
    by_where = html[html.index('id="by-where"'):]
    assert re.search(r"<td>store</td><td class=\"n\">1</td><td class=\"n\">89</td>", by_where)
    assert 'data-model="last"' in html and "abandoned_cart / push_discount" in html

    before = {"from": "2020-01-01T00:00", "to": "2020-01-02T00:00"}
    assert counts_in(await page(api, "/ui/journeys/abandoned_cart", params=before))["count:started"] == "0"
    polled = await api.request("GET", "/ui/journeys/abandoned_cart/counts.json", 200, params=before)
    assert polled["counts"]["count:started"] == 0
    assert "from: &#39;yesterday&#39; is not a date" in await page(api, "/ui/journeys/abandoned_cart?from=yesterday",
                                                                  422)
    assert "`to` must be after `from`" in await page(api, "/ui/journeys/abandoned_cart", 422,
                                                     params={"from": before["to"], "to": before["from"]})
    assert "no journey &#39;nope&#39;" in await page(api, "/ui/journeys/nope", 404)


@pytest.mark.parametrize(("query", "says"), [
    ({"to": "0001-01-01T00:00"}, "`to` must be after"),
    ({"from": "0001-01-01T00:00+14:00"}, "outside the years 1 to 9999 once in UTC"),
    ({"from": "9999-12-31T00:00", "to": "9999-12-31T23:59-14:00"}, "outside the years 1 to 9999 once in UTC"),
])
async def test_a_period_at_the_edge_of_the_calendar_is_422_not_500(start_api: StartApi, query: dict[str, str],
                                                                   says: str) -> None:
    """`?to=0001-01-01` (a day before it: year 0) and offsets past year 1 or 9999 failed showing the period: 500."""
    api = await start_api()
    assert says in await page(api, "/ui/journeys/abandoned_cart", 422, params=query)
    assert "From " in await page(api, "/ui/journeys/abandoned_cart", params={"to": "0001-01-01T10:00"})


async def test_the_journey_list_has_the_last_day_and_all_time(start_api: StartApi) -> None:
    api = await start_api(clock_speed=3600.0)  # the scenario lasts a few journey hours: all of it in the last day
    await play_reference_scenario(api)
    html = await page(api, "/ui/journeys")
    row = html[html.index('data-journey="abandoned_cart"'):]
    row = row[:row.index("</tr>")]
    assert "last 24 hours" in html and "all time" in html
    assert re.findall(r'class="n">([^<]*)<', row)[-3:] == ["1", "1", "0"]  # all time: started, converted, failed
    assert "push 1" in row and "whatsapp 1" in row


# -- customers --------------------------------------------------------------------------------------------------

async def test_search_finds_a_customer_by_id_email_phone_or_push_token(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", LEA)
    for query in ("c42", "lea@example.com", "LEA@example.com", "+33612345678", "06 12 34 56 78", "device-token-1",
                  "push:device-token-1"):
        response = await api.client.get("/ui/customers", params={"q": query}, allow_redirects=False)
        assert (response.status, response.headers.get("Location")) == (303, "/ui/customers/c42"), query
    assert "no customer has e-mail nobody@example.com" in await page(api, "/ui/customers?q=nobody@example.com", 404)
    assert "not an id" in await page(api, "/ui/customers?q=%7Bbad%7D", 422)


async def test_the_customer_page_shows_the_conversation_in_order(start_api: StartApi) -> None:
    api = await start_api()
    await play_reference_scenario(api)
    html = await page(api, "/ui/customers/c42")
    timeline = html[html.index('id="timeline"'):]
    kinds = re.findall(r'data-kind="(\w+)"', timeline)
    assert kinds[:2] == ["event", "journey"] and kinds[-1] == "journey"
    push, store, thanks = (timeline.index(text) for text in ("cart_discount", "Lyon Part-Dieu", "order_thanks"))
    assert push < store < thanks
    assert "Sneakers" in timeline and "abandoned_cart/thank_you" in timeline
    assert "reached the goal of abandoned_cart" in timeline and "exited (bought)" in timeline
    assert re.search(r"sending [0-9-]+ [0-9:]+ → sent", timeline)  # the status history


async def test_addresses_are_masked_and_hostile_data_is_text(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", {**LEA, "attributes": {"first_name": HOSTILE}})
    await api.event("page_viewed", "c42", properties={"url": "<img src=x onerror=alert(2)>"})
    await api.event("cart_abandoned", "c42", properties=CART)
    await api.wait_until("c42", has_message("cart_discount"))
    html = await page(api, "/ui/customers/c42")
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the profile, and the push's title
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    for address in ("+33612345678", "lea@example.com", "device-token-1"):
        assert address not in html, address
    assert "+336•••••678" in html and "l••@example.com" in html and "devi•••••en-1" in html


async def test_the_running_journey_shows_its_step_and_when_it_is_due(start_api: StartApi) -> None:
    api = await start_api(clock_speed=60.0)
    await api.put_customer("c42", LEA)
    await api.event("cart_abandoned", "c42", properties=CART)
    await api.settled()
    html = await page(api, "/ui/customers/c42")
    running = html[html.index('id="running"'):html.index('id="timeline"')]
    assert "give_them_time" in running and "wait for order_placed" in running and "waiting (wait_for)" in running
    assert re.search(r"in (59|60)m \d\ds", running)  # the timeout's timer, an hour of journey time away


async def test_the_timeline_comes_a_page_at_a_time(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c9", {"attributes": {"first_name": "Tom"}})
    await api.request("POST", "/v1/events/batch", 202, json={"events": [
        {"name": "ping", "customer_id": "c9", "properties": {"n": n}} for n in range(60)]})
    await api.settled()
    newest = await page(api, "/ui/customers/c9")
    assert newest.count('data-kind="event"') == 50 and "60 entries kept" in newest
    assert '"n": 59' not in newest  # shown as escaped JSON
    assert "{&#34;n&#34;: 59}" in newest and "{&#34;n&#34;: 10}" in newest and "{&#34;n&#34;: 9}" not in newest
    older = re.search(r'id="older" href="([^"]+)"', newest)
    assert older and older.group(1) == "/ui/customers/c9?before=10"
    first = await page(api, older.group(1))
    assert first.count('data-kind="event"') == 10 and 'id="older"' not in first
    assert "{&#34;n&#34;: 0}" in first and "Newest entries" in first


async def test_a_visitor_who_identified_leads_to_the_customer(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", LEA)
    await api.event("page_viewed", "anon-7")
    await api.event("identify", "c42", properties={"anonymous_id": "anon-7"})
    await api.settled()
    response = await api.client.get("/ui/customers/anon-7", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/ui/customers/c42")
    assert "no customer &#39;nobody&#39;" in await page(api, "/ui/customers/nobody", 404)


# -- operations and preview -------------------------------------------------------------------------------------

async def test_operations_show_dead_letters_workers_and_timers(start_api: StartApi) -> None:
    api = await start_api(clock_speed=60.0)
    await api.put_customer("c42", LEA)
    await api.event("cart_abandoned", "c42", properties=CART)
    await api.settled()
    event = {"id": "evt-1", "name": "order_placed", "customer_id": "c42", "properties": {}}
    await api.runtime.queue.dead_letter(WorkItem(0, "0-1", "event", "c42", event=event), "boom: <b>bad</b>")
    html = await page(api, "/ui/operations")
    assert "boom: &lt;b&gt;bad&lt;/b&gt;" in html and "order_placed" in html
    worker = api.runtime.settings.worker_id
    assert re.search(re.escape(worker) + r"</td>\s*<td>[^<]+<span class=\"sub\">\d+s ago</span></td>\s*<td>0, 1, 2, 3<",
                     html)
    assert re.search(r'id="timers">1<', html) and re.search(r'id="dead-count">1<', html)
    assert re.search(r"next due [0-9-]+ [0-9:]+, in (59|60)m", html)


async def test_preview_renders_every_channel_and_locale_as_it_would_leave(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", {**LEA, "attributes": {"first_name": HOSTILE}})
    html = await page(api, "/ui/preview", params={
        "template": "order_thanks", "customer": "lea@example.com",
        "properties": '{"order_id": "T-1", "channel": "store", "store": "Lyon Part-Dieu", "total": 89, "items": []}'})
    variants = re.findall(r'data-channel="(\w+)" data-locale="(\w+)"', html)
    assert sorted(variants) == sorted((c, loc) for c in ("email", "sms", "whatsapp") for loc in ("en", "fr"))
    assert "boutique Lyon Part-Dieu" in html and "Lyon Part-Dieu store" in html
    assert "HX5f3a9c1e2b7d4f60a8c1e2b7d4f60a8c" in html  # the WhatsApp approved template's id
    assert HOSTILE not in html and "Merci &lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_preview_reports_undefined_data_as_validate_does(start_api: StartApi, project: Any) -> None:
    api = await start_api()
    html = await page(api, "/ui/preview?template=cart_discount")  # the simulator's customer, no cart
    problems = re.findall(r'<li class="mono">([^<]+)</li>', html)
    assert problems and all(re.match(r".+/templates/cart_discount\.yaml:\d+: ", p) for p in problems)
    assert re.search(r"cart_discount\.yaml:\d+: template cart_discount \(fr, sms\.body\): &#39;dict object&#39; has "
                     r"no attribute &#39;total&#39;", html)
    assert "Alex" in html or "simulated" in html
    assert "properties: not JSON" in await page(api, "/ui/preview?template=welcome&properties=%7Bnope", 422)
    assert "no template named" in await page(api, "/ui/preview?template=nope", 404)


def test_addresses_are_masked_per_channel() -> None:
    assert mask_address("sms", "+33612345678") == "+336•••••678"
    assert mask_address("whatsapp", "+33612345678") == "+336•••••678"
    assert mask_address("email", "lea@example.com") == "l••@example.com"
    assert mask_address("push", ["device-token-1", "abc"]) == ["devi•••••en-1", "a••"]
    assert mask_address("webhook", "https://user:pw@crm.example/hook?token=1") == "https://crm.example/•••"
    assert mask_address("messenger", "1234567890123") == "1234•••••0123"


async def test_a_token_or_cookie_that_is_not_ascii_is_refused_not_a_500(start_api: StartApi) -> None:
    """hmac.compare_digest refuses text that is not ASCII with a TypeError: forged tokens and cookies written
    with other characters must be refused like any other forgery."""
    api = await start_api(api_keys=[KEY])
    token = csrf_of(await page(api, "/ui/login"))
    assert "expired" in await _post(api, "/ui/login", {"key": KEY, "csrf": "é" * len(token)}, 403)
    api.client.session.cookie_jar.update_cookies({"omnicanal_ui": "9999999999.abc.é"})
    assert (await api.client.get("/ui/operations", allow_redirects=False)).status == 303  # to the login form
