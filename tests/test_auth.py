"""Authentication cannot be switched off by mistake: an empty key is refused at start, naming the variable, and a
key header the server cannot read is a 401 like any wrong key."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import StartApi
from omnicanal.config import ENV_PREFIX, load_settings
from omnicanal.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("value", [" , ", ",", "s3cret,", "s3cret, ,other"])
def test_an_empty_key_in_the_environment_stops_the_start_naming_the_variable(
        clean_env: None, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OMNICANAL_API_KEYS", value)
    with pytest.raises(ConfigError, match=r"OMNICANAL_API_KEYS: .*empty API key"):
        load_settings()


def test_an_empty_key_in_the_file_stops_the_start_naming_the_variable(clean_env: None, tmp_path: Path) -> None:
    path = tmp_path / "omnicanal.toml"
    path.write_text('api_keys = ["", "s3cret"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"OMNICANAL_API_KEYS: .*empty API key"):
        load_settings(path)


def test_keys_are_read_and_a_blank_variable_means_none(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_API_KEYS", " s3cret , other ")
    assert load_settings().api_keys == ["s3cret", "other"]
    monkeypatch.setenv("OMNICANAL_API_KEYS", "")  # `OMNICANAL_API_KEYS: ${OMNICANAL_API_KEYS:-}` in compose
    assert load_settings().api_keys == []


async def raw_get(port: int, header: bytes) -> tuple[int, dict[str, object]]:
    """GET /v1/journeys with a header line sent as raw bytes (clients refuse to send bytes that are not text)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def keyed_api(start_api: StartApi) -> tuple[int, Any]:
    """The port of an API whose one key is `s3cret`, and its journey listing asked with that key."""
    api = await start_api(api_keys=["s3cret"])
    port = api.client.port
    assert port is not None
    return port, await api.request("GET", "/v1/journeys", 200, headers={"X-API-Key": "s3cret"})


@pytest.mark.parametrize("header", [b"X-API-Key: \xff\xfe", b"Authorization: Bearer s3cr\xc3t",
                                    b"Authorization: Bearer \xe9t\xe9"])
async def test_a_key_header_that_is_not_text_is_401_json(start_api: StartApi, header: bytes) -> None:
    port, listed = await keyed_api(start_api)
    status, body = await raw_get(port, header)
    assert (status, body["error"]) == (401, "unauthorized")
    assert await raw_get(port, b"Authorization: Bearer s3cret") == (200, listed)


@pytest.mark.parametrize("header", [b"Authorization: bearer s3cret", b"Authorization: BEARER s3cret",
                                    b"Authorization: Bearer  s3cret"])
async def test_the_bearer_scheme_is_read_in_any_case(start_api: StartApi, header: bytes) -> None:
    """RFC 9110: the scheme is case-insensitive; `bearer s3cret`, as some client libraries write it, was a 401."""
    port, listed = await keyed_api(start_api)
    assert await raw_get(port, header) == (200, listed)
    assert (await raw_get(port, b"Authorization: Basic s3cret"))[0] == 401
