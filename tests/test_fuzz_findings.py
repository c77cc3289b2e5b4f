"""What the fuzzers found (test_fuzz_*.py), each pinned by the request that found it, shrunk: so that the fix holds
whatever the fuzzers happen to generate next time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import StartApi, write_journey
from omnicanal.errors import BudgetExceeded, ExpressionError, TemplateError
from omnicanal.expressions import Expression, TextTemplate
from omnicanal.render import TemplateCatalog
from test_fuzz_templates import catalog, scope

EVENT = {"name": "page_viewed", "customer_id": "c1"}


@pytest.mark.parametrize("after", [
    "717551058477323964922200064",  # past what Redis' Lua reads exactly: was a 500 (LRANGE refused it)
    "9" * 5000,  # past Python's 4,300 digits for int(): was a 500
    "\u00857",  # int() strips Unicode spaces: was read as 7
    "٣",  # int() reads other scripts' digits: was read as 3
    "-1", "1_000", " 1",
])
async def test_a_malformed_or_huge_outbox_position_is_422_naming_it(start_api: StartApi, after: str) -> None:
    api = await start_api()
    body = await api.request("GET", "/v1/outbox", 422, params={"after": after})
    assert body["errors"][0]["field"] == "after", body
    assert (await api.request("GET", "/v1/outbox", 200, params={"after": str(2**53)}))["messages"] == []


@pytest.mark.parametrize("before", ["²", "9" * 5000])
async def test_a_malformed_timeline_position_on_the_dashboard_is_422_not_500(start_api: StartApi,
                                                                             before: str) -> None:
    api = await start_api()
    await api.put_customer("c42", {"attributes": {"first_name": "Léa"}})
    response = await api.client.get("/ui/customers/c42", params={"before": before}, allow_redirects=False)
    assert response.status == 422, await response.text()


@pytest.mark.parametrize("timestamp", [0, 1700000000, "0", "1700000000.5", True])
async def test_an_event_timestamp_is_iso_text_never_a_number_guessed_as_seconds(start_api: StartApi,
                                                                                timestamp: object) -> None:
    """`0` was accepted, and the event dated 1 January 1970."""
    api = await start_api()
    body = await api.request("POST", "/v1/events", 422, json={**EVENT, "timestamp": timestamp})
    assert [e["field"] for e in body["errors"]] == ["timestamp"]
    assert "ISO 8601" in body["errors"][0]["message"]
    await api.request("POST", "/v1/events", 202, json={**EVENT, "timestamp": "2026-11-23T10:00:00Z"})


@pytest.mark.parametrize("consents", [{"sms": 0}, {"sms": "yes"}, {"sms": {"marketing": 1}},
                                      {"sms": {"newsletter": True}}, {"sms": None}])
async def test_a_consent_is_true_or_false_never_a_value_read_as_one(start_api: StartApi, consents: object) -> None:
    """`{"sms": 0}` was stored as a refusal, `"yes"` as a consent."""
    api = await start_api()
    body = await api.request("PUT", "/v1/customers/c1", 422, json={"consents": consents})
    assert [e["field"] for e in body["errors"]] == ["consents"]
    assert "use true or false" in body["errors"][0]["message"]


async def test_a_batch_event_that_is_not_an_object_is_named_by_its_index(start_api: StartApi) -> None:
    """The field was `events.0.`, with a dot and nothing after it."""
    api = await start_api()
    body = await api.request("POST", "/v1/events/batch", 422, json={"events": [None, [EVENT]]})
    assert [r["errors"][0]["field"] for r in body["results"]] == ["events.0", "events.1"]


async def test_the_document_describes_every_answer_the_fuzzer_met(start_api: StartApi) -> None:
    """A repeated idempotency key with another body (409), a body that is not JSON (415), a batch's own answer."""
    api = await start_api()
    spec = await api.request("GET", "/openapi.json", 200)
    events, batch = spec["paths"]["/v1/events"]["post"], spec["paths"]["/v1/events/batch"]["post"]
    assert {"409", "415"} <= set(events["responses"])
    await api.request("POST", "/v1/events", 202, json={**EVENT, "idempotency_key": "k1"})
    await api.request("POST", "/v1/events", 409, json={**EVENT, "idempotency_key": "k1", "properties": {"a": 1}})
    await api.request("POST", "/v1/events", 415, data="{}", headers={"Content-Type": "text/plain"})
    assert batch["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchResult"}
    assert {"accepted", "rejected", "results"} == set(spec["components"]["schemas"]["BatchResult"]["required"])
    outbox = {p["name"]: p["schema"] for p in spec["paths"]["/v1/outbox"]["parameters"]}
    assert outbox["after"]["maximum"] == 2**53


