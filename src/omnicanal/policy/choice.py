"""Which channel a send step uses: the step's order, reordered by the customer's preference, filtered by
address, template, consent, the WhatsApp window and quiet hours. Every channel passed over says why.

Frequency caps are not checked here: they are checked and recorded atomically when the message is sent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omnicanal.policy.consent import refusal
from omnicanal.policy.windows import QuietHours, zone

INBOX = "inbox"
"""The in-app inbox: every customer has one, addressed by their id."""

WHATSAPP_WINDOW = 24 * 3600.0
"""Meta's customer-service window: free-form WhatsApp messages only within 24 h of the customer's last one."""


@dataclass(frozen=True)
class Rules:
    """The brand's settings that decide channel choice."""

    opt_in_channels: frozenset[str] = frozenset()
    quiet_hours: QuietHours | None = None
    quiet_hours_by_channel: Mapping[str, QuietHours | None] = field(default_factory=dict)
    default_timezone: str = "UTC"

    def quiet_hours_of(self, channel: str) -> QuietHours | None:
        """The channel's own, or the brand's — except for the in-app inbox, which wakes no one: none unless
        named."""
        return self.quiet_hours_by_channel.get(channel, None if channel == INBOX else self.quiet_hours)


@dataclass(frozen=True)
class Candidate:
    channel: str
    to: str
    template_only: bool = False
    """WhatsApp outside the 24 h window: only an approved template message may go."""
    later: tuple[str, ...] = ()
    """The step's channels after this one, in the customer's order: where a fallback would go."""


@dataclass
class Choice:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    held_until: float | None = None
    """When a channel was passed over only for quiet hours: the earliest moment one of them opens (the message
    waits for it if no candidate takes it)."""


def preferred_order(channels: Sequence[str], preference: Sequence[str]) -> list[str]:
    """The step's channels, those the customer prefers first (in the customer's order), the rest after; each
    once, however often the step or the preference names it (a fallback never goes to a channel already tried)."""
    first = [channel for channel in preference if channel in channels]
    return list(dict.fromkeys([*first, *channels]))


def address(addresses: Mapping[str, Any], channel: str) -> str | None:
    """The customer's address on a channel; for push (a list of device tokens) the most recent one."""
    value = addresses.get(channel)
    if isinstance(value, list):
        return str(value[-1]) if value else None
    return str(value) if value else None


def recipient(customer: Mapping[str, Any], channel: str) -> str | None:
    """Where a message on `channel` goes for this customer (`customer` as expressions see it): their address
    there, or, for the inbox, their id."""
    return str(customer["id"]) if channel == INBOX else address(customer.get("addresses") or {}, channel)


def choose(channels: Sequence[str], customer: Mapping[str, Any], template_channels: Collection[str],
           purpose: str, now: float, rules: Rules) -> Choice:
    choice = Choice()
    tz = zone(customer.get("timezone"), rules.default_timezone)
    order = preferred_order(channels, customer.get("channel_preference") or [])
    for position, channel in enumerate(order):
        to = recipient(customer, channel)
        reason = None
        if to is None:
            reason = "no address"
        elif channel not in template_channels:
            reason = "template has no variant"
        else:
            reason = refusal(customer.get("consents") or {}, channel, purpose, rules.opt_in_channels)
        if reason is None and purpose == "marketing" and (quiet := rules.quiet_hours_of(channel)):
            opens = quiet.opens_at(now, tz)
            if opens is not None:
                reason = "quiet hours"
                choice.held_until = min(opens, choice.held_until or opens)
        if reason is not None or to is None:
            choice.skipped.append({"channel": channel, "reason": reason or "no address"})
            continue
        last_inbound = float(customer.get("whatsapp_last_inbound") or 0)
        outside = channel == "whatsapp" and now - last_inbound > WHATSAPP_WINDOW
        choice.candidates.append(Candidate(channel, to, template_only=outside, later=tuple(order[position + 1:])))
    return choice
