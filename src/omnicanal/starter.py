"""The reference project shipped with omnicanal, and `omnicanal init` writing it as a user's starter project.

The repository keeps one copy of the reference project at its top (journeys/, templates/, examples/); the wheel
carries it inside the package, under omnicanal/reference/ (pyproject's package-dir). So `omnicanal demo` and
`omnicanal init` work from any folder after `pip install omnicanal`, and from a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnicanal.config import ENV_PREFIX, Settings
from omnicanal.errors import ConfigError
from omnicanal.schema import KINDS, file_name, schema_text

PARTS = ("journeys", "templates", "examples")
SCHEMAS = "schemas"
FOLDERS = (*PARTS, SCHEMAS)
"""The folders of a starter project: the reference project's parts, and the schemas they name."""
ENV_EXAMPLE = ".env.example"

_PACKAGE = Path(__file__).resolve().parent
_PLACES = (_PACKAGE / "reference", _PACKAGE.parent.parent)
"""Installed from a wheel: inside the package. A checkout or an editable install: the top of the repository."""

ENV_SETTINGS = {
    "redis_url": "redis://127.0.0.1:6379/0",
    "journeys_dir": None,
    "templates_dir": None,
    "host": None,
    "port": None,
    "api_keys": "change-me",
    "channels": "sms=twilio_sms,email=smtp_email",
    "quiet_hours": "21:00-08:00",
    "frequency_caps": "3/1d,channel:1/4h",
    "default_timezone": None,
    "public_url": "https://omnicanal.example.com",
    "clock_speed": None,
    "log_level": None,
}
"""The settings a new project sets first; a value here is an example (commented out), None shows the default."""


def reference_project() -> Path:
    """The folder holding the reference project's journeys/, templates/ and examples/."""
    for place in _PLACES:
        if all((place / part).is_dir() for part in PARTS):
            return place
    raise ConfigError(f"the reference project is missing from this installation (looked in "
                      f"{' and '.join(str(p) for p in _PLACES)}): reinstall omnicanal")


def env_example() -> str:
    """A `.env` example: each main OMNICANAL_* variable with its description, from the Settings themselves."""
    lines = ["# omnicanal settings (every one optional). Copy to .env, edit, and load it into the environment,",
             "# e.g. `set -a; . ./.env; set +a`, a systemd EnvironmentFile= or docker compose's env_file:.", ""]
    for name, example in ENV_SETTINGS.items():
        field = Settings.model_fields[name]
        variable = f"{ENV_PREFIX}{name.upper()}"
        lines.append(f"# {field.description}")
        if example is None:
            lines.append(f"{variable}={field.default}")
        else:
            lines.append(f"# {variable}={example}")
        lines.append("")
    lines.append("# Every other setting, and the connectors' own (OMNICANAL_TWILIO_*, ...): see README.md.")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StarterFile:
    target: Path
    content: bytes


def starter_files(directory: Path) -> list[StarterFile]:
    """What `omnicanal init` writes in `directory`: the reference project's files, the JSON Schemas their first
    lines name (`$schema=../schemas/journey.schema.json`), generated from this version's models so an editor
    checks the language this version runs, and the `.env` example."""
    source = reference_project()
    files = [
        StarterFile(directory / part / path.name, path.read_bytes())
        for part in PARTS
        for path in sorted((source / part).iterdir())
        if path.suffix in (".yaml", ".yml")
    ]
    files += [StarterFile(directory / SCHEMAS / file_name(kind), schema_text(kind).encode()) for kind in KINDS]
    files.append(StarterFile(directory / ENV_EXAMPLE, env_example().encode()))
    return files


def write_starter(directory: Path, force: bool = False) -> list[Path]:
    """Write the starter project; refuses (ConfigError naming them) when files exist, unless `force`, and says in
    one ConfigError why a folder cannot be written (a file in the way, no permission, a link to nothing)."""
    files = starter_files(directory)
    existing = [f.target for f in files if f.target.exists() or f.target.is_symlink()]
    if existing and not force:
        names = ", ".join(str(path.relative_to(directory)) for path in existing[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise ConfigError(f"{directory} already holds {names}{more}: choose an empty folder, or add --force to "
                          f"overwrite them")
    try:
        for file in files:
            file.target.parent.mkdir(parents=True, exist_ok=True)
            file.target.unlink(missing_ok=True)  # with --force, a link is replaced, never written through
            file.target.write_bytes(file.content)
    except OSError as exc:
        raise ConfigError(f"cannot write the project in {directory}: {exc.strerror or exc} ({exc.filename})") from exc
    return [file.target for file in files]