async def test_a_profile_with_every_field_null_is_a_profile_not_a_500(start_api: StartApi) -> None:
    """Found by schemathesis once the consent audit landed: `"consents": null` was read as consents to record."""
    api = await start_api()
    body = {"addresses": None, "attributes": None, "channel_preference": [], "consents": None, "locale": None,
            "timezone": None}
    assert (await api.request("PUT", "/v1/customers/0", 200, json=body))["customer_id"] == "0"
    assert (await api.request("GET", "/v1/audit", 200))["entries"] == []  # no consent changed: nothing audited


@pytest.mark.parametrize(("query", "status"), [
    ({"since": "0175-02-04T13:04:07-17:46"}, 200),  # before 1970: was a 500 (a negative stream id)
    ({"before": f"{2**64}-0"}, 422),  # past a stream id's 64 bits: was a 500
    ({"before": "1-²"}, 422),
])
async def test_the_audit_log_reads_any_range_it_is_given(start_api: StartApi, query: dict[str, str],
                                                         status: int) -> None:
    api = await start_api()
    await api.request("GET", "/v1/audit", status, params=query)


@pytest.mark.parametrize("source", ["[cycler]", "{'a': [joiner]}", "(1, namespace)", "[1, 2] | select('odd')",
                                    "[[1] | map('string')]", "namespace(total=1)", "{'a': namespace()}"])
def test_a_value_holding_a_class_or_function_is_not_data(source: str) -> None:
    """Found by the expression properties: `[cycler]` was a value, written `[<class 'jinja2.utils.Cycler'>]`, and
    a `select` not ended by `| list` was kept as `<generator object ...>` (and always true as a condition)."""
    with pytest.raises(ExpressionError, match="not data"):
        Expression(source).evaluate({})


NAMESPACE = "{% set ns = namespace(total=0) %}{% for i in [1, 2] %}{% set ns.total = ns.total + i %}{% endfor %}"


def test_a_namespace_is_not_data_but_what_it_keeps_is(tmp_path: Path) -> None:
    """`{{ namespace(a=1) }}` was written `<Namespace {'a': 1}>`, and a value `namespace(a=1)` stored as that text.
    A namespace is how a template keeps a value across a loop's iterations: its attributes are written, the
    namespace itself is refused as `[cycler]` is."""
    assert catalog(tmp_path, NAMESPACE + "{{ ns.total }}").render("fuzz", "sms", "en", scope()).content == {
        "body": "3"}
    for body in (NAMESPACE + "{{ ns }}", "{{ [namespace(a=1)] }}"):
        with pytest.raises(TemplateError, match=r"writes a namespace, not data: write the attribute it keeps"):
            catalog(tmp_path, body).render("fuzz", "sms", "en", scope())
    with pytest.raises(ExpressionError, match="is a namespace, not data: it would always hold"):
        Expression("namespace(a=0)").test({})


