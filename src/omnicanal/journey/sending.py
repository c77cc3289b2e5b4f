"""A send step, decided: which channel, which message, and what each provider outcome leads to.

Channel choice (policy/choice.py): the step's channels in the customer's preferred order; a channel qualifies
with an address, a template variant, consent for the step's purpose, outside quiet hours (marketing), and, on
WhatsApp outside the 24 h window, an approved template. Every channel passed over is recorded with its reason.

For each qualifying channel the core renders the message and asks the engine to send it (an `Attempt`: the
engine claims it, with the frequency caps, and calls the provider). Outcomes: handed over (or unknown) → done;
capped or refused for good → the next channel; refused for now → the step is retried later (the instance holds
on a timer, honouring Retry-After, with exponential backoff and jitter) until the retry budget is spent, then the
next channel; nothing qualifies only because of quiet hours → the step waits for the window to open; nothing
qualifies at all → `suppressed`.

A message sent with channels after it keeps them on its instance: a failure receipt, or `fallback_after` passing
without a delivery (a receipt, or one of the step's `delivered_on` events), sends it on the next channel — only
while the instance runs (see journey/core.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from omnicanal.errors import ExpressionError, TemplateError
from omnicanal.journey.coupons import coupon_code
from omnicanal.journey.effects import Attempt, Capped, Handed, Refused, Replayed, Sends
from omnicanal.journey.model import DigestStep, Journey, SendStep
from omnicanal.journey.session import Session, share_of
from omnicanal.journey.state import CustomerState, Instance
from omnicanal.links import PlainLinks, message_links
from omnicanal.policy.choice import Candidate, choose, preferred_order, recipient
from omnicanal.render import Rendered
from omnicanal.timestamps import iso

FALLBACK_VISIT = "~fallback"
"""A message's fallback is a visit of its own: `<message id>~fallback`, its messages `<that>.<channel>`."""
RETRY_BASE = 2.0
RETRY_MAX = 300.0


