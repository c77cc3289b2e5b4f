"""The preview page: any template rendered for a stored customer (or the simulator's default customer) on each
of its channels and locales, exactly as a send step renders it (render.py's TemplateCatalog.render, the same
scope). A variant that cannot render is shown with its problems as `file:line: message`, as `omnicanal validate`
prints them, instead of a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from omnicanal.api.customers import profile_fields, resolve_customer
from omnicanal.api.schemas import CustomerIn
from omnicanal.codec import loads
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import NotFound, TemplateError
from omnicanal.journey.state import customer_view
from omnicanal.render import Rendered
from omnicanal.simulate import DEFAULT_CUSTOMER
from omnicanal.timestamps import iso
from omnicanal.ui.pages import Page
from omnicanal.ui.state import Dashboard

JSON_FIELDS = ("properties", "vars", "data")


@dataclass(frozen=True, slots=True)
class Variant:
    channel: str
    locale: str
    rendered: Rendered | None
    problems: list[str]


def _json_fields(query: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The JSON objects of the form (event properties, vars, data), and a problem for each that is not one."""
    values: dict[str, dict[str, Any]] = {}
    problems = []
    for name in JSON_FIELDS:
        text = query.get(name, "").strip() or "{}"
        try:
            value = loads(text)
        except ValueError as exc:
            problems.append(f"{name}: not JSON ({exc})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{name}: a JSON object, e.g. {{\"total\": 89}}")
            continue
        values[name] = value
    return values, problems


async def _customer(runtime: Runtime, given: str, now: float) -> tuple[str, dict[str, Any]]:
    """(customer id, `customer` of templates) of a stored customer, or of the simulator's default one."""
    if not given:
        body = CustomerIn.model_validate(DEFAULT_CUSTOMER)
        fields = profile_fields(body, "preview", now, runtime.settings.default_region)
        return "simulated", customer_view("simulated", fields, body.attributes or {})
    customer_id = await resolve_customer(runtime, given)
    profile, attributes, _ = await runtime.customers.profile(customer_id)
    return customer_id, customer_view(customer_id, profile, attributes)


def _variants(runtime: Runtime, template: str, scope: dict[str, Any]) -> list[Variant]:
    catalog = runtime.engine.context.templates
    variants = []
    for channel in sorted(catalog.channels(template) or ()):
        for locale in sorted(catalog.locales(template)):
            try:
                rendered = catalog.render(template, channel, locale, scope)
            except TemplateError as exc:
                variants.append(Variant(channel, locale, None, [str(problem) for problem in exc.problems]))
                continue
            variants.append(Variant(channel, locale, rendered, []))
    return variants


async def preview_page(request: web.Request, dashboard: Dashboard) -> Page:
    runtime = dashboard.runtime
    catalog = runtime.engine.context.templates
    query = request.query
    template = query.get("template", "")
    form = {"template": template, "customer": query.get("customer", "").strip(),
            "event": query.get("event", "").strip(), **{name: query.get(name, "") for name in JSON_FIELDS}}
    context: dict[str, Any] = {"templates": sorted(catalog.names()), "form": form, "problems": [],
                               "variants": None, "customer_id": None, "customer_locale": None}
    if not template:
        return Page("preview.html", context)
    if template not in catalog.names():
        context["problems"] = [f"no template named {template!r}"]
        return Page("preview.html", context, 404)
    values, problems = _json_fields(query)
    now = runtime.clock.now()
    try:
        customer_id, customer = await _customer(runtime, form["customer"], now)
    except NotFound as exc:
        problems.append(f"customer: {exc}")
    if problems:
        context["problems"] = problems
        return Page("preview.html", context, 422)
    event = {"id": "preview", "name": form["event"] or "preview", "customer_id": customer_id,
             "properties": values["properties"], "timestamp": iso(now)}
    scope = {"customer": customer, "event": event, "vars": values["vars"], "data": values["data"],
             "now": datetime.fromtimestamp(now, UTC)}
    context.update(variants=_variants(runtime, template, scope), customer_id=customer_id,
                   customer_locale=customer.get("locale"))
    return Page("preview.html", context)
