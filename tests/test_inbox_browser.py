"""The in-app inbox from a brand's web app, in a real headless Chromium: a page served from another origin lists
the customer's messages (fetch), shows a new one as it arrives (EventSource) and marks it read on a click (a POST
with JSON, so a CORS preflight first), with nothing but the customer's signed id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By

from conftest import StartApi
from test_inbox import credentials, news, started
from test_ui_browser import Browser, chromium, open_browser  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

APP = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body>
<p id="unread"></p>
<ul id="messages"></ul>
<script>
const api = %(api)s, who = new URLSearchParams(%(credentials)s).toString();
function show(message, first) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.textContent = message.title + ": " + message.body;
  item.onclick = async () => {
    const answer = await fetch(api + "/v1/inbox/read?" + who, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({ids: [message.id]})});
    const body = await answer.json();
    document.getElementById("unread").textContent = "unread: " + body.unread;
    item.className = "read";
  };
  const list = document.getElementById("messages");
  first ? list.prepend(item) : list.append(item);
}
fetch(api + "/v1/inbox?" + who).then(answer => answer.json()).then(inbox => {
  document.getElementById("unread").textContent = "unread: " + inbox.unread;
  inbox.messages.forEach(message => show(message, false));
  const live = new EventSource(api + "/v1/inbox/stream?" + who);
  live.addEventListener("message", event => show(JSON.parse(event.data), true));
  live.addEventListener("unread", event => {
    document.getElementById("unread").textContent = "unread: " + JSON.parse(event.data).unread;
  });
  live.onopen = () => document.body.dataset.live = "yes";
});
</script>
</body></html>
"""


@pytest.fixture
async def brand_app() -> AsyncIterator[Any]:
    """Serve the brand's page (built per test) from an origin of its own: another port than the API's."""
    pages: dict[str, str] = {}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages["app"], content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def serve(api_base: str, customer_id: str) -> str:
        pages["app"] = APP % {"api": json.dumps(api_base), "credentials": json.dumps(credentials(customer_id))}
        return f"http://127.0.0.1:{port}/"

    yield serve
    await runner.cleanup()


async def test_a_web_app_of_another_origin_lists_follows_and_reads_the_inbox(
    project: Path, start_api: StartApi, open_browser: Any, brand_app: Any  # noqa: F811 - the imported fixture
) -> None:
    api = await started(project, start_api)
    await news(api, "w1", "Spring collection")
    browser: Browser = await open_browser(api)
    await browser.run(browser.driver.get, brand_app(browser.base, "w1"))
    await browser.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messages li"))
    assert await browser.texts("#messages li") == ["News for you: Spring collection"]
    assert await browser.text("#unread") == "unread: 1"
    await browser.until(lambda d: d.execute_script("return document.body.dataset.live") == "yes")
    await asyncio.sleep(0.1)  # the stream's first look is after it opened: the next message is new to it
    await news(api, "w1", "Flash sale")
    await browser.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages li")) == 2)
    assert await browser.texts("#messages li") == ["News for you: Flash sale", "News for you: Spring collection"]
    await browser.until(lambda d: d.find_element(By.ID, "unread").text == "unread: 2")  # the stream's badge

    await browser.click("#messages li:first-child")
    await browser.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messages li.read"))
    assert await browser.text("#unread") == "unread: 1"
    read = [m for m in (await api.request("GET", "/v1/inbox", 200, params=credentials("w1")))["messages"]
            if m["read_at"] is not None]
    assert [m["body"] for m in read] == ["Flash sale"]
    await api.wait_until("w1", lambda entries: any(e["kind"] == "event" and e["name"] == "message.read"
                                                   for e in entries))
    await browser.screenshot("inbox-app")