def retry_delay(message_id: str, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After. The jitter comes from
    the message id, so a replay of the same work decides the same."""
    jitter = zlib.crc32(f"{message_id}\x00{attempt}".encode()) / 0xFFFFFFFF
    return max(jitter * min(RETRY_MAX, RETRY_BASE * 2.0 ** attempt), retry_after or 0.0)


@dataclass(frozen=True, slots=True)
class Settled:
    """The send is done with: handed over, unknown, or failed in a way every channel would share (rendering)."""


@dataclass(frozen=True, slots=True)
class TryNext:
    """This channel will not do: try the next one."""


@dataclass(frozen=True, slots=True)
class RetryAt:
    """The provider failed for now: try this channel again at `at` (journey time)."""

    at: float


@dataclass(slots=True)
class Plan:
    """A send to carry out: a step's visit, or a message's fallback to its later channels."""

    instance: Instance
    journey: Journey
    step_id: str
    action: SendStep | DigestStep
    channels: tuple[str, ...]
    visit: str
    """Message ids are `<visit>.<channel>`: unique per step visit, the same when the work is applied again."""
    data: dict[str, Any] | None = None
    """The template's `data` when the step computed it (a digest); otherwise from the step's expressions."""
    retries: bool = True
    """A step visit retries a provider's transient failure (its instance holds); a fallback goes on instead."""
    coupon: str | None = None
    """The coupon code the message carries (a step with `coupon`): issued for the visit, kept by its fallback."""
    skipped: list[dict[str, str]] = field(default_factory=list)


def deliver(session: Session, plan: Plan) -> Sends[float | None]:
    """Carry out the send; returns when to try again (quiet hours, a provider to retry), or None: done."""
    instance, action, context = plan.instance, plan.action, session.context
    session.sends_visited.add(plan.visit)
    if (sent := _sent_on_another_path(session, plan)) is not None:
        plan.skipped.append({"channel": ",".join(plan.channels),
                             "reason": f"replayed on another path: {sent} went before the crash"})
        _record(session, plan, "suppressed")
        return None
    if action.purpose == "marketing" and share_of(session.customer_id) < context.global_control:
        _record(session, plan, "control")  # the global control group: no marketing, goals still counted
        return None
    scope = session.scope(instance, instance.event)
    if isinstance(action, SendStep) and action.coupon is not None:
        plan.coupon = plan.coupon or coupon_code(context.coupon_secret, session.customer_id, plan.visit,
                                                  action.coupon)
        scope["coupon"] = {"code": plan.coupon, "expires_at": iso(session.now + action.coupon.valid_for)}
    exhausted = set((instance.retry or {}).get("exhausted", ())) if plan.retries else set()
    claimed = _claimed(session, plan)  # the work applied again after a crash: what it claimed comes first
    tried = {candidate.channel for candidate in claimed}
    choice = choose(tuple(channel for channel in plan.channels if channel not in tried), session.state.customer,
                    context.templates.channels(action.template) or (), action.purpose, session.now, context.rules)
    plan.skipped += choice.skipped
    for candidate in [*claimed, *choice.candidates]:
        if candidate.channel in exhausted:
            plan.skipped.append({"channel": candidate.channel, "reason": "failed: retries exhausted"})
            continue
        result = yield from _attempt(session, plan, scope, candidate)
        if isinstance(result, RetryAt):
            return result.at
        if isinstance(result, Settled):
            if plan.retries:
                instance.retry = None
            return None
    if choice.held_until is not None:  # a channel in quiet hours may still take it when they end
        _record(session, plan, "held", until=choice.held_until)
        return choice.held_until
    if plan.retries:
        instance.retry = None
    failed = any(skipped["reason"].startswith("failed") for skipped in plan.skipped)
    _record(session, plan, "failed" if failed else "suppressed")
    return None


def _claimed(session: Session, plan: Plan) -> list[Candidate]:
    """The channels this send claimed in work that was never committed, in the order they were tried. Its
    replay asks for them first, whatever the channel rules say now: a replay after 21:00 of a message claimed at
    20:59 would otherwise be held for the night and sent again in the morning, and a consent or an address
    changed meanwhile would send it on a second channel. The claim answers (`Replayed`), nothing is sent."""
    if not session.state.claimed:
        return []
    customer = session.state.customer
    order = preferred_order(plan.channels, customer.get("channel_preference") or [])
    return [Candidate(channel, recipient(customer, channel) or "", later=tuple(order[i + 1:]))
            for i, channel in enumerate(order) if f"{plan.visit}.{channel}" in session.state.claimed]


def _sent_on_another_path(session: Session, plan: Plan) -> str | None:
    """A message the instance's uncommitted work claimed at an earlier step visit that this application of the
    work passed without a send, or None.

    The work is applied again after a crash (`state.claimed`). A step visit of the instance before this one that
    sent then and does not now means the replay took another path — a `branch` reading a profile changed in
    between (profile, consent and address changes are written at once, not behind the customer's work) — so
    this visit's message would be a second one, from a path the customer was never on: it is not sent."""
    if not session.state.claimed or FALLBACK_VISIT in plan.visit:
        return None
    instance_id, _, seq = plan.visit.partition(".")
    for message_id in sorted(session.state.claimed):
        claim_instance, _, rest = message_id.partition(".")
        visit = rest.partition(".")[0]
        if (claim_instance == instance_id and FALLBACK_VISIT not in message_id and visit.isdigit()
                and int(visit) < int(seq) and f"{instance_id}.{visit}" not in session.sends_visited):
            return message_id
    return None


def settled_claims(state: CustomerState) -> set[str]:
    """The claims of uncommitted work (`state.claimed`) no replay will ask for after this work: their instance
    ended, or went past their send — its step visits past theirs (a message id is `<instance>.<visit
    number>.<channel>`), or the fallback they were for (`<message id>~fallback.<channel>`) no longer pending.
    The others are kept: the work that made them is still to be applied again."""
    settled = set()
    for message_id in state.claimed:
        instance_id, _, rest = message_id.partition(".")
        instance = state.instances.get(instance_id)
        fallback_of, is_fallback, _ = message_id.partition(FALLBACK_VISIT)
        if is_fallback:
            pending = instance is not None and fallback_of in (instance.fallbacks or {})
        else:
            visit = rest.partition(".")[0]
            pending = instance is not None and visit.isdigit() and int(visit) > instance.seq
        if not pending:
            settled.add(message_id)
    return settled


def _record(session: Session, plan: Plan, status: str, **fields: Any) -> None:
    """Count the outcome and say it on the timeline, with every channel passed over and why."""
    session.count(plan.journey.id, f"step:{plan.step_id}:{status}")
    if "channel" in fields:
        session.count(plan.journey.id, f"channel:{fields['channel']}:{status}")
        session.count(plan.journey.id, f"step:{plan.step_id}:{fields['channel']}:{status}")
    if status in ("suppressed", "failed", "held"):  # why, by the first reason a channel was passed over for
        for reason in {_reason_code(skipped["reason"]) for skipped in plan.skipped[:1]}:
            session.count(plan.journey.id, f"step:{plan.step_id}:{status}:{reason}")
    extra = {"skipped": plan.skipped} if plan.skipped else {}
    session.record("message", journey=plan.journey.id, step=plan.step_id, template=plan.action.template,
                   purpose=plan.action.purpose, status=status, **fields, **extra)


def _reason_code(reason: str) -> str:
    """A skip reason as a short, bounded counter name: `no consent: marketing opted out (sms_keyword)` → `no
    consent`, `frequency cap 3/1d` → `frequency cap`, `failed: 503 ...` → `failed`."""
    code = reason.split(":", 1)[0]
    return "frequency cap" if code.startswith("frequency cap") else code[:40]


def _render(session: Session, plan: Plan, scope: dict[str, Any], candidate: Candidate, links: PlainLinks
            ) -> Rendered | str:
    """The message for this channel, or why it cannot go on it."""
    context = session.context
    locale = session.state.customer.get("locale") or context.default_locale
    data = plan.data if plan.data is not None else {
        name: expression.evaluate(scope) for name, expression in plan.action.data.items()}
    rendered = context.templates.render(plan.action.template, candidate.channel, locale,
                                        {**scope, "data": data, "locale": locale}, links)
    if candidate.channel == "whatsapp":
        if candidate.template_only and not rendered.content.get("content_sid"):
            return "outside the 24h WhatsApp window and the template has no approved variant (content_sid)"
        if not candidate.template_only:  # inside the window: a free-form message
            rendered.content.pop("content_sid", None)
            rendered.content.pop("content_variables", None)
    return rendered


def _attempt(session: Session, plan: Plan, scope: dict[str, Any], candidate: Candidate
             ) -> Sends[Settled | TryNext | RetryAt]:
    """Try one channel: render, ask the engine to send, decide from the outcome."""
    channel = candidate.channel
    message_id = f"{plan.visit}.{channel}"
    journey, action = plan.journey, plan.action
    links = message_links(session.context.links, session.customer_id, message_id, journey.id, plan.step_id, channel,
                          action.purpose)
    try:
        rendered = _render(session, plan, scope, candidate, links)
    except (TemplateError, ExpressionError) as exc:
        _record(session, plan, "failed", channel=channel, error=str(exc))
        return Settled()
    if isinstance(rendered, str):
        plan.skipped.append({"channel": channel, "reason": rendered})
        return TryNext()
    caps = (*session.context.caps, *journey.caps) if action.purpose == "marketing" else ()
    outcome = yield Attempt(message_id, session.customer_id, channel, candidate.to, rendered.content,
                            rendered.locale, action.template, journey.id, plan.step_id, caps,
                            links.unsubscribe_url or None)
    shown = {"channel": channel, "message_id": message_id, "to": candidate.to, "locale": rendered.locale,
             "content": rendered.content}
    if isinstance(outcome, Capped):
        plan.skipped.append({"channel": channel, "reason": f"frequency cap {outcome.cap}"})
        return TryNext()
    if isinstance(outcome, Refused):
        return _refused(session, plan, channel, message_id, outcome)
    if isinstance(outcome, Replayed):
        if outcome.status in ("failed", "capped"):  # that channel did not take it: the next one was tried
            plan.skipped.append({"channel": channel, "reason": outcome.status})
            return TryNext()
        _handed(session, plan, candidate, message_id, outcome.status, shown)
        return Settled()
    if not isinstance(outcome, Handed):
        raise TypeError(f"a send attempt was answered with {outcome!r}")
    details = {name: value for name, value in (("provider_id", outcome.provider_id), ("error", outcome.error))
               if value}
    _handed(session, plan, candidate, message_id, outcome.status, {**shown, **details})
    return Settled()


def _handed(session: Session, plan: Plan, candidate: Candidate, message_id: str, status: str,
            shown: dict[str, Any]) -> None:
    """The message went (or may have): a touchpoint of the instance, and a fallback kept if one may be needed."""
    plan.instance.messages.append(message_id)
    session.touched(message_id, plan.journey.id, plan.step_id, candidate.channel)
    fallback_after = plan.action.fallback_after if isinstance(plan.action, SendStep) else None
    if candidate.later and (fallback_after is not None or candidate.channel in session.context.receipts):
        due = session.now + fallback_after if fallback_after is not None else None
        session.schedule_fallback(plan.instance, message_id, plan.step_id, candidate.later, due, plan.data,
                                  plan.coupon)
    if plan.coupon is not None and isinstance(plan.action, SendStep) and plan.action.coupon is not None:
        session.changes.coupons.append({"code": plan.coupon, "message_id": message_id, "journey": plan.journey.id,
                                        "step": plan.step_id, "channel": candidate.channel,
                                        "expires": session.now + plan.action.coupon.valid_for})
        shown = {**shown, "coupon": plan.coupon}
    _record(session, plan, status, **shown)


def _refused(session: Session, plan: Plan, channel: str, message_id: str, outcome: Refused) -> TryNext | RetryAt:
    instance = plan.instance
    if outcome.transient and plan.retries:
        retry = instance.retry or {"since": session.now, "attempts": 0, "exhausted": []}
        delay = retry_delay(message_id, retry["attempts"], outcome.retry_after)
        if session.now + delay - retry["since"] <= session.context.retry_budget:
            retry["attempts"] += 1
            instance.retry = retry
            _record(session, plan, "retrying", channel=channel, error=outcome.error, retry_in=round(delay, 3))
            return RetryAt(session.now + delay)
        retry["exhausted"] = [*retry["exhausted"], channel]
        instance.retry = retry
    plan.skipped.append({"channel": channel, "reason": f"failed: {outcome.error}"})
    return TryNext()
