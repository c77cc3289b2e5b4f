"""The deployment artifacts in deploy/: compose file, Dockerfile, systemd unit, Helm chart.

No Docker engine runs on the development machines, so the image and the compose stack are checked by parsing
(and by running the image's HEALTHCHECK command against a local server). The chart is rendered with
`helm template` when a `helm` binary is on PATH, and checked without rendering in any case.
"""

from __future__ import annotations

import configparser
import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from omnicanal.config import ENV_PREFIX, Settings, load_settings

pytestmark = pytest.mark.slow  # builds and installs the package into a fresh virtualenv

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UNIT = DEPLOY / "systemd" / "omnicanal.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "omnicanal.env.example"
CHART = DEPLOY / "helm" / "omnicanal"

# OMNICANAL_* names the deploy files may use although they are not fields of Settings:
ALLOWED_NAMES = {
    "OMNICANAL_SHUTDOWN_GRACE",  # the graceful-stop setting, added with the scale-out work
    "OMNICANAL_IMAGE",  # docker-compose interpolation variable (which image to run), not a setting
}
# Connector settings live under their connector's own prefix (the connectors' settings classes in connectors/).
ALLOWED_PREFIXES = ("OMNICANAL_TWILIO_", "OMNICANAL_SMTP_", "OMNICANAL_FCM_", "OMNICANAL_MESSENGER_",
                    "OMNICANAL_WEBHOOK_")

SETTING_NAME = re.compile(r"\bOMNICANAL_[A-Z0-9_]+")


def _shutdown_grace_default() -> float:
    field = Settings.model_fields.get("shutdown_grace")
    return float(field.default) if field is not None and isinstance(field.default, int | float) else 30.0


