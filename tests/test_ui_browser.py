"""The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium),
against a real daemon on real Redis: log in, read the reference journey's live counts, find a customer and read
their conversation, preview a template, and see hostile data shown as text. Screenshots of each page are saved
in the test's temporary folder.

`.ci/run` installs the two packages when they are missing; outside CI, without them, these tests are skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from conftest import Api, StartApi
from test_reference_journey import CART, LEA
from test_ui import HOSTILE, KEY, play_reference_scenario

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1360, 1000)
HOSTILE_PROPERTY = "<img src=x onerror=\"document.title='pwned'\">"


class Browser:
    """A Chromium page. Selenium blocks while the browser works, and the daemon it talks to runs on this test's
    event loop: every call goes through a thread so the daemon can answer meanwhile."""

    def __init__(self, driver: webdriver.Chrome, base: str, artifacts: Path) -> None:
        self.driver = driver
        self.base = base
        self.artifacts = artifacts

    async def run(self, action: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(action, *args)

    async def open(self, path: str) -> None:
        await self.run(self.driver.get, self.base + path)

    async def find(self, css: str) -> Any:
        return await self.run(self.driver.find_element, By.CSS_SELECTOR, css)

    async def texts(self, css: str) -> list[str]:
        elements = await self.run(self.driver.find_elements, By.CSS_SELECTOR, css)
        return [await self.run(element.get_attribute, "textContent") for element in elements]

    async def text(self, css: str) -> str:
        return str(await self.run((await self.find(css)).get_attribute, "textContent"))

    async def type_into(self, css: str, text: str) -> None:
        element = await self.find(css)
        await self.run(element.clear)
        await self.run(element.send_keys, text)

    async def click(self, css: str) -> None:
        await self.run((await self.find(css)).click)

    async def until(self, condition: Callable[[webdriver.Chrome], Any], timeout: float = 15) -> Any:
        return await self.run(WebDriverWait(self.driver, timeout, poll_frequency=0.2).until, condition)

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base)

    async def screenshot(self, name: str, height: int | None = None) -> Path:
        """The top `height` pixels of the page, or the whole page (the window grows to its height)."""
        path = self.artifacts / f"{name}.png"
        width, usual = WINDOW
        if height is None:
            height = int(await self.run(self.driver.execute_script, "return document.documentElement.scrollHeight"))
        await self.run(self.driver.set_window_size, width, min(max(height, usual), 6000))
        await self.run(self.driver.save_screenshot, str(path))
        await self.run(self.driver.set_window_size, width, usual)
        return path

    async def no_alert(self) -> bool:
        try:
            await self.run(lambda: self.driver.switch_to.alert.text)
        except NoAlertPresentException:
            return True
        return False

    async def log_in(self, key: str) -> None:
        await self.type_into("#key", key)
        await self.click("form[action='/ui/login'] button")


@pytest.fixture
def chromium() -> webdriver.ChromeOptions:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are missing: .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-GB", "--hide-scrollbars"):
        options.add_argument(argument)
    return options


@pytest.fixture
async def open_browser(chromium: webdriver.ChromeOptions, tmp_path: Path
                       ) -> AsyncIterator[Callable[[Api], Any]]:
    drivers: list[webdriver.Chrome] = []

    async def start(api: Api) -> Browser:
        driver = await asyncio.to_thread(webdriver.Chrome, service=Service(str(CHROMEDRIVER)), options=chromium)
        drivers.append(driver)
        return Browser(driver, str(api.client.make_url("")).rstrip("/"), tmp_path)

    yield start
    for driver in drivers:
        await asyncio.to_thread(driver.quit)


def _authorised(api: Api) -> None:
    """The test's own API calls carry the key (the browser logs in with the form)."""
    api.client.session.headers["Authorization"] = f"Bearer {KEY}"


