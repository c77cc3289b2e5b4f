"""What the log processor masks, by shape in any text and by field name (the daemon-level proof is in
test_log_privacy.py: a whole reference journey's log lines)."""

from __future__ import annotations

from omnicanal.redact import MASKED, mask, mask_text


def test_addresses_phones_and_link_tokens_are_masked_in_any_text() -> None:
    text = ("could not convert 'lea.dupont@example.com'; sms +33 6 12 34 56 78 or 06.12.34.56.78; push:dev-tok-1, "
            "GET /u/AbCdEf0123456789_-xyz and /r/QWERTYUIOPasdf failed")
    assert mask_text(text) == ("could not convert '[email]'; sms [phone] or [phone]; push:[token], "
                               "GET /u/[token] and /r/[token] failed")


def test_fields_that_carry_an_address_or_a_message_are_masked_whole_and_ids_kept() -> None:
    event = {"event": "send_failed", "customer_id": "lea.dupont", "journey": "abandoned_cart",
             "message": {"to": "device-token-1", "content": {"body": "Léa, -10 %"}, "channel": "push"},
             "tokens": ["a", "b"], "error": "order T-1 of lea@example.com"}
    assert mask(event) == {"event": "send_failed", "customer_id": "lea.dupont", "journey": "abandoned_cart",
                           "message": {"to": MASKED, "content": MASKED, "channel": "push"}, "tokens": MASKED,
                           "error": "order T-1 of [email]"}
