"""Message templates: locale fallback, strict rendering, and load-time problems located to the line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from omnicanal.channels import CHANNELS
from omnicanal.errors import ConfigError, Problem, TemplateError
from omnicanal.render import TemplateCatalog

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

CART_DISCOUNT = """\
fr:
  push:
    title: "{{ customer.first_name }}, votre panier vous attend"
    body: "-{{ data.percent }} % sur {{ event.properties.items[0].name }}"
    data: {url: "https://shop.example/cart/{{ vars.cart_id }}", code: "{{ data.code }}"}
en:
  push:
    title: "{{ customer.first_name }}, your cart is waiting"
    body: "{{ data.percent }}% off {{ event.properties.items[0].name }}"
  sms:
    body: "  {{ data.percent }}% off, {{ customer.first_name }}  "
"""


def catalog(tmp_path: Path, **files: str) -> TemplateCatalog:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return TemplateCatalog.load(tmp_path)


def problems(tmp_path: Path, **files: str) -> list[Problem]:
    with pytest.raises(TemplateError) as raised:
        catalog(tmp_path, **files)
    return raised.value.problems


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer": {"id": "c42", "locale": "fr", "first_name": "Léa"},
        "event": {
            "name": "cart_abandoned",
            "properties": {"items": [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}], "total": 89.0},
        },
        "vars": {"cart_id": "981"},
        "data": {"percent": "10", "code": "LUMIERE10"},
        "now": None,
        "locale": "fr",
    }
    return base | overrides


def test_channel_fields_name_every_channel() -> None:
    assert set(CHANNELS) == {"sms", "whatsapp", "push", "email", "webhook", "messenger", "inbox"}
    assert CHANNELS["inbox"].required == {"title", "body"} and CHANNELS["inbox"].optional == {"url", "image"}
    assert CHANNELS["push"].required == {"title", "body"}
    assert CHANNELS["push"].mappings == {"data"}
    assert CHANNELS["email"].fields == {"subject", "text", "html"}


def test_renders_each_locale_its_own_variant(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    fr = templates.render("cart_discount", "push", "fr", scope())
    en = templates.render("cart_discount", "push", "en", scope())
    assert (fr.template, fr.channel, fr.locale) == ("cart_discount", "push", "fr")
    assert fr.content == {
        "title": "Léa, votre panier vous attend",
        "body": "-10 % sur Sneakers",
        "data": {"url": "https://shop.example/cart/981", "code": "LUMIERE10"},
    }
    assert en.locale == "en"
    assert en.content == {"title": "Léa, your cart is waiting", "body": "10% off Sneakers"}


@pytest.mark.parametrize(
    ("asked", "used"),
    [("fr-CA", "fr"), ("fr_ca", "fr"), ("FR", "fr"), ("de", "en"), ("de-AT", "en"), (None, "en"), ("", "en")],
)
def test_locale_falls_back_to_language_then_default(tmp_path: Path, asked: str | None, used: str) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    assert templates.render("cart_discount", "push", asked, scope()).locale == used


def test_regional_variant_wins_over_its_language(tmp_path: Path) -> None:
    templates = catalog(tmp_path, hello="""\
        en: {sms: {body: "Hello"}}
        fr: {sms: {body: "Bonjour"}}
        fr-CA: {sms: {body: "Allô"}}
        """)
    assert templates.render("hello", "sms", "fr-CA", scope()).content == {"body": "Allô"}
    assert templates.render("hello", "sms", "fr-FR", scope()).content == {"body": "Bonjour"}
    assert templates.locales("hello") == {"en", "fr", "fr-CA"}


def test_channel_only_in_default_locale_is_used_for_every_locale(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    rendered = templates.render("cart_discount", "sms", "fr", scope())
    assert rendered.locale == "en"
    assert rendered.content == {"body": "10% off, Léa"}  # single-line fields are stripped


def test_scope_locale_is_the_variant_locale(tmp_path: Path) -> None:
    templates = catalog(tmp_path, price="""\
        en: {sms: {body: "{{ event.properties.total | money(locale=locale) }}"}}
        fr: {sms: {body: "{{ event.properties.total | money(locale=locale) }}"}}
        """)
    assert templates.render("price", "sms", "fr", scope(locale="de")).content["body"] == "89,00\u00a0€"
    assert templates.render("price", "sms", "de", scope(locale="de")).content["body"] == "€89.00"


def test_catalog_queries(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    assert templates.names() == {"cart_discount"}
    assert templates.channels("cart_discount") == frozenset({"push", "sms"})
    assert templates.locales("cart_discount") == {"fr", "en"}
    assert templates.channels("nope") is None
    assert templates.locales("nope") == frozenset()


def test_unknown_template_or_channel_is_a_template_error(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    with pytest.raises(TemplateError, match=r"no template named 'cart_discont' \(did you mean 'cart_"):
        templates.render("cart_discont", "push", "fr", scope())
    with pytest.raises(TemplateError, match="template cart_discount has no email variant"):
        templates.render("cart_discount", "email", "fr", scope())


def test_missing_variable_names_template_locale_channel_field_and_line(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    with pytest.raises(TemplateError) as raised:
        templates.render("cart_discount", "push", "fr-CA", scope(customer={"id": "c42"}))
    assert raised.value.problems == [Problem(
        str(tmp_path / "cart_discount.yaml"), 3,
        "template cart_discount (fr, push.title): 'dict object' has no attribute 'first_name'",
    )]


def test_missing_variable_in_a_mapping_field(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart_discount=CART_DISCOUNT)
    with pytest.raises(TemplateError, match=r"cart_discount.yaml:5: .*\(fr, push\.data\.code\): .* 'code'"):
        templates.render("cart_discount", "push", "fr", scope(data={"percent": "10"}))


def test_missing_variable_in_a_block_is_located_to_its_own_line(tmp_path: Path) -> None:
    templates = catalog(tmp_path, mail="""\
        en:
          email:
            subject: Hi
            text: |
              Hello,

              {{ customer.nickname }}
        """)
    with pytest.raises(TemplateError) as raised:
        templates.render("mail", "email", "en", scope())
    assert raised.value.problems[0].line == 7


def test_any_failure_while_rendering_is_a_template_error(tmp_path: Path) -> None:
    templates = catalog(tmp_path, evil="""\
        en:
          sms: {body: "{{ event.properties.items.append(1) }}"}
          whatsapp: {body: "{{ 1 / 0 }}"}
        """)
    with pytest.raises(TemplateError, match=r"evil.yaml:2: template evil \(en, sms.body\): SecurityError"):
        templates.render("evil", "sms", "en", scope())
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        templates.render("evil", "whatsapp", "en", scope())


def test_message_text_rendering_empty_is_an_error(tmp_path: Path) -> None:
    templates = catalog(tmp_path, empty="""\
        en: {sms: {body: "{{ data.note }}"}, push: {title: T, body: B, data: {url: "{{ data.note }}"}}}
        """)
    with pytest.raises(TemplateError, match="renders to an empty text"):
        templates.render("empty", "sms", "en", scope(data={"note": "  "}))
    assert templates.render("empty", "push", "en", scope(data={"note": ""})).content["data"] == {"url": ""}


def test_event_property_named_items_is_the_data_not_the_method(tmp_path: Path) -> None:
    templates = catalog(tmp_path, cart="""\
        en:
          email:
            subject: "{{ event.properties.items | length }} items"
            text: |
              {% for item in event.properties.items %}
              - {{ item.name }}
              {% endfor %}
        """)
    content = templates.render("cart", "email", "en", scope()).content
    assert content == {"subject": "1 items", "text": "- Sneakers"}


def test_html_is_autoescaped_and_text_is_not(tmp_path: Path) -> None:
    templates = catalog(tmp_path, mail="""\
        en:
          email:
            subject: "{{ data.name }}"
            text: |
              Dear {{ data.name }},
              thanks.
            html: |
              <p>Dear {{ data.name }},</p>
              <p>thanks.</p>
        """)
    content = templates.render("mail", "email", "en", scope(data={"name": "<script>x</script>"})).content
    assert content["subject"] == "<script>x</script>"
    assert content["text"] == "Dear <script>x</script>,\nthanks."
    assert content["html"] == "<p>Dear &lt;script&gt;x&lt;/script&gt;,</p>\n<p>thanks.</p>"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("en:\n  sms: {body: [unclosed\n", 3, "YAML syntax error"),
        ("- en\n- fr\n", 1, "a template file is a mapping of locales"),
        ("en:\n  sms: {body: hi}\nfrench:\n  sms: {body: salut}\n", 3, "'french' is not a locale"),
        ("en:\n  sms: {body: hi}\nfr: hello\n", 3, "fr: expected a mapping of channels, got str 'hello'"),
        ("en:\n  sms: {body: hi}\n  pussh: {title: t}\n", 3,
         "en: unknown channel 'pussh' (did you mean 'push'? expected one of: email, inbox, messenger, push, "
         "sms, webhook, whatsapp)"),
        ("en:\n  push:\n    title: t\n    body: b\n    titel: x\n", 5,
         "en.push.titel: unknown field (did you mean 'title'?"),
        ("en:\n  email:\n    subject: s\n", 2, "en.email: missing required field 'text'"),
        ("en:\n  sms:\n    body: 42\n", 3,
         "en.sms.body: expected a template string, got int '42' (quote it)"),
        ("en:\n  sms: body\n", 2, "en.sms: expected a mapping of fields (body), got str 'body'"),
        ("en:\n  push: {title: t, body: b, data: [x]}\n", 2, "en.push.data: expected a mapping of names"),
        ("en:\n  push: {title: t, body: b, data: {n: 1}}\n", 2, "en.push.data.n: expected a template string"),
        ("en:\n  sms:\n    body: 'Hi {{ customer.first_name }'\n", 3,
         "template bad (en, sms.body): Jinja2 syntax error: unexpected '}'"),
        ("en:\n  email:\n    subject: s\n    text: |\n      Hi\n\n      {% if x %}\n", 7,
         "template bad (en, email.text): Jinja2 syntax error: Unexpected end of template"),
        ("en:\n  sms: {body: a}\n  sms: {body: b}\n", 3, "duplicate key 'sms'"),
        ("en:\n  sms: {body: hi}\nfr:\n  sms: {body: salut}\n  push: {title: t, body: b}\n", 5,
         "fr.push: no push variant in the default locale 'en'"),
    ],
)
def test_each_load_problem_is_located(tmp_path: Path, text: str, line: int, message: str) -> None:
    (found,) = problems(tmp_path, bad=text)
    assert (found.path, found.line) == (str(tmp_path / "bad.yaml"), line)
    assert message in found.message


def test_variants_share_fields_through_anchors_and_merge_keys(tmp_path: Path) -> None:
    """`whatsapp: *sms` is the SMS variant again; `push: {<<: *sms, title: Hi}` is it with a title (it was
    `unknown field <<`); a field written next to `<<` overrides the merged one; the first of `<<: [*a, *b]` wins."""
    templates = catalog(tmp_path, shared="""\
        en:
          sms: &sms {body: "Hello {{ customer.first_name }}"}
          whatsapp: *sms
          push: {<<: *sms, title: Hi}
          email: {<<: [{subject: First, text: a}, {subject: Second, text: b}], text: "Bye {{ customer.first_name }}"}
        """)
    content = {channel: templates.render("shared", channel, "en", scope()).content
               for channel in ("sms", "whatsapp", "push", "email")}
    assert content == {"sms": {"body": "Hello Léa"}, "whatsapp": {"body": "Hello Léa"},
                       "push": {"body": "Hello Léa", "title": "Hi"}, "email": {"subject": "First", "text": "Bye Léa"}}
    (tmp_path / "bad").mkdir()
    (found,) = problems(tmp_path / "bad", bad="en:\n  sms: {<<: [x], body: b}\n")
    assert (found.line, found.message) == (2, "`<<` merges a mapping, or a list of mappings, into this one")


def test_missing_default_variant_says_how_to_fix(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, bad="fr:\n  sms: {body: salut}\n")
    assert found.line == 2
    assert found.message.endswith("add en.sms")


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        a="en:\n  sms: {body: 1}\n  push: {title: t}\n",
        b="en:\n  email: {subject: '{{ x', text: t}\n",
        ok="en:\n  sms: {body: hi}\n",
    )
    assert [(Path(p.path).name, p.line) for p in found] == [("a.yaml", 2), ("a.yaml", 3), ("b.yaml", 2)]


def test_bad_file_names_are_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("ignored: not a template")
    found = problems(tmp_path, **{"Cart": "en: {sms: {body: hi}}\n"})
    assert [Path(p.path).name for p in found] == ["Cart.yaml"]
    (tmp_path / "Cart.yaml").unlink()
    (tmp_path / "cart.yml").write_text("en: {sms: {body: hi}}\n")
    assert "named <name>.yaml" in problems(tmp_path)[0].message


def test_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OMNICANAL_TEMPLATES_DIR"):
        TemplateCatalog.load(tmp_path / "missing")


# --- the shipped templates ------------------------------------------------------------------------------

ITEMS = [
    {"sku": "SKU-1", "name": "Sneakers <Édition> Lumière", "price": 89.0},
    {"sku": "SKU-2", "name": "Plaid en lin", "price": 1250.5},
]
CART = {"items": ITEMS, "total": 1339.5}
PICKUP = {"order_id": "A-1042", "store": "Lyon Part-Dieu"}
ORDER_IN_STORE = {"order_id": "A-1042", "channel": "store", "store": "Lyon Part-Dieu", "items": ITEMS,
                  "total": 1339.5}
ORDER_ONLINE = {"order_id": "W-77", "channel": "web", "items": ITEMS[:1], "total": 89.0}
SHIPPED_EVENTS: dict[str, list[dict[str, Any]]] = {
    "cart_discount": [CART],
    "cart_reminder": [CART, {"items": ITEMS[:1], "total": 89.0}],
    "order_thanks": [ORDER_IN_STORE, ORDER_ONLINE],
    "click_collect_ready": [PICKUP],
    "click_collect_reminder": [PICKUP],
    "click_collect_thanks": [PICKUP],
    "welcome": [{}],
    "welcome_tips": [{}],
    "welcome_offer": [{}],
    "viewed_digest": [{}],
}
DIGESTED = [{"sku": "A", "name": "<Édition> Robe", "price": 120.0, "sale_price": 90.0},
            {"sku": "B", "name": "Foulard", "price": 40.0}]
TEMPLATE_DATA: dict[str, dict[str, Any]] = {"viewed_digest": {"items": DIGESTED, "count": 2}}
"""Templates fed by the step's `data` (a digest's collected items) rather than by the event."""


@pytest.fixture(scope="module")
def shipped() -> TemplateCatalog:
    return TemplateCatalog.load(REPO_TEMPLATES)


def test_shipped_templates_are_the_documented_set(shipped: TemplateCatalog) -> None:
    assert shipped.names() == set(SHIPPED_EVENTS)
    for name in shipped.names():
        assert shipped.locales(name) == {"fr", "en"}, name


@pytest.mark.parametrize("name", sorted(SHIPPED_EVENTS))
@pytest.mark.parametrize("customer", [{"id": "c42", "locale": "fr", "first_name": "Léa", "tier": "gold"},
                                      {"id": "c43", "locale": "en"}])
@pytest.mark.parametrize("data", [{"percent": "15", "code": "VIP15"}, {}])
def test_every_shipped_variant_renders(
    shipped: TemplateCatalog, name: str, customer: dict[str, Any], data: dict[str, str]
) -> None:
    for properties in SHIPPED_EVENTS[name]:
        for channel in sorted(shipped.channels(name) or ()):
            for locale in ("fr", "en"):
                event = {"name": "event", "properties": properties}
                variables = scope(customer=customer, event=event, data={**data, **TEMPLATE_DATA.get(name, {})})
                rendered = shipped.render(name, channel, locale, variables)
                assert rendered.locale == locale
                for field, value in rendered.content.items():
                    texts = value.values() if isinstance(value, dict) else [value]
                    for text in texts:
                        assert text and text == text.strip(), (name, channel, locale, field)
                        assert "None" not in text and "{" not in text, (name, channel, locale, field, text)
                if channel == "email" and "items" in properties:
                    assert "&lt;Édition&gt;" in rendered.content["html"]
                    assert "<Édition>" in rendered.content["text"]


def test_every_shipped_field_renders_as_jinja_itself_does(shipped: TemplateCatalog) -> None:
    """Fields render through a light context (and fields without a tag are kept as text): the same text as
    Jinja's own `Template.render`, for every field of every shipped variant, `{% set %}` blocks included."""
    customer = {"id": "c42", "locale": "fr", "first_name": "Léa"}
    checked = constants = 0
    for name in sorted(shipped.names()):
        variables = scope(customer=customer, event={"name": "event", "properties": SHIPPED_EVENTS[name][0]},
                          data={"percent": "15", "code": "VIP15", **TEMPLATE_DATA.get(name, {})}, locale="fr")
        for locales in shipped._templates[name].values():
            for variant in locales.values():
                for compiled in variant.values():
                    for field in compiled.values() if isinstance(compiled, dict) else [compiled]:
                        assert field.render(variables) == field.template.render(variables), field.where
                        checked += 1
                        constants += field.constant is not None
    assert checked > 100 and 0 < constants < checked  # both paths were taken


def test_a_failing_field_is_located_by_the_fast_path_as_by_jinja(tmp_path: Path) -> None:
    templates = catalog(tmp_path, t="""\
        en:
          email:
            subject: "Hello"
            text: |
              {% set total = event.properties.total %}
              Line two
              {{ total / 0 }}
        """)
    with pytest.raises(TemplateError) as raised:
        templates.render("t", "email", "en", scope(event={"properties": {"total": 1}}))
    assert raised.value.problems[0].line == 7
    assert "ZeroDivisionError" in raised.value.problems[0].message
