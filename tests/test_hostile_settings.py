"""Settings an operator gets wrong: each stops the start with the setting named and what to write instead, never
a traceback, and never a value that quietly means something else (a misspelt channel left at its default)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnicanal.config import ENV_PREFIX, load_settings
from omnicanal.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("variable", "value", "hint"), [
    ("OMNICANAL_CHANNELS", "smss=twilio_sms", "no channel 'smss' (did you mean 'sms'?)"),
    ("OMNICANAL_QUIET_HOURS_BY_CHANNEL", "emial=off", "no channel 'emial' (did you mean 'email'?)"),
    ("OMNICANAL_OPT_IN_CHANNELS", "sms,whatsap", "no channel 'whatsap' (did you mean 'whatsapp'?)"),
    ("OMNICANAL_QUIET_HOURS", "08:00-08:00", "starts and ends at 08:00: write `off` for no quiet hours"),
    ("OMNICANAL_QUIET_HOURS_BY_CHANNEL", "push=22:00-22:00", "starts and ends at 22:00"),
    ("OMNICANAL_CLOCK_SPEED", "inf", "less than or equal to"),
    ("OMNICANAL_CLOCK_SPEED", "1e300", "less than or equal to"),
    ("OMNICANAL_REDIS_URL", "redis://127.0.0.1:99999/0", "not a URL: Port out of range 0-65535"),
    ("OMNICANAL_REDIS_URL", "http://127.0.0.1:6379", "redis://, rediss://, unix://, redis+cluster://"),
    ("OMNICANAL_REDIS_URL", "redis://[::1", "not a URL: Invalid IPv6 URL"),
    ("OMNICANAL_REDIS_URL", "redis://127.0.0.1:6379/abc", "the database is a number: redis://host:6379/0"),
    ("OMNICANAL_REDIS_URL", "127.0.0.1:6379", "redis://, rediss://, unix://, redis+cluster://"),
    # each of these started, then failed where the value was used: a traceback at start (log level, lease,
    # idempotency window, backfill rate), a 500 for every event (a window Redis cannot expire), accepted events
    # never applied (a stats retention Redis cannot expire), timers never fired, or a zone silently read as UTC
    ("OMNICANAL_LOG_LEVEL", "verbose", "'verbose' is not a log level: write debug, info, warning or error"),
    ("OMNICANAL_DEFAULT_TIMEZONE", "Europe/Pariss", "unknown time zone 'Europe/Pariss': use an IANA name"),
    ("OMNICANAL_IDEMPOTENCY_WINDOW", "inf", "less than or equal to 315360000"),
    ("OMNICANAL_IDEMPOTENCY_WINDOW", "1e20", "less than or equal to 315360000"),
    ("OMNICANAL_STATS_RETENTION", "1e20", "less than or equal to 315360000"),
    ("OMNICANAL_LEASE_SECONDS", "inf", "less than or equal to 86400"),
    ("OMNICANAL_TIMER_POLL_INTERVAL", "inf", "less than or equal to 60"),
    ("OMNICANAL_RETENTION_DAYS", "1e20", "less than or equal to 3650"),
    ("OMNICANAL_SEGMENT_BACKFILL_RATE", "inf", "finite number"),
    ("OMNICANAL_SEND_RETRY_BUDGET", "inf", "finite number"),
    ("OMNICANAL_SCHEDULE_GRACE", "inf", "finite number"),
    ("OMNICANAL_SHUTDOWN_GRACE", "inf", "finite number"),
    ("OMNICANAL_RELOAD_INTERVAL", "inf", "finite number"),
    ("OMNICANAL_HEADER_TIMEOUT", "inf", "finite number"),
    ("OMNICANAL_BODY_TIMEOUT", "inf", "finite number"),
    ("OMNICANAL_RATE_LIMITS", "twilio_sms=inf", "a rate is a positive number"),
    # every tracked and unsubscribe link is this URL followed by /r/...: without a scheme, a relative path
    ("OMNICANAL_PUBLIC_URL", "go.shop.example", "not an http:// or https:// URL with a host"),
    ("OMNICANAL_PUBLIC_URL", "ftp://go.shop.example", "not an http:// or https:// URL with a host"),
    ("OMNICANAL_PUBLIC_URL", "https://go.shop.example/?a=1", "not an http:// or https:// URL with a host"),
])
def test_a_value_that_would_mean_something_else_is_refused_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, hint: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    line = next(line for line in str(raised.value).splitlines() if variable in line)
    assert hint in line, line


@pytest.mark.parametrize(("variable", "value"), [
    ("OMNICANAL_LOG_LEVEL", "WARNING"), ("OMNICANAL_LOG_LEVEL", "debug"),
    ("OMNICANAL_DEFAULT_TIMEZONE", "Europe/Paris"), ("OMNICANAL_DEFAULT_TIMEZONE", "UTC"),
    ("OMNICANAL_IDEMPOTENCY_WINDOW", "31536000"),
    ("OMNICANAL_RETENTION_DAYS", "365"), ("OMNICANAL_SHUTDOWN_GRACE", "0"),
    ("OMNICANAL_PUBLIC_URL", "https://go.shop.example/"), ("OMNICANAL_PUBLIC_URL", "http://10.0.0.5:8080/omnicanal"),
])
def test_a_sensible_value_is_still_accepted(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    load_settings()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:secret@redis:6379", "rediss://redis:6380/2",
                                 "unix:///run/redis.sock?db=3", "redis+cluster://node:7000",
                                 "rediss+cluster://node:7000", "redis://[::1]:6379/0", "redis://redis?db=1"])
def test_every_documented_redis_url_shape_is_still_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("OMNICANAL_REDIS_URL", url)
    assert load_settings().redis_url == url


@pytest.mark.parametrize(("source", "variable", "hint"), [
    ("quiet_hours = 5", "OMNICANAL_QUIET_HOURS", 'write it as text, e.g. "21:00-08:00", or "off"'),
    ("quiet_hours_by_channel = {email = 5}", "OMNICANAL_QUIET_HOURS_BY_CHANNEL",
     'write it as text, e.g. "21:00-08:00", or "off"'),
    ("frequency_caps = [3]", "OMNICANAL_FREQUENCY_CAPS", 'write each cap as text, e.g. "3/1d" or "channel:1/4h"'),
    ("rate_limits = {twilio_sms = true}", "OMNICANAL_RATE_LIMITS", "a rate is a positive number"),
])
def test_a_value_of_the_wrong_type_in_the_file_says_how_to_write_it(tmp_path: Path, source: str, variable: str,
                                                                     hint: str) -> None:
    path = tmp_path / "omnicanal.toml"
    path.write_text(source + "\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    line = next(line for line in str(raised.value).splitlines() if variable in line)
    assert hint in line, line


def test_a_config_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "omnicanal.toml"
    path.write_bytes(b"port = 9090\n# \xe9t\xe9\n")
    with pytest.raises(ConfigError, match=r"omnicanal\.toml: invalid TOML: not UTF-8"):
        load_settings(path)
