"""Tracked links and unsubscribe links, through the HTTP API on real Redis with the SMTP stand-in: the links a
message carries, following them (`/r/`), unsubscribing from them (`/u/`: the page, the form, RFC 8058's one-click),
and what each leads to — events on the timeline, a `wait_for` resumed, a consent withdrawn, a journey exited, the
step's `clicked` counter."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import Api, StartApi, has_message, journey_ended, write_journey
from omnicanal.links import Click, Links, Unsubscribe
from standins import Delivered, SmtpStandIn
from test_cli import at_once, run
from test_daemon import RestartRedis, private_redis  # noqa: F401  # a fixture

PUBLIC_URL = "https://go.shop.example"
SECRET = "test-link-secret-0123456789"
LINKED = {"public_url": PUBLIC_URL, "link_secret": SECRET}

TEMPLATE = """
en:
  email:
    subject: "Our spring offer"
    text: |
      The offer: {{ track('https://shop.example/spring?from=text') }}
      Unsubscribe: {{ unsubscribe_url }}
    html: |
      <p>Hello {{ customer.first_name | default('there') }},
      <a class="offer" href="https://shop.example/spring?a=1&amp;b=2">see the offer</a>,
      <a href='mailto:help@shop.example'>write to us</a>, <a href="#top">top</a>,
      <a href="javascript:alert(1)">script</a>, <a href="//evil.example/">elsewhere</a>.</p>
      <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
  sms:
    body: "Spring offer: {{ track('https://shop.example/spring?from=sms') }}"
"""

JOURNEY = """
id: spring
trigger: {event: spring_started}
re_entry: always
exit_on:
  - {event: unsubscribed}
steps:
  - id: mail
    send: {template: spring_offer, channels: [email]}
  - id: text
    send: {template: spring_offer, channels: [sms]}
  - id: wait_click
    wait_for: {event: message.clicked, timeout: 30d, on_timeout: no_click}
  - exit: {reason: clicked}
  - id: no_click
    exit: {reason: no click}
"""

LEA = {"attributes": {"first_name": "Léa"}, "locale": "fr",
       "addresses": {"email": "lea@example.com", "sms": "+33612345678"}}
TOM = {"attributes": {"first_name": "Tom"}, "addresses": {"email": "tom@example.com", "sms": "+33698765432"}}


@pytest.fixture
async def smtp(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as standin:
        for name, value in standin.env().items():
            monkeypatch.setenv(name, value)
        yield standin


@pytest.fixture
def spring(project: Path) -> Path:
    (project / "templates" / "spring_offer.yaml").write_text(TEMPLATE, encoding="utf-8")
    write_journey(project, "spring", JOURNEY)
    return project


async def start(start_api: StartApi, **overrides: Any) -> Api:
    return await start_api(channels={"email": "smtp_email"}, **overrides)


async def sent_messages(api: Api, customer_id: str) -> dict[str, dict[str, Any]]:
    """The customer's spring_offer messages, by channel, once both went."""
    entries = await api.wait_until(customer_id, lambda entries: sum(
        e["kind"] == "message" and e.get("status") == "sent" for e in entries) >= 2)
    return {e["channel"]: e for e in entries if e["kind"] == "message"}


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL), url
    return urlsplit(url).path


def links_in(text: str) -> list[str]:
    return re.findall(re.escape(PUBLIC_URL) + r"/[ru]/[A-Za-z0-9_-]+", text)


async def received(smtp: SmtpStandIn) -> list[Delivered]:
    async with asyncio.timeout(10):
        while not smtp.received:
            await asyncio.sleep(0.02)
    return smtp.received


def events(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "event" and e["name"] == name]


