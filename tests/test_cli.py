"""The `omnicanal` command as a user runs it: validate, graph, demo, send-event, --help."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, StartApi
from omnicanal.config import ENV_PREFIX, load_settings

pytestmark = pytest.mark.slow  # each test starts the command as its own process

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))


def run(*args: str, cwd: Path = ROOT, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNICANAL_")}
    return subprocess.run([OMNICANAL, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True,
                          timeout=timeout)


def at_once(*commands: Callable[[], subprocess.CompletedProcess[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Commands that change nothing another one reads, run at the same time (each is its own process)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda command: command(), commands))


def test_validate_accepts_the_shipped_project() -> None:
    result = run("validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "valid" in result.stderr


def test_validate_prints_every_problem_with_file_and_line(project: Path) -> None:
    broken = project / "journeys" / "broken.yaml"
    broken.write_text(
        "id: broken\n"
        "trigger: {event: cart_abandoned}\n"
        "steps:\n"
        "  - wait: 1 hour\n"
        "  - send: {template: no_such_template, channels: [sms]}\n"
        "  - goto: nowhere\n",
        encoding="utf-8",
    )
    result = run("validate", str(project / "journeys"), "--templates", str(project / "templates"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{broken}:4: ") and "1 hour" in line for line in lines), lines
    assert any(line.startswith(f"{broken}:5: ") and "no_such_template" in line for line in lines), lines
    assert any(line.startswith(f"{broken}:6: ") and "nowhere" in line for line in lines), lines
    assert "3 problem(s)" in result.stderr


def test_validate_names_a_missing_directory(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "OMNICANAL_JOURNEYS_DIR" in result.stderr


def test_validate_given_a_file_says_to_give_its_folder(tmp_path: Path) -> None:
    """`omnicanal validate journeys/abandoned_cart.yaml` answered that OMNICANAL_JOURNEYS_DIR was not a directory,
    naming a variable the user never set."""
    result = run("init", str(tmp_path / "shop"))
    assert result.returncode == 0, result.stderr
    result = run("validate", "journeys/abandoned_cart.yaml", cwd=tmp_path / "shop")
    assert result.returncode == 2
    assert ("journeys/abandoned_cart.yaml is a file: validate checks a folder, every file in it at once "
            "(OMNICANAL_JOURNEYS_DIR): omnicanal validate .") in result.stderr, result.stderr


def test_graph_prints_mermaid() -> None:
    result = run("graph", "abandoned_cart")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("flowchart TD")
    assert "last_chance" in result.stdout and "push_discount" in result.stdout
    missing = run("graph", "nope")
    assert missing.returncode == 2 and "abandoned_cart" in missing.stderr


def test_demo_tells_the_reference_scenario_in_seconds(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path, timeout=60)  # no journeys/ here: the reference project shipped with omnicanal
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "── lea" in out and "── tom" in out
    lea = out[out.index("── lea"):out.index("── tom")]
    assert "push · cart_discount · sent" in lea
    assert "whatsapp · order_thanks · sent" in lea and "Lyon Part-Dieu" in lea
    assert lea.index("cart_discount") < lea.index("order_placed") < lea.index("order_thanks")
    tom = out[out.index("── tom"):]
    assert "email · cart_reminder · sent" in tom and "order_thanks" not in tom
    assert "embedded store" in out
    assert "project: the reference project shipped with omnicanal" in out


def test_simulate_tells_which_message_on_which_channel_when() -> None:
    result, no_purchase, untriggered = at_once(
        lambda: run("simulate", "abandoned_cart", "--scenario", "examples/abandoned_cart.scenario.yaml"),
        lambda: run("simulate", "welcome_series"), lambda: run("simulate", "abandoned_cart"))
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()[1:]]
    sent = [(words[0], words[2], words[3]) for words in lines if words[1] == "sent"]
    assert sent == [("+1h", "push", "cart_discount"), ("+14h", "whatsapp", "order_thanks")]
    assert result.stdout.rstrip().endswith("journey  exited (bought)")
    assert [w[0] for w in map(str.split, no_purchase.stdout.splitlines()) if "sent" in w] == ["+0s", "+48h", "+1w"]
    assert "did not start" in untriggered.stdout and "--scenario" in untriggered.stdout


def test_init_writes_a_project_that_validates_and_simulates(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    result = run("init", str(project), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "journeys/ (4), templates/ (10), examples/ (1), schemas/ (4), .env.example" in result.stdout
    commands = [line.strip() for line in result.stdout.split("next:\n", 1)[1].splitlines()]
    assert commands[0] == f"cd {project}"

    validated, simulated, from_outside = at_once(
        lambda: run(*commands[1].split()[1:], cwd=project),  # the next commands, as printed
        lambda: run(*commands[2].split()[1:], cwd=project),
        lambda: run("validate", str(project), cwd=tmp_path))  # a project folder, from anywhere
    assert validated.returncode == 0 and "valid" in validated.stderr, validated.stderr
    assert simulated.returncode == 0, simulated.stderr
    assert "whatsapp  order_thanks" in simulated.stdout and "exited (bought)" in simulated.stdout
    assert from_outside.returncode == 0, from_outside.stdout + from_outside.stderr
    assert f"{project / 'templates'}" in from_outside.stderr


def test_init_writes_an_env_example_of_real_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    text = (tmp_path / ".env.example").read_text(encoding="utf-8")
    assignments = [line.removeprefix("# ") for line in text.splitlines() if re.match(r"(# )?OMNICANAL_\w+=", line)]
    assert {"OMNICANAL_REDIS_URL", "OMNICANAL_JOURNEYS_DIR", "OMNICANAL_PORT", "OMNICANAL_CHANNELS"} <= {
        line.split("=", 1)[0] for line in assignments}
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for line in assignments:  # the defaults as written, and every commented-out example too, are valid settings
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0" and settings.channels["sms"] == "twilio_sms"


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    mine = tmp_path / "journeys" / "welcome_series.yaml"
    mine.write_text("id: mine\n", encoding="utf-8")
    refused = run("init", str(tmp_path))
    assert refused.returncode == 2
    assert "journeys/welcome_series.yaml" in refused.stderr and "--force" in refused.stderr
    assert mine.read_text(encoding="utf-8") == "id: mine\n"
    forced = run("init", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert mine.read_text(encoding="utf-8") == (ROOT / "journeys" / "welcome_series.yaml").read_text(encoding="utf-8")


def test_config_errors_name_the_variable() -> None:
    result = run("validate", OMNICANAL_CLOCK_SPEED="fast")
    assert result.returncode == 2
    assert "OMNICANAL_CLOCK_SPEED" in result.stderr


def test_help_teaches() -> None:
    result, send_event, init = at_once(lambda: run("--help"), lambda: run("send-event", "--help"),
                                       lambda: run("init", "--help"))
    assert result.returncode == 0
    for command in ("serve", "api", "worker", "validate", "graph", "simulate", "send-event", "demo", "init", "dlq",
                    "journeys"):
        assert command in result.stdout
    assert "Example" in send_event.stdout
    assert "Example: omnicanal init my-project" in init.stdout


async def test_send_event_posts_to_a_running_daemon(start_api: StartApi) -> None:
    api = await start_api()
    url = str(api.client.make_url("")).rstrip("/")
    result = await _run_async("send-event", "page_viewed", "cli1", "-p", '{"page": "/"}', "--url", url,
                              "--idempotency-key", "k1")
    assert result[0] == 0, result
    assert '"status": "accepted"' in result[1]
    await api.settled()
    [entry] = await api.timeline("cli1")
    assert entry["properties"] == {"page": "/"}
    unreachable = await _run_async("send-event", "x", "c1", "--url", "http://127.0.0.1:9")
    assert unreachable[0] == 1 and "omnicanal serve" in unreachable[2]


async def test_send_event_reaches_a_daemon_listening_on_every_address(start_api: StartApi) -> None:
    """Without --url, OMNICANAL_HOST=:: (every IPv6 address) made `http://:::8080`, refused as no URL."""
    api = await start_api()
    everywhere = await _run_async("send-event", "page_viewed", "cli2",
                                  env={"OMNICANAL_HOST": "0.0.0.0", "OMNICANAL_PORT": str(api.client.port)})
    assert everywhere[0] == 0 and '"status": "accepted"' in everywhere[1], everywhere
    for host, url in (("::", "http://[::1]:9/v1/events"), ("::1", "http://[::1]:9/v1/events")):
        ipv6 = await _run_async("send-event", "page_viewed", "cli2", env={"OMNICANAL_HOST": host,
                                                                         "OMNICANAL_PORT": "9"})
        assert f"cannot reach {url}" in ipv6[2] and "not an http://" not in ipv6[2], ipv6


async def _run_async(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop that serves the API it talks to (`env`: added to the environment)."""
    process = await asyncio.create_subprocess_exec(OMNICANAL, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE,
                                                   env={**os.environ, **(env or {})} if env else None)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()
