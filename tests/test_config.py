"""Settings: a TOML file, the environment over it, explicit values over both; typed values parsed once, and a
wrong value named by its variable."""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path

import pytest

from omnicanal.config import ENV_PREFIX, load_settings
from omnicanal.errors import ConfigError
from omnicanal.policy.caps import Cap
from omnicanal.policy.windows import QuietHours


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omnicanal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_gives_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
port = 9001
frequency_caps = ["3/1d", "channel:1/4h"]
quiet_hours = "22:00-07:30"
quiet_hours_by_channel = {email = "off", push = "23:00-06:00"}
rate_limits = {twilio_sms = 30, smtp_email = "2.5"}
channels = {sms = "twilio_sms"}
""")
    settings = load_settings(path)
    assert settings.port == 9001
    assert settings.frequency_caps == (Cap(3, 86400.0), Cap(1, 14400.0, "channel"))
    assert settings.quiet_hours == QuietHours(time(22, 0), time(7, 30))
    assert settings.quiet_hours_by_channel == {"email": None, "push": QuietHours(time(23, 0), time(6, 0))}
    assert settings.rate_limits == {"twilio_sms": 30.0, "smtp_email": 2.5}
    assert settings.channels == {"sms": "twilio_sms"}


def test_the_environment_gives_the_same_types_in_its_own_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_FREQUENCY_CAPS", "3/1d,channel:1/4h")
    monkeypatch.setenv("OMNICANAL_QUIET_HOURS", "off")
    monkeypatch.setenv("OMNICANAL_QUIET_HOURS_BY_CHANNEL", "push=22:00-07:00")
    monkeypatch.setenv("OMNICANAL_RATE_LIMITS", "twilio_sms=30")
    monkeypatch.setenv("OMNICANAL_CHANNELS", "sms=twilio_sms, email=smtp_email")
    settings = load_settings()
    assert settings.frequency_caps == (Cap(3, 86400.0), Cap(1, 14400.0, "channel"))
    assert settings.quiet_hours is None
    assert settings.quiet_hours_by_channel == {"push": QuietHours(time(22, 0), time(7, 0))}
    assert settings.rate_limits == {"twilio_sms": 30.0}
    assert settings.channels == {"sms": "twilio_sms", "email": "smtp_email"}


def test_defaults_are_typed_too() -> None:
    settings = load_settings()
    assert settings.quiet_hours == QuietHours(time(21, 0), time(8, 0))
    assert settings.frequency_caps == () and settings.rate_limits == {} and settings.channels == {}


def test_the_environment_wins_over_the_file_and_explicit_values_over_both(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'port = 9001\nhost = "0.0.0.0"\nquiet_hours = "22:00-07:00"\n')
    monkeypatch.setenv("OMNICANAL_PORT", "9002")
    monkeypatch.setenv("OMNICANAL_QUIET_HOURS", "off")
    settings = load_settings(path)
    assert (settings.port, settings.host, settings.quiet_hours) == (9002, "0.0.0.0", None)
    assert load_settings(path, port=9003).port == 9003
    monkeypatch.setenv("OMNICANAL_CONFIG_FILE", str(path))
    assert load_settings().host == "0.0.0.0"


@pytest.mark.parametrize(("source", "variable", "hint"), [
    ('quiet_hours = "25:00-08:00"', "OMNICANAL_QUIET_HOURS", "HH:MM"),
    ('frequency_caps = "3 a day"', "OMNICANAL_FREQUENCY_CAPS", "COUNT/PERIOD"),
    ('frequency_caps = ["3/1d", "often"]', "OMNICANAL_FREQUENCY_CAPS", "COUNT/PERIOD"),
    ('quiet_hours_by_channel = {email = "late"}', "OMNICANAL_QUIET_HOURS_BY_CHANNEL", "START-END"),
    ('rate_limits = {twilio_sms = 0}', "OMNICANAL_RATE_LIMITS", "positive number"),
    ('rate_limits = "twilio_sms"', "OMNICANAL_RATE_LIMITS", "channel=value"),
    ('channels = "sms:twilio_sms"', "OMNICANAL_CHANNELS", "channel=value"),
    ("clock_speed = 0", "OMNICANAL_CLOCK_SPEED", "greater than 0"),
    ('trusted_proxies = ["10.0.0.0/8", "proxy.internal"]', "OMNICANAL_TRUSTED_PROXIES", "named by address"),
    ("colour = 1", "OMNICANAL_COLOUR", "not permitted"),
])
def test_a_wrong_value_in_the_file_names_the_variable(tmp_path: Path, source: str, variable: str,
                                                       hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, source + "\n"))
    line = next(line for line in str(raised.value).splitlines() if variable in line)
    assert hint in line, line


def test_a_wrong_value_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_RATE_LIMITS", "twilio_sms=fast")
    with pytest.raises(ConfigError, match=r"OMNICANAL_RATE_LIMITS: .*twilio_sms=fast: a rate is a positive number"):
        load_settings()


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"omnicanal\.toml: invalid TOML"):
        load_settings(write(tmp_path, "port = \n"))
