"""Typed settings for a connector, whoever built the connector.

The registry passes each connector the settings it read with `load_connector_settings`; a program embedding a
connector may pass a settings object it built, or none. Either way the connector ends up with its own settings
model, checked, so its code reads `self.config.timeout` rather than casting a `ConnectorSettings`.
"""

from __future__ import annotations

from typing import TypeVar

from omnicanal.channels import Connector, ConnectorSettings, load_connector_settings
from omnicanal.errors import ConfigError

SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)


def configured(cls: type[Connector], settings: ConnectorSettings | None, model: type[SettingsT]) -> SettingsT:
    """`settings` as `model`, read from the environment when None; a ConfigError names what is wrong."""
    if settings is None:
        settings = load_connector_settings(cls)
    if not isinstance(settings, model):
        raise ConfigError(f"connector {cls.name!r} needs {model.__name__} settings, got {type(settings).__name__}")
    return settings
