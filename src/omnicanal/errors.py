"""Every error omnicanal raises, in one tree.

    OmnicanalError
    ├── ConfigError            a setting is missing or wrong; names the variable
    │   └── StoreFormatError   the Redis configured holds data stored by an incompatible version
    ├── ProjectError           journey, segment or template files are invalid; carries every Problem at once
    │   ├── JourneyError
    │   ├── SegmentError
    │   └── TemplateError      also raised when a message cannot be rendered (missing variable, ...)
    ├── ExpressionError        a condition or value expression failed to compile or evaluate
    │   └── BudgetExceeded     an expression or template went over its size, operations or time budget
    ├── InputError             an API body or CLI argument is invalid; names the field
    │   └── InputTooLarge      a part of a body is over its size limit (413)
    ├── NotFound               the customer, journey or route asked for does not exist
    ├── Conflict               the request contradicts what was stored (an idempotency key with another body)
    ├── AccessDenied           the request may not do what it asks
    │   ├── Unauthorized       no API key, or one that is not valid here (401)
    │   │   └── BadSignature   a key that signs its requests sent one unsigned, altered, too old or again (401)
    │   ├── Forbidden          a valid key without the scope the route needs; names the scope (403)
    │   └── RateLimited        the key (or client address) made more requests this second than allowed; says when
    │                          to retry (429)
    ├── StoreUnavailable       Redis cannot be reached or refuses writes: nothing was stored
    ├── StaleWork              a customer's commit refused: another worker applied their work since it was read
    ├── DaemonUnreachable      the CLI cannot reach a running daemon's API
    └── DeliveryError          a connector could not hand a message over
        ├── TransientDelivery  worth retrying later
        ├── PermanentDelivery  retrying will not help; try the next channel
        └── UnknownDelivery    the provider may or may not have the message (timeout after sending)

Dependencies' exceptions are translated at the boundary (`raise ... from exc`) so callers only ever catch these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a file, located so an editor can jump to it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class OmnicanalError(Exception):
    """Base of every error raised by omnicanal."""


class ConfigError(OmnicanalError):
    """A setting is missing or invalid; the message names the variable and the fix."""


class StoreFormatError(ConfigError):
    """The workspace in the configured Redis was written in another stored format than this version's: reading
    or writing it could lose or corrupt what it holds. `found` is None for a store written before formats were
    recorded."""

    def __init__(self, found: str | None, expected: int, workspace: str) -> None:
        self.found = found
        self.expected = expected
        what = f"stored format {found}" if found is not None else "a version that did not record its stored format"
        super().__init__(
            f"workspace {workspace!r} in OMNICANAL_REDIS_URL was written by {what}; this version reads and writes "
            f"stored format {expected}. omnicanal 0.x does not migrate stored data: run the version that wrote it, "
            f"or point OMNICANAL_REDIS_URL (or OMNICANAL_WORKSPACE) at an empty store")


class ProjectError(OmnicanalError):
    """Journey or template files are invalid; every problem found is reported at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class JourneyError(ProjectError):
    """A journey file is invalid."""


class SegmentError(ProjectError):
    """A segment file is invalid."""


class TemplateError(ProjectError):
    """A template file is invalid, or a message could not be rendered."""


class ExpressionError(OmnicanalError):
    """An expression did not compile, or failed while being evaluated."""


class BudgetExceeded(ExpressionError):
    """An expression or a template render would go over its budget (budget.py): too large a value, too many
    operations, too long. Raised inside the sandbox; callers report it as the expression's or message's error."""


class InputError(OmnicanalError):
    """Input from outside (API body, CLI argument) is invalid.

    `errors` lists `{"field": "properties.total", "message": "..."}` items, one per problem.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class InputTooLarge(InputError):
    """A part of an API body (an event's properties, a profile's attributes) is larger than its limit."""


class NotFound(OmnicanalError):
    """What was asked for does not exist."""


class Conflict(OmnicanalError):
    """The request contradicts what was stored before; `field` names what conflicts (HTTP 409)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class AccessDenied(OmnicanalError):
    """The request may not do what it asks (api/permissions.py says what each route needs)."""


class Unauthorized(AccessDenied):
    """No API key, or one that is not valid here (unknown, revoked, of another workspace)."""


class BadSignature(Unauthorized):
    """A request made with a key that signs its requests (signing.py) whose signature does not prove it: `reason`
    is `unsigned`, `malformed`, `stale`, `future`, `mismatch` or `replayed`, so a client can tell a clock to fix
    from a secret to check."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Forbidden(AccessDenied):
    """A valid key that lacks the scope the route needs; `scope` names it, so the operator knows which key to
    create."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"this API key lacks the scope {scope!r} this request needs: create a key with it "
                         f"(omnicanal keys create --scope {scope})")


class RateLimited(AccessDenied):
    """The key (or, on an API without keys, the client address) made more requests this second than
    OMNICANAL_RATE_LIMIT_PER_KEY allows; `retry_after` seconds. `who` says which: `this API key`, `the client
    address 203.0.113.9`."""

    def __init__(self, limit: int, retry_after: float, who: str) -> None:
        self.retry_after = retry_after
        super().__init__(f"{who} made more than {limit} requests this second "
                         f"(OMNICANAL_RATE_LIMIT_PER_KEY): retry after the Retry-After seconds")


class StoreUnavailable(OmnicanalError):
    """Redis cannot be reached or refused the write (out of memory, read-only, loading): nothing was stored.

    `retry_after`: seconds worth waiting before trying again (the API's Retry-After)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class StaleWork(OmnicanalError):
    """A customer's commit was refused: another worker committed work of theirs after this one read their state
    (this process stalled past its partition's lease and the partition moved). Nothing of the commit was written;
    the work is the new owner's now."""


class DaemonUnreachable(OmnicanalError):
    """The CLI could not reach the daemon's HTTP API."""


class DeliveryError(OmnicanalError):
    """A connector could not hand a message to its provider."""


class TransientDelivery(DeliveryError):
    """The provider failed in a way worth retrying (5xx, 429, connection reset)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentDelivery(DeliveryError):
    """The provider refused the message for good (bad address, opted out); try another channel.

    `invalid_address` says the address itself is dead (unregistered push token, unknown number): the engine
    removes it from the profile so it is not tried again.
    """

    def __init__(self, message: str, invalid_address: bool = False) -> None:
        self.invalid_address = invalid_address
        super().__init__(message)


class UnknownDelivery(DeliveryError):
    """The request may have reached the provider but no answer came: sending again could duplicate."""
