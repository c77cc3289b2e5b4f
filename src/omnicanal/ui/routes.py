"""The dashboard's routes under /ui, each view behind the gate (session.py), and the login and logout forms.

A view answers a Page (rendered here, with what every page shares) or a response of its own (the JSON its
script polls, a redirect). Without access, a page request goes to the login form and a JSON request gets 401;
a wrong key in the headers gets 401 either way, and a key (or the session of one) without `ui:read` 403.
Errors become pages here (404, 422, 503), not the API's JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from omnicanal.access import CALLER, WORKSPACE, KeyRings
from omnicanal.api.errors import read_form
from omnicanal.engine.deployment import Deployment
from omnicanal.errors import InputError, NotFound, StoreUnavailable
from omnicanal.scopes import Scope
from omnicanal.store.overview import OverviewStore
from omnicanal.store.timeline_pages import TimelinePages
from omnicanal.ui import customers, journeys, operations, preview
from omnicanal.ui.pages import Page, environment, respond, secured
from omnicanal.ui.session import (
    COOKIE_PATH,
    CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    Gate,
    new_nonce,
)
from omnicanal.ui.state import DASHBOARDS, Dashboard, dashboard_of

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"

View = Callable[[web.Request, Dashboard], Awaitable[Page | web.StreamResponse]]


def serves(path: str) -> bool:
    """Whether a path is the dashboard's (the API's key check leaves those to the dashboard's gate)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path only (never another site: no open redirect; no dot segment
    either, which the browser resolves out of the dashboard: /ui/../../x is /x)."""
    if not target or "\\" in target or "//" in target:
        return PREFIX
    path = unquote(target.split("?", 1)[0]).lower()  # %2e%2e and %2E%2E are dot segments to a browser too
    if serves(path) and not {".", ".."} & set(path.split("/")):
        return target
    return PREFIX


async def _render(request: web.Request, page: Page, **extra: Any) -> web.Response:
    """The page, with what the layout needs (the logout form's CSRF token), setting this browser's CSRF
    cookie the first time."""
    dashboard = dashboard_of(request)
    nonce = request.cookies.get(CSRF_COOKIE) or new_nonce()
    common = {"open": await dashboard.gate.open(), "csrf": dashboard.gate.csrf_token(nonce), "path": request.path,
              "workspace": request.get(WORKSPACE) if len(request.app[DASHBOARDS]) > 1 else None,
              "static": f"{PREFIX}/static", **extra}
    response = respond(dashboard.templates, page, common)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, nonce, path=COOKIE_PATH, httponly=True, samesite="Strict",
                            secure=request.secure)
    return response


def _wants_json(request: web.Request) -> bool:
    return request.path.endswith(".json")


LACKS_SCOPE = f"this API key lacks the scope {Scope.UI_READ.value!r} the dashboard needs"


async def _refused(request: web.Request, access: Access) -> web.StreamResponse:
    if access is Access.FORBIDDEN:
        if _wants_json(request):
            return secured(web.json_response({"error": "forbidden", "message": LACKS_SCOPE,
                                              "scope": Scope.UI_READ.value}, status=403))
        return await _render(request, Page("login.html", {"next": request.path_qs, "problem": LACKS_SCOPE}, 403))
    if _wants_json(request):
        message = "wrong API key" if access is Access.WRONG else "send an API key: Authorization: Bearer <key>"
        return secured(web.json_response({"error": "unauthorized", "message": message}, status=401))
    if access is Access.WRONG:
        return await _render(request, Page("login.html", {"next": request.path_qs, "problem": "wrong API key"},
                                           401))
    raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs, safe='')}")


def guarded(view: View) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        verdict = await dashboard_of(request).gate.access(request)
        if verdict.access is not Access.GRANTED or verdict.caller is None:
            return await _refused(request, verdict.access)
        request[CALLER], request[WORKSPACE] = verdict.caller, verdict.caller.workspace
        try:
            answer = await view(request, dashboard_of(request))  # the viewer's workspace's, now it is known
        except NotFound as exc:
            answer = Page("problem.html", {"title": "Not found", "problems": [str(exc)]}, 404)
        except InputError as exc:
            answer = Page("problem.html", {"title": "Invalid request",
                                           "problems": [f"{e['field']}: {e['message']}" for e in exc.errors]}, 422)
        except StoreUnavailable:
            answer = Page("problem.html", {"title": "Store unavailable",
                                           "problems": ["Redis cannot answer now; reload in a few seconds"]}, 503)
        if isinstance(answer, Page):
            return await _render(request, answer)
        return secured(answer)

    return handler


async def login_form(request: web.Request) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    target = _safe_next(request.query.get("next"))
    if (await dashboard.gate.access(request)).access is Access.GRANTED:
        raise web.HTTPSeeOther(target)
    return await _render(request, Page("login.html", {"next": target, "problem": None}))


async def login(request: web.Request) -> web.StreamResponse:
    """Check the key; on success the session cookie, and back to the page that asked for it."""
    dashboard = dashboard_of(request)
    form = await read_form(request)
    target = _safe_next(str(form.get("next", "")))
    if not dashboard.gate.csrf_valid(request, str(form.get("csrf", ""))):
        return await _render(request, Page("login.html", {"next": target, "problem": (
            "this form expired or was sent from another site: log in again from this page")}, 403))
    verdict = await dashboard.gate.check_key(str(form.get("key", "")))
    if verdict.access is not Access.GRANTED or verdict.caller is None:
        problem, status = (LACKS_SCOPE, 403) if verdict.access is Access.FORBIDDEN else ("wrong API key", 401)
        return await _render(request, Page("login.html", {"next": target, "problem": problem}, status))
    response = web.HTTPSeeOther(target)
    response.set_cookie(SESSION_COOKIE, dashboard.gate.session_for(verdict.caller), path=COOKIE_PATH, httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    form = await read_form(request)
    if not dashboard.gate.csrf_valid(request, str(form.get("csrf", ""))):
        return await _render(request, Page("problem.html", {"title": "Not logged out", "problems": [
            "this form expired or was sent from another site: log out again from a dashboard page"]}, 403))
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response


def setup(app: web.Application, deployment: Deployment, keys: KeyRings) -> None:
    """Serve the dashboard from `app`, under /ui, to the holders of `keys` with the scope `ui:read`: each sees
    their key's workspace only."""
    gate, templates = Gate(keys, deployment.settings), environment()
    app[DASHBOARDS] = {workspace: Dashboard(runtime, gate, templates, TimelinePages(runtime.redis, runtime.keys),
                                            OverviewStore(runtime.redis, runtime.keys))
                       for workspace, runtime in deployment.runtimes.items()}
    pages: list[tuple[str, View]] = [
        ("", journeys.journeys_page),
        ("/journeys", journeys.journeys_page),
        ("/journeys/{journey_id}", journeys.journey_page),
        ("/journeys/{journey_id}/counts.json", journeys.journey_counts),
        ("/customers", customers.customers_page),
        ("/customers/{customer_id}", customers.customer_page),
        ("/operations", operations.operations_page),
        ("/preview", preview.preview_page),
    ]
    for path, view in pages:
        app.router.add_get(PREFIX + path, guarded(view))
    app.router.add_get(f"{PREFIX}/login", login_form)
    app.router.add_post(f"{PREFIX}/login", login)
    app.router.add_post(f"{PREFIX}/logout", logout)
    app.router.add_static(f"{PREFIX}/static", STATIC)
