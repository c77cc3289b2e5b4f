"""The check of a signed request (signing.py) made with a key that signs its requests, before its handler runs.

The body is read here, once, within OMNICANAL_BODY_TIMEOUT: aiohttp keeps the bytes read, so the handler's own
`request.read()` (api/errors.read_json) gets the very bytes whose signature was checked."""

from __future__ import annotations

import time

from aiohttp import web

from omnicanal import signing
from omnicanal.api.errors import body_deadline
from omnicanal.errors import BadSignature
from omnicanal.store.replays import SignatureMemory


async def check_signed(request: web.Request, key_id: str, secret: str, seen: SignatureMemory) -> None:
    """BadSignature unless the request is signed with `secret` (the signing secret of the key `key_id`), within the
    window, and its signature was not seen before (a replay: refused even when everything else holds, on any API
    process)."""
    async with body_deadline(request):
        body = await request.read()
    signed = signing.verify(secret, request.headers.get(signing.TIMESTAMP_HEADER),
                            request.headers.get(signing.SIGNATURE_HEADER), body, time.time())
    if not await seen.first_use(key_id, signed.signature, signed.fresh_for):
        raise BadSignature("replayed", "this signature was already used: a signed request is taken once. Sign each "
                                       "request anew, retries too (a retried event keeps its idempotency_key, so it "
                                       "still has one effect)")