def _seconds(value: str | int | float) -> float:
    """`45s`, `1m30s`, `45` (compose and systemd durations) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h)?", value.strip())
    assert parts, f"not a duration: {value!r}"
    scale = {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Load Settings exactly as a process would, from these environment variables only."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


# --- docker compose ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with NAME unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_services_and_roles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker"}
    assert _command(services["api"]) == ["api"]
    assert _command(services["worker"]) == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 3
    assert "ports" not in services["worker"], "workers take no traffic; only the API publishes a port"
    assert any(str(port).endswith("8080:8080") for port in services["api"]["ports"])


def test_compose_redis_is_durable_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = _command(redis)
    assert command[0] == "redis-server"
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags["--appendonly"] == "yes"
    assert flags["--appendfsync"] == "everysec"
    assert flags["--maxmemory-policy"] == "noeviction"
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_app_services_share_env_image_and_mounts(compose: dict[str, Any]) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    for service in (api, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["OMNICANAL_REDIS_URL"].startswith("redis://redis:6379")
        assert env["OMNICANAL_HOST"] == "0.0.0.0"
        assert str(env["OMNICANAL_PORT"]) == "8080"
        mounts = {str(volume) for volume in service["volumes"]}
        assert "../journeys:/app/journeys:ro" in mounts
        assert "../templates:/app/templates:ro" in mounts
        assert _seconds(service["stop_grace_period"]) > _seconds(env["OMNICANAL_SHUTDOWN_GRACE"])
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert api["environment"] == worker["environment"], "one shared env anchor"
    assert api["image"] == worker["image"]
    for source in ("journeys", "templates"):
        assert (COMPOSE.parent / ".." / source).is_dir()


def test_compose_env_is_valid_settings(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = {name: _interpolate(str(value)) for name, value in compose["services"]["worker"]["environment"].items()}
    settings = _settings_from_env(monkeypatch, env)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.journeys_dir == Path("/app/journeys")
    assert settings.api_keys == []


# --- Dockerfile ---------------------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "dangling line continuation"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1]:]


def _env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def test_dockerfile_is_multi_stage_on_slim_python(dockerfile: list[tuple[str, str]]) -> None:
    froms = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(froms) >= 2
    arg_defaults = dict(args.partition("=")[::2] for keyword, args in dockerfile if keyword == "ARG" and "=" in args)
    images = {re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults[m.group(1)], args.split()[0]) for args in froms}
    assert images == {"python:3.11-slim"}
    final = _final_stage(dockerfile)
    assert any(keyword == "COPY" and args.startswith("--from=builder") for keyword, args in final)
    assert not any(keyword == "RUN" and "pip install" in args for keyword, args in final), "install in builder"
    builder_runs = " ".join(args for keyword, args in dockerfile[: len(dockerfile) - len(final)] if keyword == "RUN")
    assert "pip install ." in builder_runs


def test_dockerfile_runtime_stage(dockerfile: list[tuple[str, str]]) -> None:
    final = _final_stage(dockerfile)
    keywords = dict(final)  # the last of each keyword wins, as in Docker
    user = keywords["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert keywords["WORKDIR"] == "/app"
    assert keywords["EXPOSE"].split() == ["8080"]
    assert json.loads(keywords["ENTRYPOINT"]) == ["omnicanal"]
    assert json.loads(keywords["CMD"]) == ["serve"]
    copies = [args.split() for keyword, args in final if keyword == "COPY" and not args.startswith("--from")]
    assert ["journeys/", "/app/journeys/"] in copies
    assert ["templates/", "/app/templates/"] in copies
    healthcheck = keywords["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "python" in healthcheck and "curl" not in healthcheck
    env = _env_of(final)
    assert env["OMNICANAL_HOST"] == "0.0.0.0"
    assert env["OMNICANAL_PORT"] == "8080"
    assert env["OMNICANAL_JOURNEYS_DIR"] == "/app/journeys"
    assert env["OMNICANAL_TEMPLATES_DIR"] == "/app/templates"


def test_dockerfile_env_is_valid_settings(dockerfile: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in _env_of(_final_stage(dockerfile)).items() if k.startswith(ENV_PREFIX)}
    settings = _settings_from_env(monkeypatch, env)
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for our patterns: the last matching line wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, candidate) for prefix in prefixes for candidate in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_copies(dockerfile: list[tuple[str, str]]) -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".venv", ".git", "tests", "bench", "src/omnicanal/__pycache__", ".pytest_cache"):
        assert _dockerignored(excluded, patterns), excluded
    sources = [
        source
        for keyword, args in dockerfile
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    assert {"pyproject.toml", "src/", "connectors/", "journeys/", "templates/"} <= set(sources)
    for source in sources:
        matches = list(ROOT.glob(source.rstrip("/")))
        if source != "README*":  # optional: the package builds without a long description
            assert matches, f"COPY {source}: nothing in the repository"
        for match in matches:
            relative = match.relative_to(ROOT).as_posix()
            assert not _dockerignored(relative, patterns), f"{relative} is copied but .dockerignore drops it"


@pytest.fixture(scope="module")
def installed(dockerfile: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` into a fresh virtualenv, as the image's builder stage runs it: from exactly the files that
    stage copies, so the image, the systemd install and a user's `pip install` get what is checked here. Returns
    the virtualenv. Its dependencies are this environment's (a .pth file), so only omnicanal itself is built."""
    base = tmp_path_factory.mktemp("install")
    source, venv = base / "source", base / "venv"
    source.mkdir()
    builder = dockerfile[: len(dockerfile) - len(_final_stage(dockerfile))]
    for keyword, args in builder:
        if keyword == "COPY" and not args.startswith("--from"):
            for pattern in args.split()[:-1]:
                for match in ROOT.glob(pattern.rstrip("/")):
                    target = source / match.relative_to(ROOT)
                    if match.is_dir():
                        shutil.copytree(match, target, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        shutil.copy2(match, target)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    [site_packages] = venv.glob("lib/python*/site-packages")
    (site_packages / "_omnicanal_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "-q", str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def _in_empty_folder(venv: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `omnicanal` in an empty folder, with no OMNICANAL_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return subprocess.run([str(venv / "bin" / "omnicanal"), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_pip_install_ships_every_module_and_the_reference_project(installed: Path) -> None:
    [site_packages] = installed.glob("lib/python*/site-packages")
    expected = {
        f"{package}/{path.relative_to(ROOT / directory).as_posix()}"
        for package, directory in (("omnicanal", "src/omnicanal"), ("omnicanal_connectors", "connectors"))
        for path in (ROOT / directory).rglob("*")
        if path.suffix in (".py", ".lua", ".typed") and "__pycache__" not in path.parts
    } | {
        f"omnicanal/reference/{part}/{path.name}"
        for part in ("journeys", "templates", "examples") for path in (ROOT / part).glob("*.yaml")
    }
    missing = sorted(name for name in expected if not (site_packages / name).is_file())
    assert not missing, f"not in the installed package (pyproject's [tool.setuptools]): {missing}"


def test_the_installed_demo_runs_in_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    result = _in_empty_folder(installed, tmp_path, "demo", "--speed", "72000")  # test_cli plays it at its default
    assert result.returncode == 0, result.stderr
    assert "whatsapp · order_thanks · sent" in result.stdout and "email · cart_reminder · sent" in result.stdout
    project = re.search(r"^project: the reference project shipped with omnicanal, in (\S+) ", result.stdout,
                        flags=re.M)
    assert project and Path(project.group(1)).is_relative_to(installed), result.stdout


def test_the_installed_init_writes_a_project_that_validates(installed: Path, tmp_path: Path) -> None:
    assert _in_empty_folder(installed, tmp_path, "init", "shop").returncode == 0
    result = _in_empty_folder(installed, tmp_path, "validate", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(path.name for path in (tmp_path / "shop" / "journeys").iterdir()) == sorted(
        path.name for path in (ROOT / "journeys").glob("*.yaml"))


@pytest.fixture
def probe_server() -> Iterator[tuple[int, list[int]]]:
    """A local HTTP server answering GET /healthz with the status at the head of the returned list."""
    statuses = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[0] if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_dockerfile_healthcheck_command_probes_healthz(
    dockerfile: list[tuple[str, str]], probe_server: tuple[int, list[int]], tmp_path: Path
) -> None:
    """Run the image's HEALTHCHECK command (exec form) as Docker would, with `python` being this interpreter."""
    healthcheck = dict(_final_stage(dockerfile))["HEALTHCHECK"]
    argv = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert argv[0] == "python"
    (tmp_path / "python").symlink_to(sys.executable)
    port, statuses = probe_server

    def run(port: int) -> int:
        env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}",
               "OMNICANAL_PORT": str(port)}
        executable = shutil.which(argv[0], path=env["PATH"])
        assert executable is not None
        return subprocess.run([executable, *argv[1:]], env=env, capture_output=True, timeout=30).returncode

    assert run(port) == 0
    statuses[0] = 503
    assert run(port) == 1
    assert run(_unused_port()) == 1


def _unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- systemd ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_systemd_unit(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["ExecStart"] == "/opt/omnicanal/.venv/bin/omnicanal serve"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] not in {"root", "0", ""}
    assert service["EnvironmentFile"] == "/etc/omnicanal/omnicanal.env"
    assert service["WorkingDirectory"] == "/etc/omnicanal"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _env_example() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and name.startswith(ENV_PREFIX), f"not NAME=value: {line!r}"
            env[name] = value
    return env


def test_systemd_stop_timeout_exceeds_shutdown_grace(unit: configparser.ConfigParser) -> None:
    grace = max(_seconds(_env_example()["OMNICANAL_SHUTDOWN_GRACE"]), _shutdown_grace_default())
    assert _seconds(unit["Service"]["TimeoutStopSec"]) > grace


def test_systemd_env_example_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from_env(monkeypatch, _env_example())
    assert settings.redis_url and settings.redis_url.startswith("redis://")
    assert settings.host == "0.0.0.0"
    assert settings.journeys_dir == Path("journeys")  # relative to WorkingDirectory=/etc/omnicanal


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at an executable that does.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/omnicanal/.venv/bin/omnicanal", sys.executable)
    (tmp_path / "omnicanal.service").write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(tmp_path / "omnicanal.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "omnicanal.service" not in result.stderr, result.stderr


# --- Helm chart ---------------------------------------------------------------------------------------------

CHART_TEMPLATES = (
    "_helpers.tpl", "deployment-api.yaml", "deployment-worker.yaml", "service.yaml", "configmap-journeys.yaml",
    "hpa.yaml", "pdb.yaml", "secret.yaml", "NOTES.txt",
)
ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _templates() -> dict[str, str]:
    return {name: (CHART / "templates" / name).read_text(encoding="utf-8") for name in CHART_TEMPLATES}


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "omnicanal"
    assert chart["type"] == "application"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"]


def test_chart_values(values: dict[str, Any]) -> None:
    assert values["image"]["repository"]
    assert values["redis"]["url"] or values["redis"]["existingSecret"]
    assert values["api"]["replicas"] >= 1 and values["worker"]["replicas"] >= 1
    autoscaling = values["worker"]["autoscaling"]
    assert autoscaling["metric"]["name"] == "omnicanal_work_backlog"
    assert 1 <= autoscaling["minReplicas"] <= autoscaling["maxReplicas"]
    assert values["api"]["pdb"]["enabled"] and values["worker"]["pdb"]["enabled"]
    assert values["containerPort"] == 8080
    assert values["shutdownGrace"] >= _shutdown_grace_default()
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_chart_values_env_is_valid_settings(values: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _settings_from_env(monkeypatch, {name: str(value) for name, value in values["env"].items()})


def test_chart_templates_are_balanced_go_templates() -> None:
    defined: set[str] = set()
    included: set[str] = set()
    for name, text in _templates().items():
        stack: list[str] = []
        for match in ACTION.finditer(text):
            body = match.group(2).strip()
            if body.startswith("/*"):
                assert body.endswith("*/"), f"{name}: unterminated comment"
                continue
            word = body.split(None, 1)[0] if body else ""
            if word in {"if", "range", "with", "define", "block"}:
                stack.append(word)
                if word == "define":
                    defined.add(body.split('"')[1])
            elif word == "end":
                assert stack, f"{name}: {{{{ end }}}} without an opening action"
                stack.pop()
            included.update(re.findall(r'\b(?:include|template) "([^"]+)"', body))
        assert not stack, f"{name}: unclosed {stack}"
        assert text.count("{{") == text.count("}}"), f"{name}: unbalanced braces"
    assert included <= defined, f"included but never defined: {included - defined}"


def test_chart_templates_reference_existing_values(values: dict[str, Any]) -> None:
    for name, text in _templates().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", text):
            node: Any = values
            for key in path.strip(".").split("."):
                assert isinstance(node, dict) and key in node, f"{name}: .Values{path} is not in values.yaml"
                node = node[key]


def test_chart_probes_grace_and_roles() -> None:
    templates = _templates()
    helpers = templates["_helpers.tpl"]
    assert re.search(r"livenessProbe:\s+httpGet:\s+path: /healthz", helpers)
    assert re.search(r"readinessProbe:\s+httpGet:\s+path: /readyz", helpers)
    for role in ("api", "worker"):
        text = templates[f"deployment-{role}.yaml"]
        assert 'include "omnicanal.probes"' in text
        assert f'args: ["{role}"]' in text
        assert re.search(r"terminationGracePeriodSeconds: \{\{ add \.Values\.shutdownGrace [^}]*\b15 \}\}", text)
    assert "kind: HorizontalPodAutoscaler" in templates["hpa.yaml"]
    assert "type: External" in templates["hpa.yaml"]
    assert templates["pdb.yaml"].count("kind: PodDisruptionBudget") == 2
    assert '.Files.Glob "files/journeys/*.yaml"' in templates["configmap-journeys.yaml"]
    assert '.Files.Glob "files/templates/*.yaml"' in templates["configmap-journeys.yaml"]


def test_chart_files_point_at_the_repository_journeys_and_templates() -> None:
    for kind in ("journeys", "templates"):
        files = CHART / "files" / kind
        assert files.resolve() == (ROOT / kind).resolve(), f"files/{kind} should link to the repository's {kind}/"
        assert list(files.glob("*.yaml")), f"no {kind} for the chart's ConfigMap"


def _helm() -> str:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("no helm binary on PATH (not packaged in Debian or on PyPI in a usable form here): "
                    "the chart is checked without rendering")
    return helm


def _render(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run([_helm(), "template", "omnicanal", str(CHART), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_helm_lint() -> None:
    result = subprocess.run([_helm(), "lint", str(CHART)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_template_default_values() -> None:
    docs = _render()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget",
                            "PodDisruptionBudget", "Secret", "Service", "Service"])
    deployments = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Deployment"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        env = {item["name"]: item for item in container["env"]}
        assert env["OMNICANAL_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "redis-url"
        assert pod["terminationGracePeriodSeconds"] > float(env["OMNICANAL_SHUTDOWN_GRACE"]["value"]), name
    roles = {deployment["spec"]["template"]["spec"]["containers"][0]["args"][0] for deployment in deployments.values()}
    assert roles == {"api", "worker"}
    configmaps = {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"}
    assert any("abandoned_cart.yaml" in data for data in configmaps.values())


def test_helm_template_with_autoscaling_and_existing_secrets() -> None:
    docs = _render("--set", "worker.autoscaling.enabled=true", "--set", "redis.existingSecret=my-redis")
    kinds = [doc["kind"] for doc in docs]
    assert "HorizontalPodAutoscaler" in kinds and "Secret" not in kinds
    hpa = next(doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "omnicanal_work_backlog"
    worker = next(doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("-worker"))
    assert "replicas" not in worker["spec"], "the HPA owns the worker replica count"


def test_helm_template_requires_redis() -> None:
    result = subprocess.run([_helm(), "template", "omnicanal", str(CHART), "--set", "redis.url="],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "redis.url" in result.stderr


# --- every OMNICANAL_* name used by a deploy file is a real setting ----------------------------------------------


def _deploy_files() -> Iterator[Path]:
    for directory, _, names in os.walk(DEPLOY):  # does not follow the chart's symlinks into journeys/
        for name in names:
            yield Path(directory) / name
    yield DOCKERIGNORE


def test_deploy_files_use_only_real_settings() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | ALLOWED_NAMES
    unknown: dict[str, set[str]] = {}
    for path in _deploy_files():
        for name in SETTING_NAME.findall(path.read_text(encoding="utf-8")):
            if name not in known and not name.startswith(ALLOWED_PREFIXES):
                unknown.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    assert not unknown, f"not settings of omnicanal.config.Settings: {unknown}"


def test_deploy_files_hold_no_secrets() -> None:
    suspicious = re.compile(r"(?i)(redis|rediss)://[^:@\s/]*:[^<@\s]+@|AC[0-9a-f]{32}|-----BEGIN [A-Z ]*PRIVATE KEY")
    for path in _deploy_files():
        assert not suspicious.search(path.read_text(encoding="utf-8")), f"{path}: looks like a real secret"