def test_a_text_template_has_a_budget_of_its_own_and_says_when_it_is_over() -> None:
    """A `fetch` URL was rendered on what the evaluation before it had left (operations, time, characters
    written), and a budget failure in it was an ExpressionError like any other."""
    url = TextTemplate("https://shop.example/{{ ('a' * 999999) | length }}")  # compiled once, with its journey
    Expression("(('a' * 999999) | length) + (('a' * 999999) | length)").evaluate({})  # ~4 of 5 million operations
    assert url.render({}) == "https://shop.example/999999"
    with pytest.raises(BudgetExceeded, match=r"over its budget: a repetition \(`\*`\) would have 2,000,000"):
        TextTemplate("https://shop.example/{{ 'a' * n }}").render({"n": 2_000_000})


@pytest.mark.parametrize("source", ["lipsum ~ ''", "'Dear ' ~ [cycler]", "customer.keys | string", "[lipsum] | join",
                                    "'%s' % joiner", "'%s' | format(lipsum)", "'{0.keys}'.format(customer)",
                                    "('{}' | safe).format(cycler)", "[1, 2] | select('odd') | string",
                                    "[lipsum] | map('upper') | list", "{'a': lipsum} | xmlattr"])
def test_a_text_is_made_of_data_only(tmp_path: Path, source: str) -> None:
    """Found while pinning the namespace: what `{{ lipsum }}` refused, `{{ lipsum ~ '' }}` wrote —
    `<function lipsum at 0x7f...>`, an address of the daemon's memory in a customer's message — and so did
    `| string`, `%`, `str.format` and every filter that makes a text."""
    with pytest.raises(ExpressionError, match=r"makes a text of .+, not data: "):
        Expression(source).evaluate({"customer": {"first_name": "Léa"}})
    with pytest.raises(TemplateError, match=r"makes a text of .+, not data: "):
        catalog(tmp_path, f"{{{{ {source} }}}}").render("fuzz", "sms", "en", scope())


@pytest.mark.parametrize(("body", "refusal"), [
    ("{{ range(3) }}", re.escape("writes a range, not data: end it with `| list`")),
    ("{{ customer.attributes.keys() }}", r"writes a view of a mapping \(dict_keys\), not data: end it with `\| list`"),
    ("{{ [customer.attributes.items()] }}", r"a view of a mapping \(dict_items\)"),
    ("{{ self }}", "writes an object TemplateReference, not data: name a key or attribute that holds data"),
    ("{% for x in [1] %}{{ loop }}{% endfor %}", r"writes the loop itself, not data: write one of its attributes"),
    ("{{ 'x' ~ range(2) }}", "makes a text of a range, not data"),
    ("{{ customer.attributes.values() | string }}", "makes a text of a view of a mapping"),
    ("{% for x in customer.items %}{{ x }}{% endfor %}", "loops over the function items, not data: call it"),
    ("{{ customer.attributes.keys() - [] }}", re.escape("writes a set, not data: end it with `| list`")),
])
def test_ranges_views_self_and_loop_are_not_data(tmp_path: Path, body: str, refusal: str) -> None:
    """Left by the first pass (a deny-list of what is not data): `{{ range(3) }}` wrote `range(0, 3)`, a mapping's
    `keys()` `dict_keys(['vip'])`, `{{ self }}` `<TemplateReference None>`. Data is now a list of what it is;
    `| list` makes the sequences data."""
    with pytest.raises(TemplateError, match=refusal):
        catalog(tmp_path, body).render("fuzz", "sms", "en", scope())
    for source in ("range(3)", "customer.attributes.keys()"):
        with pytest.raises(ExpressionError, match=re.escape("not data: end it with `| list`")):
            Expression(source).evaluate(scope())
    listed = catalog(tmp_path, "{{ range(3) | list }} {{ customer.attributes.items() | list }}")
    assert listed.render("fuzz", "sms", "en", {**scope(), "customer": {"attributes": {"vip": True}}}).content == {
        "body": "[0, 1, 2] [('vip', True)]"}