async def test_a_marketer_follows_the_reference_journey_and_lea(start_api: StartApi, open_browser: Any) -> None:
    api = await start_api(api_keys=[KEY])
    _authorised(api)
    await play_reference_scenario(api)
    browser = await open_browser(api)

    await browser.open("/ui/journeys/abandoned_cart")
    assert browser.path.startswith("/ui/login?next=")
    await browser.screenshot("login")
    await browser.log_in("not-the-key")
    problem = await browser.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".problem"))
    assert "wrong API key" in await browser.run(problem[0].get_attribute, "textContent")
    await browser.log_in(KEY)
    await browser.until(lambda d: d.current_url.endswith("/ui/journeys/abandoned_cart"))

    expected = await api.request("GET", "/v1/journeys/abandoned_cart", 200)
    for step in expected["steps"]:
        shown = await browser.texts(f"svg [data-count='step:{step['id']}:entered']")
        assert shown == [str(step["counts"]["entered"])], step["id"]
        for name, value in step["counts"].items():
            assert await browser.text(f"#steps [data-count='step:{step['id']}:{name}']") == str(value)
    assert await browser.text("[data-count='channel:whatsapp:sent']") == "1"
    assert "re_entry: after 7d" in await browser.text("pre.source")
    await browser.screenshot("journey")
    await browser.screenshot("journey-graph", height=1480)  # docs/ui-journey.png

    # the counts are live: another shopper starts the journey while the page is open
    await api.request("PUT", "/v1/customers/c43", 200, json={**LEA, "addresses": {"email": "tom@example.com"}})
    await api.request("POST", "/v1/events", 202, json={"name": "cart_abandoned", "customer_id": "c43",
                                                       "properties": CART})
    await browser.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-count='count:started']").text == "2")
    running = (await api.request("GET", "/v1/journeys/abandoned_cart", 200))["active"]
    await browser.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-count='active']").text == str(running))

    await browser.open("/ui/customers")
    await browser.type_into("#q", "lea@example.com")
    await browser.click("form.search button")
    await browser.until(lambda d: d.current_url.endswith("/ui/customers/c42"))
    entries = await browser.texts("#timeline li.entry")
    push = next(i for i, text in enumerate(entries) if "push" in text and "cart_discount" in text)
    store = next(i for i, text in enumerate(entries) if "order_placed" in text and "Lyon Part-Dieu" in text)
    thanks = next(i for i, text in enumerate(entries) if "whatsapp" in text and "order_thanks" in text)
    assert push < store < thanks
    assert "Sneakers" in entries[push] and "Merci Léa" in entries[thanks]
    assert "l••@example.com" in await browser.text("#addresses") and "lea@" not in await browser.text("#addresses")
    await browser.screenshot("customer")

    await browser.open("/ui/preview")
    await browser.run(Select(await browser.find("#template")).select_by_value, "order_thanks")
    await browser.type_into("#customer", "c42")
    await browser.type_into("#properties", '{"order_id": "T-9", "channel": "store", "store": "Lyon Part-Dieu", '
                                           '"total": 42, "items": [{"name": "Sneakers", "price": 42}]}')
    await browser.click("#render")
    await browser.until(lambda d: "template=order_thanks" in d.current_url)
    whatsapp = await browser.text("article[data-channel='whatsapp'][data-locale='fr']")
    assert "Merci Léa" in whatsapp and "boutique Lyon Part-Dieu" in whatsapp and "T-9" in whatsapp
    await browser.screenshot("preview")

    await browser.click("form.logout button")
    await browser.until(lambda d: "/ui/login" in d.current_url)
    await browser.open("/ui/customers/c42")
    assert browser.path.startswith("/ui/login")


async def test_hostile_data_is_shown_as_text(start_api: StartApi, open_browser: Any) -> None:
    api = await start_api()
    await api.put_customer("c66", {**LEA, "attributes": {"first_name": HOSTILE}})
    await api.event("page_viewed", "c66", properties={"title": HOSTILE_PROPERTY})
    await api.event("cart_abandoned", "c66", properties=CART)
    await api.wait_until("c66", lambda entries: any(e["kind"] == "message" for e in entries))
    browser = await open_browser(api)

    await browser.open("/ui/customers/c66")
    await asyncio.sleep(0.5)  # time for a script or an image's onerror to run, were they markup
    assert await browser.no_alert()
    assert await browser.run(lambda: browser.driver.title) != "pwned"
    assert HOSTILE in await browser.text("#attributes")
    timeline = await browser.text("#timeline")
    assert HOSTILE_PROPERTY.replace('"', '\\"') in timeline  # the property, as JSON text
    assert f"{HOSTILE}, votre panier vous attend" in timeline  # the push's title, rendered with the name
    assert await browser.run(browser.driver.find_elements, By.CSS_SELECTOR, "#timeline img") == []
    await browser.screenshot("hostile")

    order = quote('{"order_id": "T-1", "channel": "web", "total": 10, "items": []}')
    await browser.open(f"/ui/preview?template=order_thanks&customer=c66&properties={order}")
    await asyncio.sleep(0.5)
    assert await browser.no_alert()
    assert f"Merci {HOSTILE}" in await browser.text("article[data-channel='whatsapp'][data-locale='fr']")


@pytest.fixture(autouse=True)
def _keep_screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """With OMNICANAL_UI_SCREENSHOTS set to a folder, the screenshots are copied there too (the README's
    picture comes from it)."""
    yield
    target = os.environ.get("OMNICANAL_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, Path(target) / f"{request.node.name}-{shot.name}")
