"""The HTML pages customers see — the unsubscribe page, a link that is not valid — in French or English.

Plain and server-rendered: a form that works without JavaScript or styles, the page's language declared, one
heading, a main landmark, labelled choices in a fieldset, so screen readers and keyboards get everything. The
language is the customer's when it is French or English, else the browser's first choice of the two
(Accept-Language), else English; `?lang=fr|en` overrides, and every page links to the other language.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2
from aiohttp import web

LANGUAGES = ("fr", "en")

TEXTS: dict[str, dict[str, Any]] = {
    "fr": {
        "other": ("en", "English"),
        "unsubscribe_title": "Se désabonner",
        "question": "Que ne souhaitez-vous plus recevoir ?",
        "scope": {
            "marketing_message": "Les offres et actualités {by}",
            "transactional_message": "Les messages de service (commandes, livraisons) {by}",
            "marketing": "Les offres et actualités, sur tous les canaux",
            "channel": "Plus aucun message {by}, offres et messages de service compris",
        },
        "by": {"email": "par e-mail", "sms": "par SMS", "whatsapp": "sur WhatsApp", "push": "par notification",
               "messenger": "sur Messenger", "webhook": "sur ce canal"},
        "confirm": "Confirmer",
        "choose": "Choisissez une des options ci-dessous.",
        "done_title": "C'est noté",
        "done": "Vous ne recevrez plus : {what}.",
        "done_more": "Vous pouvez fermer cette page.",
        "invalid_title": "Ce lien n'est pas valide",
        "invalid": "Il est incomplet ou a été modifié. Copiez l'adresse complète depuis le message reçu, ou "
                   "contactez-nous.",
    },
    "en": {
        "other": ("fr", "Français"),
        "unsubscribe_title": "Unsubscribe",
        "question": "What would you like to stop receiving?",
        "scope": {
            "marketing_message": "Offers and news {by}",
            "transactional_message": "Service messages (orders, deliveries) {by}",
            "marketing": "Offers and news, on every channel",
            "channel": "Every message {by}, offers and service messages alike",
        },
        "by": {"email": "by email", "sms": "by SMS", "whatsapp": "on WhatsApp", "push": "by push notification",
               "messenger": "on Messenger", "webhook": "on this channel"},
        "confirm": "Confirm",
        "choose": "Choose one of the options below.",
        "done_title": "You are unsubscribed",
        "done": "You will no longer receive: {what}.",
        "done_more": "You can close this page.",
        "invalid_title": "This link is not valid",
        "invalid": "It is incomplete or was changed. Copy the full address from the message you received, or "
                   "contact us.",
    },
}

_PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }}</title>
<style>
body { font: 1.125rem/1.5 system-ui, sans-serif; color: #111; background: #fff; margin: 0; }
main { max-width: 36rem; margin: 2rem auto; padding: 0 1rem; }
fieldset { border: 1px solid #555; padding: 1rem; margin: 0 0 1rem; }
label { display: block; padding: .5rem 0; }
input[type=radio] { width: 1.25rem; height: 1.25rem; vertical-align: middle; margin-right: .5rem; }
button { font: inherit; padding: .6rem 1.4rem; background: #0b57d0; color: #fff; border: 0; border-radius: 4px; }
.error { color: #a00000; font-weight: bold; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>
{% endfor %}
{% if choices %}
<form method="post">
<fieldset>
<legend>{{ question }}</legend>
{% for value, label in choices %}
<label><input type="radio" name="scope" value="{{ value }}"{% if loop.first %} checked{% endif %}> {{ label }}</label>
{% endfor %}
</fieldset>
<button type="submit">{{ confirm }}</button>
</form>
{% endif %}
<p><a href="?lang={{ other[0] }}" lang="{{ other[0] }}" hreflang="{{ other[0] }}">{{ other[1] }}</a></p>
</main>
</body>
</html>
"""
_TEMPLATE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(_PAGE)


def language(request: web.Request, customer_locale: str | None = None) -> str:
    """`?lang=`, else the customer's locale if French or English, else the browser's preferred of the two."""
    asked = request.query.get("lang", "")
    if asked in LANGUAGES:
        return asked
    if customer_locale and (spoken := customer_locale[:2].lower()) in LANGUAGES:
        return spoken
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if (spoken := tag.strip()[:2].lower()) in LANGUAGES and quality > 0:
            ranked.append((-quality, position, spoken))
    return min(ranked)[2] if ranked else "en"


def scope_label(lang: str, scope: str, channel: str) -> str:
    """What an unsubscribe scope means, in words: `marketing_message` on e-mail → "Offers and news by email"."""
    texts = TEXTS[lang]
    return str(texts["scope"][scope]).format(by=texts["by"].get(channel, texts["by"]["webhook"]))


def page(lang: str, title: str, paragraphs: Sequence[str], *, status: int = 200,
         choices: Sequence[tuple[str, str]] = (), error: str | None = None) -> web.Response:
    texts = TEXTS[lang]
    text = _TEMPLATE.render(lang=lang, title=title, paragraphs=paragraphs, choices=choices, error=error,
                            question=texts["question"], confirm=texts["confirm"], other=texts["other"])
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Robots-Tag": "noindex"})


def invalid_link(request: web.Request) -> web.Response:
    """The answer to a token that is not one of ours: a 404 page, never a redirect."""
    lang = language(request)
    return page(lang, TEXTS[lang]["invalid_title"], [TEXTS[lang]["invalid"]], status=404)
