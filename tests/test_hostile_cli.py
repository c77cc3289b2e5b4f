"""The command line misused: files that are not what they should be, values no one meant. Each must end with one
`error:` line naming what to fix and a non-zero exit code, never a traceback or a hang."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import aiohttp
import pytest

from omnicanal.client import request_json
from omnicanal.errors import DaemonUnreachable
from test_cli import OMNICANAL, run

pytestmark = pytest.mark.slow  # each test starts the command as its own process

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


@pytest.mark.parametrize(("scenario", "named"), [
    (b"\xff\xfeevents: []\n", "--scenario"),
    (BOMB.encode(), "--scenario"),
    (b"events:\n  - {at: .nan, name: cart_abandoned}\n", "events.0.at"),
    (b"events:\n  - {at: .inf, name: cart_abandoned}\n", "events.0.at"),
    (b"events:\n  - {at: -3600, name: cart_abandoned}\n", "events.0.at"),
    (b"updates:\n  - {at: .nan, profile: {locale: fr}}\n", "updates.0.at"),
    (b"until: .nan\n", "until"),
    (b"until: -5\n", "until"),
    (b"until: .inf\n", "until"),
    # a list, or a scalar that YAML reads as false, was an empty scenario: "the journey did not start", exit 0
    (b"- {at: 0s, name: cart_abandoned}\n", "--scenario"),
    (b"[]\n", "--scenario"),
    (b"false\n", "--scenario"),
])
def test_a_scenario_with_values_no_one_meant_is_refused_naming_the_field(project: Path, scenario: bytes,
                                                                          named: str) -> None:
    (project / "scenario.yaml").write_bytes(scenario)
    result = run("simulate", "abandoned_cart", "--scenario", "scenario.yaml", cwd=project, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: {named}"), result.stderr


def test_a_scenario_event_of_a_customer_not_in_it_is_refused_naming_the_scenario(project: Path) -> None:
    (project / "scenario.yaml").write_text("events:\n  - {name: cart_abandoned, customer: bob}\n")
    result = run("simulate", "abandoned_cart", "--scenario", "scenario.yaml", cwd=project, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ("error: --scenario: events[0].customer: no customer 'bob' in the scenario (expected one "
                             "of: simulated)\n")


def test_a_key_written_twice_in_a_scenario_is_refused_with_its_line(project: Path) -> None:
    (project / "scenario.yaml").write_text("until: 1d\nevents: []\nuntil: 2d\n")
    result = run("simulate", "abandoned_cart", "--scenario", "scenario.yaml", cwd=project, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "error: --scenario: scenario.yaml:3: duplicate key 'until' (first at line 1)\n"


@pytest.mark.parametrize(("env", "expected"), [
    ({"OMNICANAL_RATE_LIMITS": "twilio_smss=30"},
     "error: OMNICANAL_RATE_LIMITS: no connector 'twilio_smss' (did you mean 'twilio_sms'?)"),
    ({"OMNICANAL_REDIS_URL": "redis://127.0.0.1:6379/999"},
     "error: Redis is unavailable: DB index is out of range"),
    ({"OMNICANAL_REDIS_URL": "redis+cluster://127.0.0.1:6379"},
     "error: Redis is unavailable: Redis Cluster cannot be connected"),
])
def test_a_start_the_redis_or_the_connectors_refuse_ends_with_one_line(project: Path, env: dict[str, str],
                                                                        expected: str) -> None:
    result = run("serve", "--port", "0", cwd=project, timeout=30, OMNICANAL_LOG_FORMAT="console", **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith(expected), result.stderr


@pytest.mark.parametrize("command", [("dlq", "list"), ("keys", "list"), ("journeys", "pause", "abandoned_cart")])
def test_an_admin_command_on_a_redis_that_refuses_the_database_ends_with_one_line(project: Path,
                                                                                   command: tuple[str, ...]) -> None:
    result = run(*command, cwd=project, timeout=30, OMNICANAL_REDIS_URL="redis://127.0.0.1:6379/999")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "error: Redis is unavailable: DB index is out of range\n", result.stderr


def test_init_where_a_file_stands_ends_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder\n")
    result = run("init", "taken/project", cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == ("error: cannot write the project in taken/project: Not a directory "
                             "(taken/project/journeys)\n")


def test_init_never_writes_through_a_link_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "project" / "journeys").mkdir(parents=True)
    (tmp_path / "project" / "journeys" / "abandoned_cart.yaml").symlink_to(tmp_path / "outside.yaml")
    refused = run("init", "project", cwd=tmp_path, timeout=30)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "project already holds journeys/abandoned_cart.yaml" in refused.stderr
    forced = run("init", "project", "--force", cwd=tmp_path, timeout=30)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert not (tmp_path / "outside.yaml").exists()
    assert not (tmp_path / "project" / "journeys" / "abandoned_cart.yaml").is_symlink()


@pytest.fixture
def redis_env(redis_url: str) -> dict[str, str]:
    return {"OMNICANAL_REDIS_URL": redis_url}


@pytest.mark.parametrize("action", ["pause", "resume", "stop", "drain"])
def test_a_journey_command_with_a_misspelt_id_changes_nothing_and_says_so(project: Path, redis_env: dict[str, str],
                                                                          action: str) -> None:
    result = run("journeys", action, "abandonned_cart", cwd=project, timeout=30, **redis_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: no journey 'abandonned_cart' (did you mean 'abandoned_cart'?) in "
                                    "journeys or among those workspace 'default' ran"), result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "expected"), [
    (("dlq", "retry", "nope"), "error: 'nope' is not a dead-letter id"),
    (("dlq", "drop", "1-0", "abc"), "error: 'abc' is not a dead-letter id"),
    (("dlq", "list", "--limit", "0"), "Invalid value for '--limit'"),
    (("dlq", "list", "--limit", "99999999999999999999"), "Invalid value for '--limit'"),
    (("broadcasts", "list", "--limit", "-1"), "Invalid value for '--limit'"),
    (("broadcast", "abandoned_cart", "--everyone", "--rate", "nan", "--no-follow"), "error: rate: customers per "
                                                                                   "second"),
    (("broadcast", "abandoned_cart", "--everyone", "--rate", "inf", "--no-follow"), "error: rate: customers per "
                                                                                   "second"),
])
def test_an_admin_argument_no_one_meant_is_refused_without_a_traceback(project: Path, redis_env: dict[str, str],
                                                                       args: tuple[str, ...], expected: str) -> None:
    result = run(*args, cwd=project, timeout=30, **redis_env)
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert result.stdout == ""


def test_serve_on_a_port_already_taken_ends_with_one_line(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), cwd=project, timeout=30, OMNICANAL_LOG_FORMAT="console")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: error while attempting to bind on address ('127.0.0.1', {port}): "
        "address already in use (set OMNICANAL_HOST and OMNICANAL_PORT, or --host and --port)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_validate_on_a_folder_it_may_not_read_ends_with_one_line(project: Path) -> None:
    (project / "journeys").chmod(0)
    try:
        result = run("validate", cwd=project, timeout=30)
    finally:
        (project / "journeys").chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "error: cannot open journeys: Permission denied\n", result.stderr


def test_export_to_a_folder_that_is_not_there_ends_with_one_line(project: Path, redis_env: dict[str, str]) -> None:
    result = run("export", "events", "--since", "2026-01-01", "-o", "missing/events.jsonl", cwd=project, timeout=30,
                 **redis_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == "error: cannot open missing/events.jsonl.partial: No such file or directory\n"
    assert not (project / "missing").exists()


@pytest.fixture
def not_the_api() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every request with an HTML page."""
    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            body = b"<html><body>It works!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("url", "expected"), [
    ("htp:/127.0.0.1:8080", "error: htp:/127.0.0.1:8080/v1/events is not an http:// or https:// URL with a host: "
                            "check --url (e.g. http://127.0.0.1:8080)"),
    ("http://", "error: http:///v1/events is not an http:// or https:// URL with a host: check --url (e.g. "
                "http://127.0.0.1:8080)"),
    ("THE_API", "error: THE_API/v1/events answered HTTP 200 with a body that is not JSON: is it omnicanal's API? "
                "(check --url)"),
])
def test_send_event_to_a_url_that_is_not_the_api_ends_with_one_line(not_the_api: str, url: str,
                                                                    expected: str) -> None:
    url = url.replace("THE_API", not_the_api)
    result = run("send-event", "cart_abandoned", "c1", "--url", url, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == expected.replace("THE_API", not_the_api) + "\n", result.stderr


async def test_a_daemon_that_never_answers_is_named_with_the_time_waited() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never reads a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/events"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
            with pytest.raises(DaemonUnreachable) as raised:
                await request_json("POST", url, {"name": "x"}, session=session)
    assert str(raised.value) == (f"{url} did not answer within 0.5 s: is `omnicanal serve` running there, and not "
                                 "overloaded?")


@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("keys", "list"), ("stats", "abandoned_cart")])
def test_a_redis_url_naming_a_server_that_is_not_redis_ends_with_one_line(project: Path, not_the_api: str,
                                                                          command: tuple[str, ...]) -> None:
    """A wrong port in OMNICANAL_REDIS_URL (an HTTP server's) was a traceback of redis-py's protocol parser."""
    url = not_the_api.replace("http://", "redis://") + "/0"
    result = run(*command, cwd=project, timeout=30, OMNICANAL_REDIS_URL=url, OMNICANAL_LOG_FORMAT="console")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "error: Redis is unavailable: what answers at OMNICANAL_REDIS_URL does not speak Redis"), result.stderr


@pytest.mark.parametrize("args", [("demo",), ("--help",), ("simulate", "--help"), ("graph", "abandoned_cart")])
@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_terminal_that_is_not_utf8_gets_the_output_not_a_traceback(project: Path, args: tuple[str, ...],
                                                                     encoding: str) -> None:
    """A host whose locale is Latin-1 (or a PYTHONIOENCODING of ascii): an em dash in the demo's banner or a
    command's help was a UnicodeEncodeError traceback, and the demo ended at its first line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNICANAL_")}
    result = subprocess.run([OMNICANAL, *args], cwd=project, capture_output=True, timeout=60,
                            env={**clean, "PYTHONIOENCODING": encoding, "PYTHONUTF8": "0"})
    stdout, stderr = result.stdout.decode(encoding), result.stderr.decode(encoding, "replace")
    assert result.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr, stderr
    assert "\\u2014" in stdout or "flowchart" in stdout, stdout
