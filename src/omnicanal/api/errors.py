"""Errors to HTTP responses, in one place: handlers raise, this middleware answers.

Every error body is JSON: `{"error": code, "message": text}` plus `errors: [{field, message}]` for invalid input,
`scope` for a key without the scope a route needs (403), `reason` for a signed request refused (401), and `id` for
an unexpected error (a 500), the id its traceback is logged under. No exception leaves as aiohttp's plain-text 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from omnicanal.api.schemas import MAX_DEPTH
from omnicanal.api.state import deployment_of
from omnicanal.codec import NonFinite, loads
from omnicanal.errors import (
    BadSignature,
    Conflict,
    Forbidden,
    InputError,
    InputTooLarge,
    NotFound,
    RateLimited,
    StoreUnavailable,
    Unauthorized,
)

log = structlog.get_logger("omnicanal.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def input_error(exc: ValidationError, prefix: str = "") -> InputError:
    """Pydantic's errors as `{field, message}` items, the field spelled as in the JSON body, under `prefix`
    (`events.3` for an event of a batch, which may itself be the field: `events.3` is not an object)."""
    return InputError([
        {"field": ".".join(str(part) for part in (prefix, *err["loc"]) if part not in ("", "[key]")) or "body",
         "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ])


def with_retry_after(response: web.Response, seconds: float) -> web.Response:
    """The response, telling the client how many whole seconds to wait (at least one)."""
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except InputTooLarge as exc:
        return error_response(413, "too_large", str(exc), errors=exc.errors)
    except InputError as exc:
        return error_response(422, "invalid_input", str(exc), errors=exc.errors)
    except ValidationError as exc:
        converted = input_error(exc)
        return error_response(422, "invalid_input", str(converted), errors=converted.errors)
    except BadSignature as exc:
        return error_response(401, "unauthorized", str(exc), reason=exc.reason)
    except Unauthorized as exc:
        return error_response(401, "unauthorized", str(exc))
    except Forbidden as exc:
        return error_response(403, "forbidden", str(exc), scope=exc.scope)
    except RateLimited as exc:
        return with_retry_after(error_response(429, "rate_limited", str(exc)), exc.retry_after)
    except NotFound as exc:
        return error_response(404, "not_found", str(exc))
    except Conflict as exc:
        return error_response(409, "conflict", str(exc), errors=[{"field": exc.field, "message": str(exc)}])
    except StoreUnavailable as exc:
        log.error("store_unavailable", path=request.path, error=str(exc))
        response = error_response(503, "store_unavailable", f"the store cannot take requests now: nothing was "
                                  f"stored; retry in {math.ceil(exc.retry_after)} s")
        return with_retry_after(response, exc.retry_after)
    except web.HTTPRequestEntityTooLarge:
        limit = deployment_of(request).settings.max_body_bytes
        response = error_response(413, "body_too_large",
                                  f"the body is larger than {limit} bytes (OMNICANAL_MAX_BODY_BYTES)")
        response.force_close()  # the rest of the body is not read: the connection cannot carry another request
        return response
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # the body broke on the way: a chunk or its
        # compression not as announced (aiohttp's parser raises these while the handler reads the body)
        return error_response(400, "bad_request", f"the body could not be read ({_parser_said(exc)}): send it "
                              "whole, compressed only as its Content-Encoding says (gzip or deflate)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        if "Allow" in exc.headers:  # a 405 says which methods the path has
            response.headers["Allow"] = exc.headers["Allow"]
        if isinstance(exc, BodyTimeout):
            response.force_close()
        return response
    except Exception:  # a bug, or an error no clause above knows: logged once, with an id the client can quote
        error_id = secrets.token_hex(8)
        log.exception("request_failed", error_id=error_id, method=request.method, path=request.path)
        return error_response(500, "internal", f"an unexpected error; the server logged it with id {error_id}",
                              id=error_id)


def _parser_said(exc: Exception) -> str:
    """What aiohttp's parser found wrong, on one line, without its `400, message:` preamble."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return " ".join(text.split()).removeprefix("400, message: ") or type(exc).__name__


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """The body must arrive within OMNICANAL_BODY_TIMEOUT: a client that sends it slowly would hold a connection
    (and the handler) open as long as it likes. Too late: 408, and the connection is closed."""
    limit = deployment_of(request).settings.body_timeout
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:  # refused at once, not after 30 s of waiting
        request.content.feed_eof()  # for a body that would be refused once read anyway
        raise web.HTTPRequestEntityTooLarge(max_size=request.client_max_size, actual_size=declared)
    try:
        async with asyncio.timeout(limit):
            yield
    except TimeoutError as exc:
        request.content.feed_eof()  # the rest is not waited for (aiohttp would linger for it after the answer)
        raise BodyTimeout(text=f"the body did not arrive within {limit:g} s (OMNICANAL_BODY_TIMEOUT)") from exc


class BodyTimeout(web.HTTPRequestTimeout):
    """A body that did not arrive in time: answered 408, and the connection closed."""


async def read_form(request: web.Request) -> Mapping[str, Any]:
    """The form posted (urlencoded or multipart), within OMNICANAL_BODY_TIMEOUT; a 400 saying what is wrong with it
    (a multipart body without its boundary, a part that does not parse) rather than the parser's exception."""
    async with body_deadline(request):
        try:
            return await request.post()
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"the body is not a form: {exc}; send application/x-www-form-urlencoded, "
                                          "or multipart/form-data with its boundary") from exc


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 naming what is wrong with it."""
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise web.HTTPUnsupportedMediaType(text=f"send JSON with Content-Type: application/json, "
                                                f"not {request.content_type}")
    async with body_deadline(request):
        body = await request.read()
    try:
        return loads(body, finite=True)
    except NonFinite as exc:
        message = ("a number beyond ±1.8e308, which JSON readers take as Infinity: send it as text" if exc.huge
                   else "NaN and Infinity are not JSON numbers: send a number, or null")
        raise InputError([{"field": exc.path or "body", "message": message}]) from exc
    except ValueError as exc:  # not JSON, or not UTF-8
        if "integer string conversion" in str(exc):  # Python reads integers of at most 4,300 digits
            raise InputError([{"field": "body", "message": "a number with more than 4,300 digits: no value needs "
                                                           "one; send it as text"}]) from exc
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nested past what the parser follows (about a thousand levels)
        raise InputError([{"field": "body", "message": f"nested more than {MAX_DEPTH} levels deep"}]) from exc
