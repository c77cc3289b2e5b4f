"""Customer data kept out of the logs: e-mail addresses, phone numbers, push tokens and message bodies.

Logs travel further than the store (log shippers, support tickets, screenshots) and are kept longer, so what the
brand's customers are reached at, and what they were told, is masked in every log line unless OMNICANAL_LOG_PII
says otherwise (for debugging on a test system). Two nets, both applied to every value of every log event,
nested ones and tracebacks included:

- by name: the fields that carry an address or a message (`to`, `addresses`, `body`, `content`...) are replaced
  whole: a push token has no shape to recognise;
- by shape, in any text: e-mail addresses, phone numbers written with `+` or a leading 0, `push:<token>` look-ups
  (error messages quote values: `could not convert string to float: 'jane.doe@example.com'`), and the signed
  tokens of tracked and unsubscribe links in paths (`/r/<token>`, `/u/<token>`: whoever has one can unsubscribe
  the customer, and it names them).

Customer ids, event names and journey ids are kept: they are what an operator needs to follow a problem, and
they lead to the data only through the API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASKED = "[masked]"
FIELDS = frozenset({
    "to", "from", "address", "addresses", "email", "phone", "token", "tokens", "push",  # where a customer is reached
    "body", "text", "html", "subject", "title", "content", "content_variables", "payload",  # what they are told
})
"""Field names whose values are masked whole, wherever they appear in a log event."""

_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_PHONE = re.compile(r"\+\d(?:[ .\-]?\d){6,14}|(?<![\w.+\-])0\d(?:[ .\-]?\d){7,12}(?!\w)")
_TOKEN = re.compile(r"\bpush:[^\s/'\",)]+")
_LINK_TOKEN = re.compile(r"/([ru])/[A-Za-z0-9_\-]{8,}")


def mask_text(text: str) -> str:
    """`text` with e-mail addresses, phone numbers, push look-ups and link tokens replaced by what they are."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if "push:" in text:
        text = _TOKEN.sub("push:[token]", text)
    if "/r/" in text or "/u/" in text:
        text = _LINK_TOKEN.sub(r"/\1/[token]", text)
    return _PHONE.sub("[phone]", text)


def mask(value: Any) -> Any:
    """`value` with customer data masked: texts by shape, mappings by field name too, containers throughout."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: MASKED if key in FIELDS and value[key] not in (None, "") else mask(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask(item) for item in value]
    return value


def mask_personal_data(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: every field of the event masked (see `mask`)."""
    masked: MutableMapping[str, Any] = mask(event)
    return masked
