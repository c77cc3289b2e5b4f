"""Settings: environment variables `OMNICANAL_*`, optionally a TOML file, validated once at start.

Precedence, highest first: explicit values (CLI options), environment variables, the TOML file named by
`--config` or `OMNICANAL_CONFIG_FILE` (read by pydantic-settings' TOML source), the defaults below. Values are
parsed once, here: frequency caps, quiet hours and rate limits reach the engine typed, and a wrong value stops
the process with a ConfigError naming the variable.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from omnicanal.channels import CHANNELS
from omnicanal.errors import ConfigError
from omnicanal.outbound import Network, OutboundPolicy, parse_allowed
from omnicanal.policy.caps import Cap, parse_caps
from omnicanal.policy.windows import QuietHours
from omnicanal.store.connection import CLUSTER_SCHEMES
from omnicanal.suggest import did_you_mean

ENV_PREFIX = "OMNICANAL_"
DEFAULT_QUIET_HOURS = QuietHours.parse("21:00-08:00")


def _pairs(text: str) -> dict[str, str]:
    """`sms=twilio_sms, email=off` → {"sms": "twilio_sms", "email": "off"}; ValueError naming a bad item."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{item!r} is not channel=value (e.g. sms=twilio_sms, email=off)")
        pairs[key.strip()] = value.strip()
    return pairs


def _rate(connector: str, rate: Any) -> float:
    """A positive number of sends per second, from text or a TOML number (`true` is not one)."""
    try:
        value = 0.0 if isinstance(rate, bool) else float(rate)
    except (TypeError, ValueError):
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{connector}={rate}: a rate is a positive number of sends per second")
    return value


def _channel_names(names: Iterable[str]) -> None:
    """ValueError for a name that is no channel: a misspelt one would leave the real channel as it was, unsaid
    (SMS marketing without the opt-in `OMNICANAL_OPT_IN_CHANNELS=smss` meant)."""
    for name in names:
        if name not in CHANNELS:
            raise ValueError(f"no channel {name!r}{did_you_mean(name, CHANNELS)}; the channels are "
                             f"{', '.join(CHANNELS)}")


REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
"""The URLs open_redis takes."""