@pytest.mark.parametrize(("source", "text"), [
    ("'Dear ' ~ customer.first_name ~ ', -' ~ 15 ~ ' %'", "Dear Léa, -15 %"),
    ("'%s: %.2f' % (customer.first_name, 89.5)", "Léa: 89.50"),
    ("'{0[first_name]} {1}'.format(customer, [1, 2])", "Léa [1, 2]"),
    ("('<b>{}</b>' | safe).format('<i>')", "<b>&lt;i&gt;</b>"),
    ("event.properties['items'] | map(attribute='name') | join(', ')", "Sneakers"),
    ("customer.first_name | upper | center(7)", "  LÉA  "),
])
def test_texts_made_of_data_are_made_as_before(tmp_path: Path, source: str, text: str) -> None:
    assert Expression(source).evaluate(scope()) == text
    assert catalog(tmp_path, f"{{{{ {source} }}}}").render("fuzz", "sms", "en", scope()).content["body"] \
        == text.strip()


@pytest.mark.parametrize(("body", "refusal"), [
    ("{{ [1, 2] | unique }}", "writes a lazy sequence, not data: end it with `| list`"),
    ("{{ [1, 2] | reverse }}", "writes a lazy sequence, not data: end it with `| list`"),
    ("{{ [1, 2, 3] | batch(2) }}", "writes a lazy sequence, not data: end it with `| list`"),
    ("{{ [1, 2, 3] | slice(2) }}", "writes a lazy sequence, not data: end it with `| list`"),
    ("{{ {'a': 1} | items }}", "writes a lazy sequence, not data: end it with `| list`"),
    ("{{ 'ab'.split }}", "writes the function split, not data: call it"),
    ("{{ [1, 'x' | safe] }}", "writes a text marked safe (Markup) inside a list or mapping"),
])
def test_a_constant_that_is_not_data_is_refused_at_load_not_written_escaped(tmp_path: Path, body: str,
                                                                           refusal: str) -> None:
    """Jinja computes a constant `{{ }}` while compiling, and in an HTML field escapes it before the sandbox's
    finalize sees it: `{{ [1, 2] | unique }}` was sent as `&lt;generator object sync_do_unique at 0x7f...&gt;`.
    Refused at load, at its line, as a refusal at render says it (no "syntax error")."""
    (tmp_path / "fuzz.yaml").write_text(f"en:\n  email:\n    subject: s\n    text: t\n    html: |\n      <p>\n"
                                        f"      {body}</p>\n", encoding="utf-8")
    with pytest.raises(TemplateError) as refused:
        TemplateCatalog.load(tmp_path)
    [problem] = refused.value.problems
    assert (Path(problem.path).name, problem.line) == ("fuzz.yaml", 7), problem
    assert problem.message == f"template fuzz (en, email.html): {refusal}" or problem.message.startswith(
        f"template fuzz (en, email.html): {refusal}"), problem.message
    assert "syntax error" not in problem.message
    listed = catalog(tmp_path, "s", html="{{ [1, 2] | reverse | list }} {{ {'a': 1} | items | list }}")
    assert listed.render("fuzz", "email", "en", scope()).content["html"] == "[2, 1] [(&#39;a&#39;, 1)]"


