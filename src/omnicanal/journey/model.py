"""The journey model: what a loaded, validated journey is, as the engine runs it.

Every model is frozen (a loaded journey is a value: old versions keep running while new ones load) and refuses
unknown keys, because step payloads are validated straight from the author's YAML and a misspelt key must be
an error, not a silently ignored option. Durations arrive as text and are stored in seconds; conditions and
values arrive as text and are stored compiled, so a journey that loaded can no longer fail to compile.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    model_validator,
)

from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression, TextTemplate, compile_expression
from omnicanal.journey.durations import parse_duration, parse_offset
from omnicanal.journey.schedules import check_cron, check_timezone
from omnicanal.journey.state import PROFILE_FIELDS
from omnicanal.policy.caps import Cap
from omnicanal.policy.windows import parse_clock

Seconds = float

JOURNEY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Journey and step ids (the API's path parameters say so too)."""
_ID = re.compile(JOURNEY_ID_PATTERN)


def check_id(value: str) -> str:
    """Journey and step ids end up in Redis keys, metrics labels and URLs, hence the narrow alphabet."""
    if not _ID.fullmatch(value):
        raise ValueError(
            f"invalid id {value!r}: use 1 to 64 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_audience(value: str) -> str:
    """A scheduled journey's audience: a segment id (whether it is defined is known when the schedule fires:
    segments load apart from journeys), or `everyone`."""
    try:
        return check_id(value)
    except ValueError:
        raise ValueError(f"invalid audience {value!r}: a segment id (e.g. lapsed_gold) or everyone") from None


def _compile(source: str) -> Expression:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc


def _condition(value: object) -> Expression:
    if isinstance(value, Expression):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected an expression in quotes, e.g. "vars.total >= 20", not {value!r}')
    return _compile(value)


def _value(value: object) -> Expression:
    """Values may be written as YAML literals (`15`, `true`) for convenience: they become constants."""
    if isinstance(value, bool):
        return _compile("true" if value else "false")
    if isinstance(value, int | float):
        return _compile(repr(value))
    return _condition(value)


def _one_or_more(value: object) -> object:
    """`delivered_on: push.opened` is short for a list of one."""
    return (value,) if isinstance(value, str) else value


def _each_once(channels: tuple[str, ...]) -> tuple[str, ...]:
    """A channel is tried once per message: one written twice would get the message again as its own fallback."""
    twice = sorted({channel for channel in channels if channels.count(channel) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} listed more than once: each channel is tried once, in the order "
                         "written; remove the repeat")
    return channels


_as_source = PlainSerializer(lambda expression: expression.source, return_type=str, when_used="json")
Condition = Annotated[Expression, PlainValidator(_condition), _as_source]
"""A condition (`where`, `when`): an expression written as a string."""
Value = Annotated[Expression, PlainValidator(_value), _as_source]
"""A computed value (`send.data`, `update`): an expression string, or a number/boolean taken literally."""
Duration = Annotated[Seconds, BeforeValidator(parse_duration)]
ClockTime = Annotated[str, AfterValidator(lambda text: parse_clock(text).strftime("%H:%M"))]
"""A time of day on the customer's clock, `HH:MM`."""
Name = Annotated[str, Field(min_length=1)]

Channels = Annotated[tuple[Name, ...], Field(min_length=1), AfterValidator(_each_once)]
"""A step's channels, in the order they are tried, each once."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventMatch(_Strict):
    """An event name and an optional condition on it."""

    event: Name
    where: Condition | None = None


class Trigger(_Strict):
    """What starts the journey: an event (`event`, optionally `where`), or a schedule.

    With `key`, one instance per value of that expression (an order, an appointment), several running in
    parallel for one customer, each with its own re-entry. With `schedule` (a cron expression read in
    `timezone`; `customer`: each customer at that time on their own clock), each occurrence starts the journey
    for every customer of `audience` (a segment id, or `everyone`), at most `rate` customers per second if
    given: a scheduled journey is triggered by no event (engine/schedules.py fires it).
    """

    event: Name | None = None
    where: Condition | None = None
    key: Value | None = None
    schedule: Annotated[str, AfterValidator(check_cron), Field(
        description='A cron expression, minute hour day month weekday: "0 9 * * MON" is Mondays, 9:00.'
    )] | None = None
    timezone: Annotated[str, AfterValidator(check_timezone), Field(
        description="The time zone the schedule is read in: an IANA name (Europe/Paris, UTC), or `customer`: each "
                    "customer at that time on their own clock.")] | None = None
    audience: Annotated[str, AfterValidator(check_audience), Field(
        description="Who each occurrence starts the journey for: a segment id, or everyone.")] | None = None
    rate: Annotated[float, Field(gt=0, description="Customers started per second at most (default: as fast as "
                                                   "the workers take them).")] | None = None

    @model_validator(mode="after")
    def _event_or_schedule(self) -> Trigger:
        if (self.event is None) == (self.schedule is None):
            raise ValueError("a trigger is an event (`trigger: {event: order_placed}`) or a schedule "
                             "(`trigger: {schedule: \"0 9 * * MON\", timezone: Europe/Paris, audience: "
                             "lapsed_gold}`): exactly one of them")
        if self.event is not None and (self.timezone, self.audience, self.rate) != (None, None, None):
            raise ValueError("timezone, audience and rate go with `schedule`: add a schedule instead of the event, "
                             "or remove them")
        if self.schedule is not None:
            if self.where is not None or self.key is not None:
                raise ValueError("a scheduled journey has no event to test or key: its audience (a segment) "
                                 "chooses the customers; remove `where`/`key`")
            if self.timezone is None or self.audience is None:
                raise ValueError("a schedule needs `timezone` (e.g. Europe/Paris, UTC, or customer) and `audience` "
                                 "(a segment id, or everyone)")
        return self

    @property
    def label(self) -> str:
        """How the trigger reads in a graph or a summary."""
        if self.schedule is not None:
            return f"every {self.schedule} ({self.timezone}) for {self.audience}"
        return f"on {self.event}"


class InstanceRule(EventMatch):
    """An event a running instance reacts to (`exit_on`, `goal`).

    In a keyed journey an instance only sees events that carry its key, or no key at all (a customer-wide event
    such as an unsubscribe); `any_key: true` makes the rule see the events of every key.
    """

    any_key: bool = False


class Goal(InstanceRule):
    """The conversion a journey aims at, counted if it happens within `within` seconds of entry.

    `revenue` is what the conversion is worth (an expression; by default the event's `total` when it is a
    number). The messages the customer received within the window before it, on any channel and from any
    journey, share the credit (journey/attribution.py).
    """

    within: Duration | None = None
    revenue: Value | None = None


class ReEntry(_Strict):
    """Whether a customer who already went through the journey may enter it again, and after how long."""

    mode: Literal["never", "always", "after"]
    after: Seconds | None = None

    @model_validator(mode="after")
    def _after_needs_delay(self) -> ReEntry:
        if (self.mode == "after") != (self.after is not None):
            raise ValueError("re_entry 'after' needs a delay, and only 'after' takes one")
        return self


class CouponSpec(_Strict):
    """A unique coupon code issued with the message (`coupon.code` in its template): `prefix` then `length`
    unguessable characters, valid for `valid_for` after the send. Redeemed by a `coupon.redeemed` event carrying
    the code (from the till, the site, anywhere), it is tied back to the message, step and channel."""

    prefix: str = Field(default="", pattern=r"^[A-Z0-9-]{0,12}$")
    length: int = Field(default=8, ge=6, le=16)
    valid_for: Duration


class SendStep(_Strict):
    """Send a template on the first channel of `channels` the customer can be reached on.

    `purpose` decides the rules: marketing needs consent where the brand requires opt-in, counts against
    frequency caps and waits out quiet hours; transactional (an order confirmation) goes unless opted out.
    `fallback_after`: if the message is not delivered (or read, where the channel says so) by then, the next
    channel is tried. Channels whose providers never report delivery (channels.CHANNELS) need `delivered_on`:
    the events that count as delivery instead, such as the app's `push.opened` or `message.clicked`.
    """

    template: Name
    channels: Channels
    data: dict[str, Value] = {}
    purpose: Literal["marketing", "transactional"] = "marketing"
    fallback_after: Duration | None = None
    delivered_on: Annotated[tuple[Name, ...], BeforeValidator(_one_or_more), Field(min_length=1)] | None = None
    coupon: CouponSpec | None = None

    @model_validator(mode="after")
    def _delivered_on_needs_fallback(self) -> SendStep:
        if self.delivered_on is not None and self.fallback_after is None:
            raise ValueError("delivered_on is set but fallback_after is not, so it would change nothing: add "
                             "e.g. `fallback_after: 2h`, or remove delivered_on")
        return self


class WaitStep(_Strict):
    """Wait a duration (`wait: 1h`), until the customer's clock shows a time (`wait: {until: "09:30"}`), or until
    a moment taken from the data (`wait: {at: "event.properties.pickup_deadline", offset: -1d}`: an ISO 8601
    timestamp or epoch seconds; a whole-day offset keeps the wall-clock time in the customer's time zone).

    A moment already past continues at once, or goes to `on_past`; a value that is no moment is said on the
    timeline with the value, and goes to `on_error` (without it the journey ends as failed).
    """

    seconds: Duration | None = None
    until: ClockTime | None = None
    at: Value | None = None
    offset: Annotated[Seconds, BeforeValidator(parse_offset)] | None = None
    on_past: str | None = None
    on_error: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if sum(value is not None for value in (self.seconds, self.until, self.at)) != 1:
            raise ValueError('a wait is a duration (`wait: 1h`), a time of day (`wait: {until: "09:30"}`) or a '
                             'moment from the data (`wait: {at: "event.properties.deadline"}`): one of them')
        if self.at is None and (self.offset, self.on_past, self.on_error) != (None, None, None):
            raise ValueError("offset, on_past and on_error go with `at` (a moment from the data): add `at` or "
                             "remove them")
        return self


class DigestStep(_Strict):
    """Collect the customer's matching events for a while, then send one message listing them.

    The events collected (their properties, at most `max_items`, oldest first) are `data.items` in the
    template; `window` waits a duration from the first one, `until` waits for a time of day.
    """

    event: Name
    where: Condition | None = None
    window: Duration | None = None
    until: ClockTime | None = None
    template: Name
    channels: Channels
    data: dict[str, Value] = {}
    purpose: Literal["marketing", "transactional"] = "marketing"
    max_items: int = Field(default=20, ge=1, le=100)

    @model_validator(mode="after")
    def _one_of(self) -> DigestStep:
        if (self.window is None) == (self.until is None):
            raise ValueError('a digest collects for a `window: 1d` or `until: "18:00"` (one of them)')
        return self


class WaitForStep(_Strict):
    """Wait for an event; on timeout go to `on_timeout`, or continue with the next step if it is not set.
    `any_key`: in a keyed journey, an event of any key resumes it (see EventMatch)."""

    event: Name
    where: Condition | None = None
    timeout: Duration | None = None
    on_timeout: str | None = None
    any_key: bool = False

    @model_validator(mode="after")
    def _on_timeout_needs_timeout(self) -> WaitForStep:
        if self.on_timeout is not None and self.timeout is None:
            raise ValueError("on_timeout is set but timeout is not: add e.g. `timeout: 48h`")
        return self


class BranchCase(_Strict):
    when: Condition
    goto: str


class BranchStep(_Strict):
    """The first case whose `when` is true decides the next step; `otherwise` (written `else`) if none is."""

    cases: tuple[BranchCase, ...]
    otherwise: str


class UpdateStep(_Strict):
    """Set instance variables and customer attributes from expressions."""

    vars: dict[str, Value] = {}
    customer: dict[str, Value] = {}

    @model_validator(mode="after")
    def _sets_something(self) -> UpdateStep:
        if not self.vars and not self.customer:
            raise ValueError("an update step needs 'vars' or 'customer' (or both) with at least one entry")
        reserved = sorted(PROFILE_FIELDS.intersection(self.customer))
        if reserved:
            names = ", ".join(f"customer.{name}" for name in reserved)
            what = ("is a profile field, not an attribute: a journey cannot set it" if len(reserved) == 1 else
                    "are profile fields, not attributes: a journey cannot set them")
            raise ValueError(f"{names} {what} (consents, addresses, locale... change through PUT /v1/customers); "
                             f"use {'another name' if len(reserved) == 1 else 'other names'}")
        return self


class GotoStep(_Strict):
    target: str


def _text_template(value: object) -> TextTemplate:
    if isinstance(value, TextTemplate):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a text, e.g. "https://shop.example/stock/{{{{ vars.sku }}}}", not {value!r}')
    try:
        return TextTemplate(value)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc


Text = Annotated[TextTemplate, PlainValidator(_text_template),
                 PlainSerializer(lambda template: template.source, return_type=str, when_used="json")]
"""A text with `{{ expressions }}`."""


class FetchStep(_Strict):
    """Call an HTTP endpoint mid-journey and keep its JSON answer in `vars.<into>` for the steps after.

    GET, or POST with a JSON `body` from expressions; only hosts of OMNICANAL_FETCH_ALLOWED_HOSTS (never a private
    or loopback address unless that host is listed by name); answers over OMNICANAL_FETCH_MAX_BYTES or not JSON
    fail. A failure for now (timeout, 5xx, 429) is retried with backoff within the send retry budget; then, or on
    a failure for good, the step goes to `on_error` (`skip`, the default: the next step, with `vars.<into>` unset
    and the error on the timeline).
    """

    url: Text
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Value] = {}
    timeout: Duration = 5.0
    into: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
    on_error: str = "skip"

    @model_validator(mode="after")
    def _sane(self) -> FetchStep:
        if self.timeout > 30:
            raise ValueError("timeout: at most 30s (a journey step holds its customer's work while it waits)")
        if self.body and self.method != "POST":
            raise ValueError("a body goes with `method: POST`")
        return self


class SplitArm(_Strict):
    """One arm of an experiment: its share of customers (`weight`) and where they go, or the holdout."""

    weight: int = Field(gt=0)
    goto: str | None = None
    holdout: bool = False

    @model_validator(mode="after")
    def _goes_somewhere(self) -> SplitArm:
        if (self.goto is None) != self.holdout:
            raise ValueError("an arm has either `goto: <step id>` or `holdout: true`, e.g. "
                             "`- {weight: 45, goto: push_offer}` or `- {weight: 10, holdout: true}`")
        return self

    @property
    def name(self) -> str:
        return self.goto or "holdout"


class SplitStep(_Strict):
    """Send each customer down one arm, by weight: sticky (a hash of customer, journey and step, the same on
    re-entry). The holdout gets no message: its instance waits out the goal window, so its conversions count
    as the baseline the other arms' lift is measured against."""

    arms: tuple[SplitArm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> SplitStep:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("each arm goes to a different step, and there is at most one holdout")
        return self


class ExitStep(_Strict):
    reason: str | None = None


Action = (SendStep | WaitStep | WaitForStep | BranchStep | UpdateStep | GotoStep | ExitStep | DigestStep | SplitStep
          | FetchStep)
Kind = Literal["send", "wait", "wait_for", "branch", "update", "goto", "exit", "digest", "split", "fetch"]

KIND_MODELS: dict[str, type[Action]] = {
    "send": SendStep,
    "wait": WaitStep,
    "wait_for": WaitForStep,
    "branch": BranchStep,
    "update": UpdateStep,
    "goto": GotoStep,
    "exit": ExitStep,
    "digest": DigestStep,
    "split": SplitStep,
    "fetch": FetchStep,
}
"""Step kind (the key authors write) → the model of its payload."""


class Step(BaseModel):
    """One step of a journey: where it is (`index` in `steps`, `line` in the file) and what it does."""

    model_config = ConfigDict(frozen=True)

    id: str
    index: int
    line: int
    kind: Kind
    action: Action

    @model_validator(mode="after")
    def _kind_matches_action(self) -> Step:
        if not isinstance(self.action, KIND_MODELS[self.kind]):
            raise ValueError(f"a {self.kind} step cannot carry a {type(self.action).__name__}")
        return self


class Journey(BaseModel):
    """A validated journey; `version` and `source` let the engine keep running instances on old versions."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    trigger: Trigger
    re_entry: ReEntry
    exit_on: tuple[InstanceRule, ...]
    goal: Goal | None
    caps: tuple[Cap, ...] = ()
    steps: tuple[Step, ...]
    version: str
    path: str
    source: str

    def step_index(self, step_id: str) -> int:
        """Position of a step in `steps`; KeyError if the journey has no such step."""
        for step in self.steps:
            if step.id == step_id:
                return step.index
        raise KeyError(step_id)

    def events(self) -> frozenset[str]:
        """Every event name this journey reacts to, so the engine can route events to it cheaply."""
        names = {match.event for match in self.exit_on}
        if self.trigger.event is not None:
            names.add(self.trigger.event)
        if self.goal is not None:
            names.add(self.goal.event)
        names.update(step.action.event for step in self.steps if isinstance(step.action, WaitForStep | DigestStep))
        return frozenset(names)
