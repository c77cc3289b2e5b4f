"""Consent per channel and purpose, with where it came from and when.

Stored on the profile as `{channel: {purpose: {"granted": bool, "source": str, "at": iso}}}`. Marketing needs
an explicit grant on the channels the brand lists in OMNICANAL_OPT_IN_CHANNELS, and must not be denied
anywhere; transactional messages go unless denied. An opt-out from any source — the API, a STOP keyword, an
unsubscribe link — is a denial on that channel for every purpose.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

PURPOSES = ("marketing", "transactional")


def normalise(given: Mapping[str, Any], source: str, at: str) -> dict[str, dict[str, dict[str, Any]]]:
    """API shapes → stored shape: `{"sms": false}` (every purpose), `{"sms": {"marketing": true}}`."""
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    for channel, value in given.items():
        purposes = {purpose: value for purpose in PURPOSES} if isinstance(value, bool) else value
        if not isinstance(purposes, Mapping) or not all(
            p in PURPOSES and isinstance(v, bool) for p, v in purposes.items()
        ):
            raise ValueError(f"consents.{channel}: use true/false, or {{marketing: bool, transactional: bool}}")
        stored[channel] = {p: {"granted": v, "source": source, "at": at} for p, v in purposes.items()}
    return stored


def merge(current: Mapping[str, Any], update: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Decisions apply in the order they were taken, purpose by purpose: one replaces the stored decision unless
    it is older (its `at`), so a delayed or replayed message cannot undo a later choice; untouched purposes keep
    theirs. (lua/upsert_profile.lua does the same inside Redis.)"""
    merged = {channel: dict(purposes) for channel, purposes in current.items()}
    for channel, purposes in update.items():
        decisions = merged.setdefault(channel, {})
        for purpose, decision in purposes.items():
            stored = decisions.get(purpose)
            if stored is None or str(decision.get("at", "")) >= str(stored.get("at", "")):
                decisions[purpose] = decision
    return merged


def refusal(consents: Mapping[str, Any], channel: str, purpose: str, opt_in_channels: Collection[str]) -> str | None:
    """Why the customer's consent does not allow this send, or None when it does."""
    decision = consents.get(channel, {}).get(purpose)
    if decision is not None and not decision.get("granted"):
        return f"no consent: {purpose} opted out ({decision.get('source', 'unknown source')})"
    if purpose == "marketing" and channel in opt_in_channels and decision is None:
        return "no consent: marketing on this channel needs an opt-in"
    return None