async def test_a_click_redirects_is_recorded_resumes_the_wait_and_is_counted(
    spring: Path, start_api: StartApi, smtp: SmtpStandIn
) -> None:
    api = await start(start_api, **LINKED)
    await api.put_customer("c1", TOM)
    await api.event("spring_started", "c1")
    messages = await sent_messages(api, "c1")
    [delivered] = smtp.received
    html = delivered.message.get_body(("html",)).get_content()
    hrefs = [unescape(h) for h in re.findall(r"""href=["']([^"']*)["']""", html)]
    offer, mailto, top, script, elsewhere, unsubscribe = hrefs
    assert (mailto, top, script, elsewhere) == ("mailto:help@shop.example", "#top", "javascript:alert(1)",
                                                "//evil.example/")  # not http(s): left as written
    assert offer.startswith(f"{PUBLIC_URL}/r/") and unsubscribe.startswith(f"{PUBLIC_URL}/u/")
    assert 'class="offer"' in html  # the rest of the tag is kept
    text = delivered.message.get_body(("plain",)).get_content()
    assert links_in(text) == [links_in(text)[0], unsubscribe] and "shop.example/spring" not in text
    assert messages["email"]["content"]["html"] == html.strip()  # the timeline shows what was sent
    [sms_link] = links_in(messages["sms"]["content"]["body"])
    assert len(sms_link) < 160

    response = await api.client.get(path_of(offer), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "https://shop.example/spring?a=1&b=2"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    entries = await api.wait_until("c1", journey_ended("spring"))
    assert entries[-1]["reason"] == "clicked"  # the click resumed the wait_for
    [click] = events(entries, "message.clicked")
    assert click["properties"] == {"message_id": messages["email"]["message_id"], "journey": "spring",
                                   "step": "mail", "channel": "email", "url": "https://shop.example/spring?a=1&b=2"}

    again = await api.client.get(path_of(offer), allow_redirects=False)  # a double click: one event
    sms = await api.client.get(path_of(sms_link), allow_redirects=False)
    assert again.status == sms.status == 302
    assert sms.headers["Location"] == "https://shop.example/spring?from=sms"
    await api.settled()
    clicks = events(await api.timeline("c1"), "message.clicked")
    assert [(c["properties"]["step"], c["properties"]["channel"]) for c in clicks] == [("mail", "email"),
                                                                                       ("text", "sms")]
    stats = await api.request("GET", "/v1/journeys/spring/stats", 200)
    steps = {step["id"]: step for step in stats["steps"]}
    assert steps["mail"]["counts"]["clicked"] == 1 and steps["mail"]["channels"]["email"]["clicked"] == 1
    assert steps["text"]["channels"]["sms"] == {"sent": 1, "clicked": 1}


async def test_links_need_no_api_key_and_a_forged_token_gets_a_404_and_records_nothing(
    spring: Path, start_api: StartApi, smtp: SmtpStandIn
) -> None:
    api = await start(start_api, api_keys=["k"], **LINKED)
    auth = {"Authorization": "Bearer k"}
    await api.request("PUT", "/v1/customers/c1", 200, json=TOM, headers=auth)
    await api.request("POST", "/v1/events", 202, json={"name": "spring_started", "customer_id": "c1"}, headers=auth)
    [delivered] = await received(smtp)  # (the timeline helpers send no key)
    offer = links_in(delivered.message.get_body(("plain",)).get_content())[0]
    token = path_of(offer).rsplit("/", 1)[1]
    altered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    elsewhere = Links(PUBLIC_URL, "another-secret-0123456789", "default").click_url(
        Click("c1", "m", "spring", "mail", "email", "https://evil.example/"))
    for path in (f"/r/{altered}", f"/r/{token[:20]}", "/r/not-a-token", path_of(elsewhere),
                 f"/u/{token}", f"/r/{'A' * 5000}"):
        response = await api.client.get(path, allow_redirects=False)
        assert response.status == 404 and "Location" not in response.headers, path
        assert "text/html" in response.headers["Content-Type"]
    followed = await api.client.get(path_of(offer), allow_redirects=False)
    assert followed.status == 302
    await api.settled()
    timeline = await api.request("GET", "/v1/customers/c1/timeline", 200, headers=auth)
    assert len(events(timeline["entries"], "message.clicked")) == 1  # the genuine click only


def test_only_http_and_https_urls_are_ever_signed() -> None:
    links = Links(PUBLIC_URL, SECRET, "default")
    for url in ("javascript:alert(1)", "//evil.example/", "data:text/html,x", "https:/\\evil.example",
                "https://shop.example/a b", "http://", "/relative", "ftp://shop.example/f", " JavaScript:x"):
        with pytest.raises(ValueError, match="cannot be tracked"):
            links.click_url(Click("c1", "m", "j", "s", "sms", url))
    url = links.click_url(Click("c1", "m.1.sms", "j", "s", "sms", "https://shop.example/été?x=1"))
    token = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert links.read_click(token) == Click("c1", "m.1.sms", "j", "s", "sms", "https://shop.example/été?x=1")
    assert links.read_unsubscribe(token) is None  # a click token is not an unsubscribe token
    assert Links(PUBLIC_URL, SECRET, "other").read_click(token) is None  # nor valid in another workspace
    unsubscribe = Unsubscribe("c1", "email", "marketing", "m.1.email")
    assert links.read_unsubscribe(links.unsubscribe_url(unsubscribe).rsplit("/", 1)[1]) == unsubscribe


async def test_track_of_a_script_url_fails_the_message_visibly(project: Path, start_api: StartApi) -> None:
    (project / "templates" / "bad_link.yaml").write_text(
        'en:\n  sms:\n    body: "{{ track(\'javascript:alert(1)\') }}"\n', encoding="utf-8")
    write_journey(project, "bad", "id: bad\ntrigger: {event: go}\nsteps:\n  - send: {template: bad_link, "
                                  "channels: [sms]}\n")
    api = await start_api(**LINKED)
    await api.put_customer("c1", TOM)
    await api.event("go", "c1")
    entries = await api.wait_until("c1", has_message("bad_link", status="failed"))
    [failed] = [e for e in entries if e["kind"] == "message"]
    assert "cannot be tracked" in failed["error"] and "bad_link.yaml" in failed["error"]


async def test_without_a_secret_links_stay_as_written(spring: Path, start_api: StartApi,
                                                      smtp: SmtpStandIn) -> None:
    api = await start(start_api, public_url=PUBLIC_URL)
    await api.put_customer("c1", TOM)
    await api.event("spring_started", "c1")
    messages = await sent_messages(api, "c1")
    assert messages["sms"]["content"]["body"] == "Spring offer: https://shop.example/spring?from=sms"
    assert 'href="https://shop.example/spring?a=1&amp;b=2"' in messages["email"]["content"]["html"]
    assert messages["email"]["content"]["text"].endswith("Unsubscribe:")  # empty: no link to give
    [delivered] = smtp.received
    assert delivered.message["List-Unsubscribe"] is None
    response = await api.client.get("/u/anything", allow_redirects=False)
    assert response.status == 404


# -- unsubscribe ---------------------------------------------------------------------------------------------------


async def _unsubscribe_path(api: Api, smtp: SmtpStandIn, customer_id: str, profile: dict[str, Any]) -> str:
    await api.put_customer(customer_id, profile)
    await api.event("spring_started", customer_id)
    await sent_messages(api, customer_id)
    delivered = next(d for d in smtp.received if d.rcpt_tos == [profile["addresses"]["email"]])
    header = delivered.message["List-Unsubscribe"]
    assert delivered.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.startswith(f"<{PUBLIC_URL}/u/") and header.endswith(">")
    assert f"\r\nList-Unsubscribe: {header}\r\n".encode() in delivered.data  # one line, not an encoded word
    assert header[1:-1] in delivered.message.get_body(("plain",)).get_content()  # the same link in the text
    return path_of(header[1:-1])


async def test_the_unsubscribe_page_asks_in_the_customers_language_and_the_form_records_it(
    spring: Path, start_api: StartApi, smtp: SmtpStandIn
) -> None:
    api = await start(start_api, **LINKED)
    lea = await _unsubscribe_path(api, smtp, "lea", LEA)
    tom = await _unsubscribe_path(api, smtp, "tom", TOM)

    french = await api.client.get(lea, headers={"Accept-Language": "en-GB,en;q=0.9"})
    page = await french.text()
    assert french.status == 200 and '<html lang="fr">' in page  # the customer's locale wins over the browser's
    assert "Que ne souhaitez-vous plus recevoir ?" in page and "Les offres et actualités par e-mail" in page
    assert '<form method="post">' in page and "<script" not in page and "<legend>" in page
    english = await api.client.get(tom, headers={"Accept-Language": "de;q=1, en;q=0.8, fr;q=0.5"})
    page = await english.text()
    assert '<html lang="en">' in page and "What would you like to stop receiving?" in page
    assert "Offers and news by email" in page
    asked = await api.client.get(f"{tom}?lang=fr")
    assert '<html lang="fr">' in await asked.text()
    await api.settled()
    assert events(await api.timeline("tom"), "unsubscribed") == []  # asking unsubscribes nobody

    done = await api.client.post(tom, data={"scope": "marketing"})
    assert done.status == 200 and "You are unsubscribed" in await done.text()
    profile = await api.request("GET", "/v1/customers/tom", 200)
    for channel in ("email", "sms", "push", "whatsapp"):
        decision = profile["consents"][channel]["marketing"]
        assert decision["granted"] is False and decision["source"] == "unsubscribe_link" and decision["at"]
    assert "transactional" not in profile["consents"]["email"]
    entries = await api.wait_until("tom", journey_ended("spring"))
    assert entries[-1]["reason"] == "exit_on unsubscribed"
    [event] = events(entries, "unsubscribed")
    assert event["properties"]["scope"] == "marketing" and event["properties"]["method"] == "page"
    assert event["properties"]["channel"] == "email" and "sms" in event["properties"]["channels"]

    replay = await api.client.post(tom, data={"scope": "marketing"})  # a replayed POST: nothing more
    assert replay.status == 200
    await api.settled()
    assert (await api.request("GET", "/v1/customers/tom", 200))["consents"] == profile["consents"]
    assert len(events(await api.timeline("tom"), "unsubscribed")) == 1

    wrong = await api.client.post(lea, data={"scope": "everything"})
    assert wrong.status == 422 and 'role="alert"' in await wrong.text()


async def test_one_click_unsubscribes_at_once_and_the_next_marketing_email_is_skipped(
    spring: Path, start_api: StartApi, smtp: SmtpStandIn
) -> None:
    api = await start(start_api, **LINKED)
    path = await _unsubscribe_path(api, smtp, "tom", TOM)
    response = await api.client.post(path, data="List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
    profile = await api.request("GET", "/v1/customers/tom", 200)
    assert profile["consents"] == {"email": {"marketing": {"granted": False, "source": "unsubscribe_link",
                                                           "at": profile["consents"]["email"]["marketing"]["at"]}}}
    entries = await api.wait_until("tom", journey_ended("spring"))
    [event] = events(entries, "unsubscribed")
    assert event["properties"]["method"] == "one_click" and event["properties"]["channels"] == ["email"]

    await api.event("spring_started", "tom")  # again: the e-mail is skipped, the SMS goes
    entries = await api.wait_until("tom", lambda entries: sum(
        e["kind"] == "message" and e.get("step") == "text" for e in entries) == 2)
    mail = [e for e in entries if e["kind"] == "message" and e.get("step") == "mail"][-1]
    assert mail["status"] == "suppressed"
    assert mail["skipped"] == [{"channel": "email", "reason": "no consent: marketing opted out (unsubscribe_link)"}]
    assert len(smtp.received) == 1


async def test_the_connector_setting_overrides_the_signed_unsubscribe_link(
    spring: Path, start_api: StartApi, smtp: SmtpStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNICANAL_SMTP_UNSUBSCRIBE_URL", "https://shop.example/prefs?c={customer_id}")
    api = await start(start_api, **LINKED)
    await api.put_customer("c1", TOM)
    await api.event("spring_started", "c1")
    await sent_messages(api, "c1")
    [delivered] = smtp.received
    assert delivered.message["List-Unsubscribe"] == "<https://shop.example/prefs?c=c1>"


@pytest.mark.slow  # starts the command as its own process
def test_validate_says_when_links_are_off() -> None:
    off, on = at_once(lambda: run("validate", OMNICANAL_PUBLIC_URL=PUBLIC_URL),
                      lambda: run("validate", OMNICANAL_PUBLIC_URL=PUBLIC_URL, OMNICANAL_LINK_SECRET=SECRET))
    assert off.returncode == 0 and "links are off (set OMNICANAL_LINK_SECRET)" in off.stderr
    assert on.returncode == 0 and "links are off" not in on.stderr


@pytest.mark.slow  # a redis-server of its own, shut down under the engine
async def test_a_click_is_followed_even_when_the_store_cannot_record_it(
    private_redis: tuple[str, RestartRedis], start_api: StartApi  # noqa: F811  # the fixture imported above
) -> None:
    url, _ = private_redis
    api = await start_api(redis_url=url, **LINKED)
    link = Links(PUBLIC_URL, SECRET, "default").click_url(
        Click("c1", "m.1.sms", "spring", "text", "sms", "https://shop.example/spring"))
    subprocess.run(["redis-cli", "-u", url, "shutdown", "nosave"], check=False, capture_output=True)
    await asyncio.sleep(0.2)
    response = await api.client.get(path_of(link), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "https://shop.example/spring"