@pytest.mark.parametrize(("body", "refusal"), [
    ("{{ [now] }}", r"writes a date and time \(datetime\) inside a list or mapping, which would write it in "
                    r"Python's notation: write it on its own, or join the items \(`\| join\(', '\)`\)"),
    ("{{ [customer.first_name | safe] }}", r"writes a text marked safe \(Markup\) inside a list or mapping"),
    ("{{ {'at': [now - now]} }}", r"writes a duration \(timedelta\) inside a list or mapping"),
    ("{{ [customer.nope] }}", r"writes data that is not there \('dict object' has no attribute 'nope'\) inside a "
                              r"list or mapping, which would write it in Python's notation: `\| default\(...\)`"),
    ("{% macro m() %}{{ varargs }}{% endmacro %}{{ m(now) }}", r"writes a date and time \(datetime\) inside"),
    ("{{ {'a': now} | dictsort }}", r"writes a date and time \(datetime\) inside"),
    ("{{ now | pprint }}", r"makes a text of a date and time \(datetime\) by Python's notation \(`\| pprint`\): "
                           r"write it without `\| pprint`"),
    ("{{ '%r' % now }}", r"by Python's notation \(`%r`\): write it with `%s`"),
    ("{{ ('<b>%r</b>' | safe) % now }}", r"by Python's notation \(`%r`\)"),
    ("{{ '%(a)r' | format(a=now) }}", r"by Python's notation \(`%r`\)"),
    ("{{ '%r' | format(now) }}", r"by Python's notation \(`%r`\)"),
    ("{{ '{!r}'.format(now) }}", r"by Python's notation \(`!r`\): drop the `!r`"),
    ("{{ '{!s}'.format([now]) }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ '%s' % [now] }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ '%s' | format([now]) }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ 'On ' ~ [now] }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ [[now]] | join(', ') }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ {'at': [now]} | xmlattr }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ {'at': [now]} | urlencode }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ [now] | string }}", r"makes a text of a date and time \(datetime\) inside a list or mapping"),
    ("{{ now.isocalendar() }}", r"writes a named tuple \(IsoCalendarDate\), which would be written in Python's "
                                r"notation: end it with `\| list`, or write one of its items"),
    ("{{ now.timetuple() }}", r"writes a named tuple \(struct_time\)"),
    ("{{ 'week ' ~ now.isocalendar() }}", r"makes a text of a named tuple \(IsoCalendarDate\)"),
    ("{% macro m() %}{{ caller }}{% endmacro %}{% call m() %}x{% endcall %}",
     r"writes the macro's caller, not data: call it: `caller\(\)`"),
    ("{% macro m() %}{{ m }}{% endmacro %}{{ m() }}", r"writes the macro m, not data: call it: `m\(\)`"),
])
def test_a_text_never_shows_python_s_notation_of_data(tmp_path: Path, body: str, refusal: str) -> None:
    """Found after the set: a list or mapping is written in Python's notation, which writes each item by its own —
    `[datetime.datetime(2027, 1, 15, 10, 0, tzinfo=...)]`, `[Markup('x')]`, `[Undefined]` — and so do `%r`, `!r`
    and `pprint`, even of a date on its own; a date's `isocalendar()` was written
    `datetime.IsoCalendarDate(year=2027, week=2, weekday=5)`, `{{ caller }}` named "the function Macro". A text
    is made of scalars, dates, and lists and mappings of scalars: anything else is refused, saying how to write
    it."""
    loaded = catalog(tmp_path, body, html=body)
    for channel in ("sms", "email"):
        with pytest.raises(TemplateError, match=refusal):
            loaded.render("fuzz", channel, "en", scope())


@pytest.mark.parametrize(("body", "text"), [
    ("{{ now.strftime('%d/%m') }}", "15/01"),
    ("{{ now }}", "2027-01-15 10:00:00+00:00"),
    ("{{ '%s' % customer.first_name }}", "Léa"),
    ("{{ '%s, %s' % (customer.first_name, now) }}", "Léa, 2027-01-15 10:00:00+00:00"),
    ("{{ '%(at)s' % {'at': now} }}", "2027-01-15 10:00:00+00:00"),
    ("{{ '%.2f' | format(event.properties.total) }}", "89.00"),
    ("{{ '%r' % customer.first_name }}", "'Léa'"),
    ("{{ [1, 'a'] | pprint }}", "[1, 'a']"),
    ("{{ '{0:%d/%m}'.format(now) }}", "15/01"),
    ("{{ event.properties['items'] | map(attribute='name') | join(', ') }}", "Sneakers"),
    ("{{ event.properties['items'] | join(', ', attribute='name') }}", "Sneakers"),
    ("{{ [now, now] | join(' / ') }}", "2027-01-15 10:00:00+00:00 / 2027-01-15 10:00:00+00:00"),
    ("{{ {'at': now} | xmlattr }}", 'at="2027-01-15 10:00:00+00:00"'),
    ("{{ [('at', now)] | urlencode }}", "at=2027-01-15+10%3A00%3A00%2B00%3A00"),
    ("{{ [1, 2] }} {{ {'a': 1} }} {{ (1, 'b') }}", "[1, 2] {'a': 1} (1, 'b')"),
    ("{{ event.properties['items'] | groupby('name') | list }}", "[('Sneakers', [{'name': 'Sneakers'}])]"),
    ("{{ now.isocalendar() | list }} {{ now.isocalendar()[1] }}", "[2027, 2, 5] 2"),
])
def test_texts_of_data_with_dates_are_made_as_before(tmp_path: Path, body: str, text: str) -> None:
    assert catalog(tmp_path, body).render("fuzz", "sms", "en", scope()).content["body"] == text