def _redis_url(url: str) -> None:
    """ValueError for a Redis URL that could not be opened, or would open something else than meant (`/abc` as
    the database was database 0). The URL is never repeated: it may hold a password."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise ValueError(f"a Redis URL begins with {', '.join(s + '://' for s in REDIS_SCHEMES)}, e.g. "
                         "redis://127.0.0.1:6379/0")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - read for its ValueError
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    database = parts.path.strip("/") if scheme in ("redis", "rediss") else ""
    if database and not database.isdigit():
        raise ValueError("the database is a number: redis://host:6379/0")


def _window(value: Any) -> Any:
    """Quiet hours from their text (`21:00-08:00`, `off`); in a TOML file a number or table is not one."""
    if isinstance(value, str):
        return QuietHours.parse(value)
    if value is None or isinstance(value, QuietHours):
        return value
    raise ValueError('write it as text, e.g. "21:00-08:00", or "off"')


_DAY = 86_400
_TEN_YEARS = 3650 * _DAY
"""The longest duration a setting that becomes a Redis expiry or a journey-time offset takes: far past any real
need, and far below what Redis (`EX`, milliseconds in 64 bits) or a date (the year 9999) can hold."""
LOG_LEVELS = ("debug", "info", "warning", "error")


class Settings(BaseSettings):
    """Everything an operator can set. Field `x` is read from `OMNICANAL_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the TOML file (`model_config["toml_file"]`, if any)."""
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:6379/0) or a Cluster node (redis+cluster://host:7000). "
        "Unset: the embedded in-process store.",
    )
    workspace: str = Field(
        default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Key namespace in Redis."
    )
    workspaces_dir: Path | None = Field(
        default=None, description="A folder of workspaces, each a folder `<workspace>/journeys`, `templates`, "
        "`segments`: the process serves every one, each with its own data, keys and files. Unset: one workspace, "
        "OMNICANAL_WORKSPACE, with OMNICANAL_JOURNEYS_DIR and the others.",
    )
    journeys_dir: Path = Field(default=Path("journeys"), description="Directory of journey YAML files.")
    templates_dir: Path = Field(default=Path("templates"), description="Directory of message templates.")
    segments_dir: Path = Field(default=Path("segments"), description="Directory of segment YAML files (none there: "
                                                                     "no segments).")
    default_locale: str = Field(default="en", description="Template locale used when the customer's is missing.")
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API (0: any free port).")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys with every scope; when set (or once `omnicanal keys create` made "
        "one), /v1 requests need `Authorization: Bearer <key>`.",
    )
    rate_limit_per_key: int = Field(
        default=0, ge=0, description="Requests per second each API key may make, counted in Redis for all API "
        "processes together; over it, 429 with Retry-After. While the API needs no key, each client address counts "
        "as a key. 0: no limit.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Addresses and networks of the reverse proxies in front of the API, e.g. "
        "`10.0.0.0/8,127.0.0.1`: a request coming from one is counted by the client address its X-Forwarded-For "
        "names. Empty: X-Forwarded-For is ignored (anyone could write it), a request counts by the address it "
        "comes from.",
    )
    ui_secret: str | None = Field(
        default=None,
        description="Signs the dashboard's session cookies; unset: a random secret per process (sessions end at "
        "restart and are not shared between API processes).",
    )
    channels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Channel to connector routes, e.g. `sms=twilio_sms,email=smtp_email`; others use the outbox.",
    )
    opt_in_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Channels where marketing needs the customer's explicit consent (e.g. `sms,whatsapp,email`).",
    )
    frequency_caps: Annotated[tuple[Cap, ...], NoDecode] = Field(
        default=(), description="Marketing caps across journeys, e.g. `3/1d,channel:1/4h` (empty: none)."
    )
    quiet_hours: Annotated[QuietHours | None, NoDecode] = Field(
        default=DEFAULT_QUIET_HOURS, description="Customer-local hours when marketing is held, or `off`."
    )
    quiet_hours_by_channel: Annotated[dict[str, QuietHours | None], NoDecode] = Field(
        default_factory=dict, description="Per-channel override, e.g. `email=off,push=22:00-07:00`."
    )
    default_timezone: str = Field(default="UTC", description="Time zone of customers whose profile has none (an IANA "
                                  "name, e.g. Europe/Paris).")
    default_region: str = Field(
        default="FR", pattern=r"^[A-Z]{2}$", description="Country for phone numbers written without +code."
    )
    rate_limits: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, description="Sends per second per connector, e.g. `twilio_sms=30,smtp_email=10`."
    )
    global_control: Annotated[float, NoDecode] = Field(
        default=0.0, ge=0, lt=1, description="Share of customers who get no marketing at all while their goals are "
        "counted (the baseline of the whole programme), e.g. `5%` or `0.05`; picked by a hash of the customer id.",
    )
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts `fetch` steps may call, e.g. `shop.example,*.shop.example` (`*`: "
        "any public host); a private or loopback address only for a host listed by its exact name. Empty: none.",
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts and networks a URL taken from data (a customer's `webhook` "
        "address, a `fetch` step) may reach although they are not public, e.g. `hooks.internal,10.0.0.0/8`. Empty: "
        "public addresses only (no loopback, private or link-local address).",
    )
    fetch_max_bytes: int = Field(default=262_144, ge=1024, description="Largest answer a `fetch` step accepts.")
    coupon_secret: str | None = Field(
        default=None, description="Key coupon codes are derived with (unset: one made and kept per workspace in "
        "Redis); the same everywhere, secret: who has it can compute codes.",
    )
    send_retry_budget: float = Field(
        default=3600.0, gt=0, allow_inf_nan=False,
        description="Journey seconds a send keeps retrying a failing channel before the next."
    )
    public_url: str | None = Field(
        default=None, description="Externally reachable base URL of the API, for provider status callbacks, "
        "tracked links (/r/...) and unsubscribe pages (/u/...).",
    )
    link_secret: SecretStr | None = Field(
        default=None, description="Signs tracked links and unsubscribe links (HMAC-SHA256; at least "
        "16 characters, the same on every process). Unset, or no public URL: links stay as written.",
    )
    inbox_secret: SecretStr | None = Field(
        default=None, description="Signs the customer ids the in-app inbox is read with (`GET /v1/inbox?customer="
        "<id>&signature=<hex HMAC-SHA256 of the id>`: your backend signs, your app asks; at least 16 characters). "
        "Unset: the inbox API is off (messages on channel `inbox` are still kept).",
    )
    clock_speed: float = Field(
        default=1.0, gt=0, le=1e8, description="Journey time per real second: 3600 runs an hour of waits in a second "
        "(at most 10^8, three years a second: a journey clock past the year 9999 is no date)."
    )
    partitions: int = Field(
        default=16, ge=1, le=1024, description="Work stream partitions (customers are hashed onto them)."
    )
    worker_id: str = Field(
        default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}",
        description="Consumer name in the Redis consumer group.",
    )
    lease_seconds: float = Field(
        default=10.0, ge=1, le=_DAY, description="A dead worker's partitions are taken over after this many seconds."
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, allow_inf_nan=False,
        description="Seconds SIGTERM waits for work in hand before handing it back."
    )
    reload_interval: float = Field(
        default=2.0, ge=0, allow_inf_nan=False,
        description="Seconds between looks for changed journey/template files (0: only SIGHUP)."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted request body.")
    header_timeout: float = Field(
        default=15.0, gt=0, allow_inf_nan=False,
        description="Seconds a client has to send a request's headers, from the connection or "
        "the previous answer (so also how long an idle keep-alive connection is kept).",
    )
    body_timeout: float = Field(
        default=30.0, gt=0, allow_inf_nan=False, description="Seconds a client has to send a request's body."
    )
    max_properties_bytes: int = Field(
        default=65_536, ge=1024, description="Largest event `properties` (and profile `attributes`), as JSON bytes."
    )
    max_list_items: int = Field(
        default=1_000, ge=1, description="Most items of a list inside event properties or profile attributes."
    )
    idempotency_window: float = Field(
        default=7 * 86400, gt=0, le=_TEN_YEARS, description="Seconds an idempotency key is remembered."
    )
    stats: bool = Field(
        default=True, description="Count what journeys do (the stats, the dashboard's funnel, attribution); false "
        "writes no counter: for a deployment that measures elsewhere and wants every message/s (bench: a tenth).",
    )
    stats_retention: float = Field(
        default=90 * 86400, gt=0, le=_TEN_YEARS,
        description="Seconds the hourly counters of the stats are kept (the totals stay)."
    )
    timeline_limit: int = Field(
        default=5_000, ge=10, description="Timeline entries kept per customer; the oldest go as new ones come."
    )
    schedule_grace: float = Field(
        default=3600.0, ge=0, allow_inf_nan=False,
        description="Journey seconds a scheduled journey's occurrence may still fire late (no "
        "process was running at its moment, or the journey was just deployed); older ones are skipped."
    )
    segment_backfill_rate: float = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="Customers per second a segment's backfill queues at most (0: as fast as "
        "the workers apply them: the walk waits while the work streams hold more than a few batches)."
    )
    timer_poll_interval: float = Field(
        default=0.05, gt=0, le=60, description="Real seconds between two looks for due timers."
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    log_format: str = Field(default="json", pattern="^(json|console)$", description="json or console.")
    retention_days: float | None = Field(
        default=None, gt=0, le=_TEN_YEARS / 86400,
        description="Erase customers inactive (no event, timer or profile update applied) for "
        "this many days of journey time; unset: kept until erased with DELETE /v1/customers/{id}.",
    )
    log_pii: bool = Field(
        default=False, description="Write customers' e-mail addresses, phone numbers, push tokens and message "
        "bodies in the logs (masked otherwise): for debugging on a test system only.",
    )

    @field_validator("opt_in_channels", "fetch_allowed_hosts", "outbound_allow", "trusted_proxies", mode="before")
    @classmethod
    def _split_channels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [channel.strip() for channel in value.split(",") if channel.strip()]
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        parse_allowed(value)  # a ValueError names the entry that is neither
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or network (10.0.0.0/8, 127.0.0.1): proxies are "
                                 f"named by address, not host name") from None
        return value

    @property
    def proxies(self) -> tuple[Network, ...]:
        """OMNICANAL_TRUSTED_PROXIES as networks (access.client_address)."""
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)

    @property
    def outbound(self) -> OutboundPolicy:
        """Where URLs taken from data may lead besides public addresses (outbound.py)."""
        return OutboundPolicy.of(self.outbound_allow)

    @property
    def retention(self) -> float | None:
        """OMNICANAL_RETENTION_DAYS in seconds (None: off)."""
        return self.retention_days * 86400 if self.retention_days is not None else None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """Keys from `k1,k2` or a TOML list. An empty key is refused, never dropped: dropped, `" , "` would turn
        authentication off, and kept, it would let in a request without a key. Only a variable that is entirely
        blank means no keys (as `OMNICANAL_API_KEYS=` in a compose file)."""
        if isinstance(value, str):
            if not value.strip():
                return []
            value = value.split(",")
        if isinstance(value, list | tuple):
            keys = [key.strip() if isinstance(key, str) else key for key in value]
            if any(key == "" for key in keys):
                raise ValueError("an empty API key (a blank item, or two commas in a row) is refused: it would let "
                                 "requests without a key through; remove it, or leave the whole setting unset to "
                                 "run without keys")
            return keys
        return value

    @field_validator("public_url")
    @classmethod
    def _reachable(cls, value: str | None) -> str | None:
        """Links and status callbacks are this text followed by `/r/...`: `go.shop.example` (no scheme) made every
        tracked link in every message a relative path that leads nowhere."""
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"{value!r} is not an http:// or https:// URL with a host (and no ?query or "
                                 "#fragment): write where customers reach the API, e.g. https://go.shop.example")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in (*LOG_LEVELS, "critical"):
            raise ValueError(f"{value!r} is not a log level: write {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris or UTC") from None
        return value

    @field_validator("link_secret", "inbox_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters, e.g. the output of `openssl rand -hex 32`")
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _routes(cls, value: Any) -> Any:
        return _pairs(value) if isinstance(value, str) else value

    @field_validator("channels", "quiet_hours_by_channel", "opt_in_channels")
    @classmethod
    def _known_channels(cls, value: Any) -> Any:
        _channel_names(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _openable(cls, value: str | None) -> str | None:
        if value:
            _redis_url(value)
        return value

    @field_validator("global_control", mode="before")
    @classmethod
    def _share(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"{value!r} is not a share: write e.g. 5% or 0.05") from None
        return value

    @field_validator("frequency_caps", mode="before")
    @classmethod
    def _caps(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_caps(value)
        if isinstance(value, list | tuple):  # a TOML array: ["3/1d", "channel:1/4h"]
            if not all(isinstance(cap, str | Cap) for cap in value):
                raise ValueError('write each cap as text, e.g. "3/1d" or "channel:1/4h"')
            return tuple(Cap.parse(cap) if isinstance(cap, str) else cap for cap in value)
        return value

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours(cls, value: Any) -> Any:
        return _window(value)

    @field_validator("quiet_hours_by_channel", mode="before")
    @classmethod
    def _channel_quiet_hours(cls, value: Any) -> Any:
        windows = _pairs(value) if isinstance(value, str) else value
        if not isinstance(windows, Mapping):
            return windows
        return {channel: _window(window) for channel, window in windows.items()}

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rates(cls, value: Any) -> Any:
        rates = _pairs(value) if isinstance(value, str) else value
        if not isinstance(rates, Mapping):
            return rates
        return {connector: _rate(connector, rate) for connector, rate in rates.items()}

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured and the in-process store is used."""
        return not self.redis_url


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from explicit overrides (CLI options), the environment, then the TOML file (if any)."""
    path = config_file or (Path(p) if (p := os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")) else None)
    settings_cls = Settings
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"cannot read config file {path}: no such file (--config or {ENV_PREFIX}CONFIG_FILE)")

        class FileSettings(Settings):
            """Settings that read this file: the TOML source takes its path from `model_config`."""

            model_config = SettingsConfigDict(toml_file=path)

        settings_cls = FileSettings
    try:
        return settings_cls(**{k: v for k, v in overrides.items() if v is not None})
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except ValidationError as exc:
        problems = [
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from exc
