"""`omnicanal simulate` as a journey author runs it: every kind of timeline entry reads as a sentence."""

from __future__ import annotations

from pathlib import Path

from conftest import write_journey
from test_cli import run


def test_a_fallback_is_reported_with_its_message_and_reason(project: Path) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
steps:
  - send: {template: welcome_offer, channels: [sms, email], fallback_after: 2h}
  - wait: 1d
""")
    result = run("simulate", "promo", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["+0s", "sent", "sms"] for line in lines), result.stdout
    fallback = next(line for line in lines if "fallback" in line.split()[1:2])
    assert fallback.split()[0] == "+2h"
    assert "(not delivered in time): next channel of step 1_send" in fallback
    assert any(line.split()[:3] == ["+2h", "sent", "email"] for line in lines), result.stdout
    assert "None" not in result.stdout