def test_a_value_holding_data_that_is_not_there_is_refused_when_made() -> None:
    """`[customer.nope]` was a value; storing it raised jinja2's UndefinedError, an untyped failure."""
    with pytest.raises(ExpressionError, match=r"holds data that is not there \('dict object' has no attribute "
                                              r"'nope'\): `\| default\(...\)` says what to use instead"):
        Expression("[customer.nope]").evaluate(scope())
    with pytest.raises(ExpressionError, match=r"by Python's notation \(`%r`\): write it with `%s`"):
        Expression("'%r' % now").evaluate(scope())


GROUPED = """
id: grouped
trigger: {event: grouped}
steps:
  - update:
      vars:
        groups: "event.properties['items'] | groupby('name') | list"
        week: "now.isocalendar()"
      customer:
        first_group: "event.properties['items'] | groupby('name') | first"
  - wait: 30d
"""


async def test_a_groupby_row_or_a_named_tuple_is_stored_as_a_list(project: Path, start_api: StartApi) -> None:
    """A `groupby` row kept by an `update` step was stored as the text `"('Sneakers', [{'name': 'Sneakers'}])"`,
    `now.isocalendar()` as `"datetime.IsoCalendarDate(year=2027, ...)"`: JSON has no tuples, and orjson wrote
    any but a plain one by its text. A tuple of any kind is stored as an array, as a plain one is."""
    write_journey(project, "grouped", GROUPED)
    api = await start_api()
    await api.put_customer("g1", {"attributes": {"first_name": "Léa"}})
    await api.event("grouped", "g1", properties={"items": [{"name": "Sneakers"}, {"name": "Bag"}]})
    await api.wait_until("g1", lambda es: any(e["kind"] == "journey" for e in es))
    await api.settled()
    customer = await api.request("GET", "/v1/customers/g1", 200)
    [instance] = customer["journeys"]
    assert instance["vars"]["groups"] == [["Bag", [{"name": "Bag"}]], ["Sneakers", [{"name": "Sneakers"}]]]
    year, week, weekday = instance["vars"]["week"]
    assert isinstance(year, int) and 1 <= week <= 53 and 1 <= weekday <= 7, instance["vars"]
    assert customer["attributes"]["first_group"] == ["Bag", [{"name": "Bag"}]]


@pytest.mark.parametrize(("body", "text"), [
    ("{% block greeting %}Hi {{ customer.first_name }}{% endblock %}", "Hi Léa"),
    ("{% block x %}{% endblock %}{{ customer.first_name }}", "Léa"),
    ("{% block greeting %}Hi{% endblock %}, {{ self.greeting() }}", "Hi, Hi"),
    ("{% for i in [1, 2] %}{% block item scoped %}{{ i }}{% endblock %}{% endfor %}", "12"),
])
def test_a_block_in_a_template_field_renders_its_content(tmp_path: Path, body: str, text: str) -> None:
    """`{% block x %}{% endblock %}` failed at render with a bare `KeyError: 'x'`: a field's render context had
    no blocks. It renders as a template on its own does: the block's content, where it stands."""
    loaded = catalog(tmp_path, body, html=body)
    assert loaded.render("fuzz", "sms", "en", scope()).content["body"] == text
    assert loaded.render("fuzz", "email", "en", scope()).content["html"] == text
