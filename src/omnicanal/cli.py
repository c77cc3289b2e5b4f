"""The `omnicanal` command line: serve, validate, graph, simulate, send-event, demo, init, schema, and operator
commands on the store (dlq, journeys, stats, export, keys, audit).

Every command reads the same settings (environment `OMNICANAL_*`, `--config FILE`), and exits non-zero with one
clear line when something is wrong; `--help` on each command says what it does and shows an example.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from omnicanal.config import Settings, load_settings
from omnicanal.errors import OmnicanalError, ProjectError
from omnicanal.eventloop import run
from omnicanal.logging import configure_logging
from omnicanal.schema import Kind
from omnicanal.scopes import Scope
from omnicanal.timestamps import iso
from omnicanal.workspaces import workspace_settings

app = typer.Typer(
    help="omnicanal: customer journeys written in YAML, run on Redis, sent on every channel.\n\n"
    "Start with `omnicanal demo`, then `omnicanal init my-project`, `omnicanal validate` and `omnicanal serve`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (keys as in OMNICANAL_*, lower case).")
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    """The settings; under OMNICANAL_WORKSPACES_DIR, those of OMNICANAL_WORKSPACE (or `--workspace`), with its
    folders unless the command names others: how every command addresses one workspace of a deployment."""
    try:
        settings = load_settings(config, **overrides)
    except OmnicanalError as exc:
        _fail(str(exc))
    folders = ("journeys_dir", "templates_dir", "segments_dir")
    if settings.workspaces_dir is None or any(overrides.get(name) is not None for name in folders):
        return settings
    return workspace_settings(settings, settings.workspace)


def _local_url(settings: Settings) -> str:
    """The API of OMNICANAL_HOST and OMNICANAL_PORT as this machine reaches it: a daemon listening on every address
    is reached on the loopback (`::` listens on IPv6 only, as asyncio binds it), and an IPv6 address is written in
    brackets (`http://:::8080` was no URL)."""
    host = settings.host.strip()
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


HostOption = Annotated[str | None, typer.Option(help="Listen address [OMNICANAL_HOST].")]
PortOption = Annotated[int | None, typer.Option(help="Listen port [OMNICANAL_PORT].")]


def _run_process(role_name: str, config: Path | None, host: str | None, port: int | None) -> None:
    from omnicanal.daemon import run_process
    from omnicanal.engine.runtime import Role

    settings = _settings(config, host=host, port=port)
    configure_logging(settings.log_level, settings.log_format, settings.log_pii)
    try:
        run(run_process(settings, Role(role_name)))
    except OmnicanalError as exc:
        _fail(str(exc), 1)


@app.command()
def serve(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run the daemon: HTTP API, workers and timers in one process, until SIGTERM or Ctrl-C.

    SIGHUP (or a changed file) reloads journeys and templates. Example:
    OMNICANAL_REDIS_URL=redis://127.0.0.1:6379/0 omnicanal serve --port 8080
    """
    _run_process("all", config, host, port)


@app.command()
def api(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run the HTTP API only (events in, profiles and timelines out); workers run elsewhere.

    Example: OMNICANAL_REDIS_URL=redis://redis:6379/0 omnicanal api --host 0.0.0.0
    """
    _run_process("api", config, host, port)


@app.command()
def worker(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run workers and timers only; serves /healthz, /readyz and /metrics on the port for probes.

    Start as many as the load needs: they share the work partitions through Redis. Example:
    OMNICANAL_REDIS_URL=redis://redis:6379/0 OMNICANAL_WORKER_ID=$(hostname) omnicanal worker --port 9090
    """
    _run_process("worker", config, host, port)


@app.command()
def validate(
    path: Annotated[Path | None, typer.Argument(
        help="Journeys directory [OMNICANAL_JOURNEYS_DIR], or a project folder holding journeys/ and templates/."
    )] = None,
    templates: Annotated[Path | None, typer.Option(help="Templates directory [OMNICANAL_TEMPLATES_DIR].")] = None,
    segments: Annotated[Path | None, typer.Option(help="Segments directory [OMNICANAL_SEGMENTS_DIR].")] = None,
    config: ConfigOption = None,
) -> None:
    """Check every journey, template and segment; print each problem as `file:line: message`.

    Exits 0 when all is well, 1 when there are problems. Examples: omnicanal validate journeys/ ;
    omnicanal validate my-project
    """
    from omnicanal.journey.loader import validate_project
    from omnicanal.links import links_off

    if path is not None and path.is_file():  # `validate journeys/welcome.yaml` named the file's folder a variable
        project = path.parent.parent if path.parent.name == "journeys" else path.parent
        _fail(f"{path} is a file: validate checks a folder, every file in it at once (OMNICANAL_JOURNEYS_DIR): "
              f"omnicanal validate {project}")
    if path is not None and (path / "journeys").is_dir():  # a project folder, as `omnicanal init` writes one
        path, templates, segments = path / "journeys", templates or path / "templates", segments or path / "segments"
    settings = _settings(config, journeys_dir=path, templates_dir=templates, segments_dir=segments)
    try:
        problems = validate_project(settings.journeys_dir, settings.templates_dir, settings.default_locale,
                                    settings.segments_dir)
    except OmnicanalError as exc:
        _fail(str(exc))
    for problem in problems:
        typer.echo(str(problem))
    if (links_note := links_off(settings)) is not None:
        typer.echo(f"note: {links_note}", err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {settings.journeys_dir}, {settings.templates_dir} and {settings.segments_dir} are valid", err=True)


def _load_journey(journey_id: str, settings: Settings) -> Any:
    from omnicanal.engine.runtime import load_project

    try:
        journeys = {journey.id: journey for journey in load_project(settings)[1]}
    except ProjectError as exc:
        _fail(f"fix these first (omnicanal validate):\n{exc}", 1)
    except OmnicanalError as exc:
        _fail(str(exc))
    if journey_id not in journeys:
        _fail(f"no journey {journey_id!r} in {settings.journeys_dir}; known: {', '.join(sorted(journeys))}")
    return journeys[journey_id]


@app.command()
def graph(
    journey: Annotated[str, typer.Argument(help="Journey id, e.g. abandoned_cart.")],
    config: ConfigOption = None,
) -> None:
    """Print a journey as a Mermaid flowchart (paste it in a pull request or mermaid.live).

    Example: omnicanal graph abandoned_cart > abandoned_cart.mmd
    """
    from omnicanal.journey.graph import to_mermaid

    typer.echo(to_mermaid(_load_journey(journey, _settings(config))))


@app.command()
def simulate(
    journey: Annotated[str, typer.Argument(help="Journey id, e.g. abandoned_cart.")],
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML: customer, events with offsets, until.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline entries as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Dry-run a journey: which message, on which channel, when — days of journey time in seconds.

    Runs the real engine on the embedded store with every channel on the outbox; nothing is sent.
    Without --scenario, a customer reachable on every channel gets the trigger event alone.
    Example: omnicanal simulate abandoned_cart --scenario examples/abandoned_cart.scenario.yaml
    """
    from omnicanal.simulate import simulate as run_simulation

    _load_journey(journey, _settings(config))  # problems reported the same way as `graph`
    configure_logging("error", "console")
    settings = _settings(config, redis_url="", channels={}, port=0)
    try:
        run(run_simulation(settings, journey, scenario, sys.stdout, as_json))
    except OmnicanalError as exc:
        _fail(str(exc), 1)


@app.command("send-event")
def send_event(
    name: Annotated[str, typer.Argument(help="Event name, e.g. cart_abandoned.")],
    customer_id: Annotated[str, typer.Argument(help="Customer id, e.g. c42.")],
    properties: Annotated[str, typer.Option("--properties", "-p", help="Properties as a JSON object.")] = "{}",
    idempotency_key: Annotated[str | None, typer.Option(help="Same key again: same event, one effect.")] = None,
    url: Annotated[str | None, typer.Option(help="API base URL (default: http://OMNICANAL_HOST:PORT).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OMNICANAL_API_KEY", help="API key, if required.")] = None,
    signing_secret: Annotated[str | None, typer.Option(envvar="OMNICANAL_SIGNING_SECRET", help="Signing secret of a "
                                                       "key made with `keys create --signing`: signs the request."
                                                       )] = None,
    config: ConfigOption = None,
) -> None:
    """Send one event to a running daemon and print its id.

    Example: omnicanal send-event cart_abandoned c42 -p '{"total": 89.0, "items": [{"sku": "SKU-1"}]}'
    """
    from omnicanal.client import post_json

    settings = _settings(config)
    try:
        props = json.loads(properties)
    except json.JSONDecodeError as exc:
        _fail(f"--properties is not valid JSON: {exc}")
    body = {"name": name, "customer_id": customer_id, "properties": props}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    base = url or _local_url(settings)
    try:
        status, answer = run(post_json(f"{base}/v1/events", body, api_key, signing_secret))
    except OmnicanalError as exc:
        _fail(str(exc), 1)
    typer.echo(json.dumps(answer, ensure_ascii=False))
    if status != 202:
        raise typer.Exit(1)


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="Journey seconds per real second.")] = 36000.0,
) -> None:
    """Play the reference scenario (cart → push → store purchase → WhatsApp) on the embedded store.

    Nothing to install or configure: it runs the real engine and API in this process, with time compressed,
    and prints each customer's conversation across channels. It plays ./journeys and ./templates (or
    OMNICANAL_JOURNEYS_DIR and OMNICANAL_TEMPLATES_DIR) when they exist, else the reference project shipped with
    omnicanal, and says which. Example: omnicanal demo --speed 3600
    """
    from omnicanal.demo import run_demo

    configure_logging("warning", "console")
    settings = _settings(None, redis_url="", clock_speed=speed, port=0)
    try:
        run(run_demo(settings, sys.stdout))
    except OmnicanalError as exc:
        _fail(str(exc), 1)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project (created if missing).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist there.")] = False,
) -> None:
    """Write a starter project: journeys/, templates/, an example scenario, their schemas/ and a .env.example.

    The files are the reference project (the one `omnicanal demo` plays), ready to validate, simulate and
    serve; files already there are left alone unless --force.

    Example: omnicanal init my-project
    """
    from omnicanal.starter import FOLDERS, write_starter

    try:
        written = write_starter(directory, force)
    except OmnicanalError as exc:
        _fail(str(exc))
    parts = Counter(path.relative_to(directory).parts[0] for path in written)
    summary = ", ".join(f"{part}/ ({count})" if part in FOLDERS else part for part, count in parts.items())
    typer.echo(f"wrote {summary} in {directory}")
    typer.echo("next:")
    for command in (f"cd {shlex.quote(str(directory))}", "omnicanal validate",
                    "omnicanal simulate abandoned_cart --scenario examples/abandoned_cart.scenario.yaml",
                    "omnicanal demo", "omnicanal serve   # on the embedded store until OMNICANAL_REDIS_URL is set"):
        typer.echo(f"  {command}")


@app.command()
def schema(
    kind: Annotated[Kind, typer.Argument(help="The kind of file.")],
) -> None:
    """Print the JSON Schema (draft 2020-12) of a kind of file, for editors that complete and check YAML keys.

    A YAML file names its schema on its first line, as the shipped ones do:
    `# yaml-language-server: $schema=../schemas/journey.schema.json`; `omnicanal init` writes schemas/ into the
    project. Example: omnicanal schema journey > schemas/journey.schema.json
    """
    from omnicanal.schema import schema_text

    typer.echo(schema_text(kind), nl=False)


@app.command("inbox-signature")
def inbox_signature(
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    url: Annotated[bool, typer.Option("--url", help="Print the URL of their inbox instead, signature included.")]
    = False,
    secret: Annotated[bool, typer.Option("--secret", help="Print the secret the workspace's ids are signed with "
                                                          "instead (several workspaces: each its own).")] = False,
    config: ConfigOption = None,
) -> None:
    """Print the signature a customer's app reads their in-app inbox with: the hex HMAC-SHA256 of their id with
    OMNICANAL_INBOX_SECRET (your backend computes the same for each customer). With OMNICANAL_WORKSPACES_DIR each
    workspace (OMNICANAL_WORKSPACE) signs with a secret of its own, derived from it: `--secret` prints it, for
    that brand's backend.

    Example: curl "$(omnicanal inbox-signature c42 --url)"
    """
    from urllib.parse import urlencode

    from omnicanal.api.inbox import inbox_signature as sign
    from omnicanal.api.inbox import workspace_inbox_secret

    settings = _settings(config)
    key = workspace_inbox_secret(settings)
    if key is None:
        _fail("OMNICANAL_INBOX_SECRET is not set: the inbox API is off (set it, at least 16 characters)")
    if secret:
        typer.echo(key)
        return
    signature = sign(key, customer_id)
    if not url:
        typer.echo(signature)
        return
    base = (settings.public_url or _local_url(settings)).rstrip("/")
    typer.echo(f"{base}/v1/inbox?{urlencode({'customer': customer_id, 'signature': signature})}")


dlq_app = typer.Typer(help="The dead-letter stream: work items that kept failing, with their error.",
                       no_args_is_help=True)
journeys_app = typer.Typer(help="Operate on running journeys.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(journeys_app, name="journeys")
IdsArgument = Annotated[list[str] | None, typer.Argument(help="Dead-letter ids (from `dlq list`); none: all.")]


def _admin(config: Path | None, job: Any) -> Any:
    """Run an admin coroutine factory with the settings; errors as one line."""
    return _admin_with(_settings(config), job)


def _admin_with(settings: Settings, job: Any) -> Any:
    try:
        return run(job(settings))
    except OmnicanalError as exc:
        _fail(str(exc), 1)


DEAD_LETTER_ID = re.compile(r"\d{1,20}(-\d{1,20})?")
"""A dead-letter id as `dlq list` prints it: a stream entry id, `1700000000000-0`."""


def _dead_letter_ids(ids: list[str] | None) -> list[str]:
    """The ids given, each checked: Redis refuses a malformed one with an error, and would find none."""
    for entry_id in ids or []:
        if not DEAD_LETTER_ID.fullmatch(entry_id):
            _fail(f"{entry_id!r} is not a dead-letter id: give the ids `omnicanal dlq list` prints, e.g. "
                  "1700000000000-0")
    return ids or []


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Show at most this many.")] = 100,
    config: ConfigOption = None,
) -> None:
    """Show dead-lettered items, oldest first, with the error that parked them.

    Example: omnicanal dlq list --limit 20"""
    from omnicanal.admin import list_dead_letters

    letters = _admin(config, lambda s: list_dead_letters(s, limit))
    for letter in letters:
        typer.echo(letter.describe())
    typer.echo(f"{len(letters)} dead-lettered item(s)", err=True)


@dlq_app.command("retry")
def dlq_retry(ids: IdsArgument = None, config: ConfigOption = None) -> None:
    """Put items back to work (after fixing what made them fail). Example: omnicanal dlq retry 1700000000000-0"""
    from omnicanal.admin import retry_dead_letters

    wanted = _dead_letter_ids(ids)
    done = _admin(config, lambda s: retry_dead_letters(s, wanted))
    typer.echo(f"{len(done)} item(s) put back to work")


@dlq_app.command("drop")
def dlq_drop(ids: IdsArgument = None, config: ConfigOption = None) -> None:
    """Delete items for good (none given: every one). Example: omnicanal dlq drop 1700000000000-0"""
    from omnicanal.admin import drop_dead_letters

    wanted = _dead_letter_ids(ids)
    done = _admin(config, lambda s: drop_dead_letters(s, wanted))
    typer.echo(f"{len(done)} item(s) dropped")


@app.command()
def stats(
    journey: Annotated[str, typer.Argument(help="Journey id.")],
    since: Annotated[str | None, typer.Option("--from", help="ISO 8601 start (journey time); none: all time.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="ISO 8601 end; none: now.")] = None,
    bucket: Annotated[str | None, typer.Option(help="Series buckets: hour or day.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON the API answers.")] = False,
    config: ConfigOption = None,
) -> None:
    """What a journey did, per step and channel: the funnel, conversions and revenue by where they happened,
    credit by attribution model (last, first, linear), experiment arms. Reads the daemon's Redis.

    Example: OMNICANAL_REDIS_URL=redis://127.0.0.1:6379/0 omnicanal stats abandoned_cart --from 2026-12-01
    """
    from omnicanal.admin import journey_stats
    from omnicanal.stats_text import render

    start, end = _moment("--from", since), _moment("--to", until)
    report = _admin(config, lambda s: journey_stats(s, journey, start, end, bucket))
    report.update({"from": iso(report["from"]) if report["from"] is not None else None, "to": iso(report["to"])})
    report["series"] = [{**point, "at": iso(point["at"])} for point in report["series"]]
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else render(report), nl=not as_json)


@app.command()
def export(
    what: Annotated[str, typer.Argument(help="events, messages or conversions.")],
    since: Annotated[str, typer.Option("--since", help="ISO 8601 start (journey time), included.")],
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 end, excluded; none: no end.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (standard output if "
                                                "none); written whole or not at all.")] = None,
    config: ConfigOption = None,
) -> None:
    """Stream timeline entries as JSON lines for a warehouse: events, messages (with their status history) or
    conversions (revenue, where, credit by attribution model), of every customer, by the time they happened.
    Reads the daemon's Redis (OMNICANAL_REDIS_URL) a page at a time; progress and a summary go to standard error.

    Example: omnicanal export conversions --since 2026-12-01 --until 2026-12-08 -o conversions.jsonl
    """
    from omnicanal.admin import export as run_export
    from omnicanal.store.export import EXPORTS, ExportProgress

    if what not in EXPORTS:
        _fail(f"export {what!r}? one of: {', '.join(EXPORTS)}")
    start, end = _moment("--since", since), _moment("--until", until)
    assert start is not None  # --since is required
    if end is not None and end <= start:  # an empty period: "exported 0 events" would read as a quiet week
        _fail(f"--until ({until}) must be after --since ({since})")

    def progress(done: ExportProgress) -> None:
        typer.echo(f"export: {done.customers_done}/{done.customers_total} customers, {done.entries} lines",
                   err=True)

    partial = output.with_name(output.name + ".partial") if output else None
    try:
        with partial.open("wb") if partial else contextlib.nullcontext(sys.stdout.buffer) as out:
            done = _admin(config, lambda s: run_export(s, what, start, end, out, progress))
        if partial and output:
            partial.replace(output)
    finally:
        if partial:
            partial.unlink(missing_ok=True)
    typer.echo(f"exported {done.entries} {what} of {done.customers_done} customers"
               f"{f' to {output}' if output else ''}", err=True)


def _moment(option: str, text: str | None) -> float | None:
    from omnicanal.timestamps import moment

    if text is None:
        return None
    try:
        return moment(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")


JourneyArgument = Annotated[str, typer.Argument(help="Journey id.")]


def _control(action: str, journey: str, config: Path | None, done: str) -> None:
    from omnicanal.admin import control_journey

    count = _admin(config, lambda s: control_journey(s, action, journey))
    typer.echo(done.format(journey=journey, count=count))


@journeys_app.command("drain")
def journeys_drain(journey: JourneyArgument, config: ConfigOption = None) -> None:
    """Exit every running instance of a journey (e.g. after removing its file: no new entries start then).

    Example: omnicanal journeys drain welcome_series"""
    _control("drain", journey, config, "asked {count} customer(s) to leave {journey}")


@journeys_app.command("pause")
def journeys_pause(journey: JourneyArgument, config: ConfigOption = None) -> None:
    """Pause a journey that misbehaves: no new entries (recorded as skipped), running instances keep what comes
    for them until `resume`. Example: omnicanal journeys pause abandoned_cart"""
    _control("pause", journey, config, "{journey} paused ({count} customer(s) waiting for the resume)")


@journeys_app.command("resume")
def journeys_resume(journey: JourneyArgument, config: ConfigOption = None) -> None:
    """Let a paused or stopped journey run again: events and timers that came meanwhile apply in order.

    Example: omnicanal journeys resume abandoned_cart"""
    _control("resume", journey, config, "{journey} running again ({count} customer(s) catch up)")


@journeys_app.command("stop")
def journeys_stop(journey: JourneyArgument, config: ConfigOption = None) -> None:
    """Stop a journey: every running instance exits and no new entry starts until `resume`.

    Example: omnicanal journeys stop abandoned_cart"""
    _control("stop", journey, config, "{journey} stopped ({count} customer(s) asked to leave)")


broadcasts_app = typer.Typer(help="Broadcasts asked for (`omnicanal broadcast`, POST /v1/broadcasts, schedules): "
                             "list, show, cancel.", no_args_is_help=True)
app.add_typer(broadcasts_app, name="broadcasts")


@app.command()
def broadcast(
    journey: JourneyArgument,
    audience: Annotated[str | None, typer.Option("--audience", help="A segment id: its members.")] = None,
    where: Annotated[str | None, typer.Option(
        help="A condition on customers, as in journeys: those for whom it holds (every customer is read).")] = None,
    everyone: Annotated[bool, typer.Option("--everyone", help="Every customer (said explicitly).")] = False,
    at: Annotated[str | None, typer.Option(help="When to begin (ISO 8601, journey time); default: now.")] = None,
    rate: Annotated[float, typer.Option(help="Customers started per second at most (0: as fast as the workers "
                                              "take them).")] = 0.0,
    data: Annotated[str | None, typer.Option(help="The broadcast event's properties, as a JSON object: templates "
                                                   "see them as event.properties.")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Show the progress until it is done; "
                                                                      "Ctrl-C stops following, not the broadcast.")]
        = True,
    config: ConfigOption = None,
) -> None:
    """Start a journey once for a whole audience: a segment's members, customers meeting a condition, or everyone.

    The daemon's workers walk the audience. Re-entry rules, consent, caps and quiet hours apply per customer.

    Examples:

      omnicanal broadcast winter_sale --audience lapsed_gold

      omnicanal broadcast winter_sale --where "customer.tier == 'gold'" --rate 200 --at 2026-12-05T09:00:00Z
    """
    from omnicanal.admin import create_broadcast
    from omnicanal.broadcasting import audience_of
    from omnicanal.codec import loads

    try:
        chosen = audience_of(audience, where, everyone)
        properties = loads(data) if data is not None else {}
    except (OmnicanalError, ValueError) as exc:
        _fail(f"--data: {exc}" if isinstance(exc, ValueError) else str(exc))
    if not isinstance(properties, dict):
        _fail("--data: a JSON object, e.g. '{\"season\": \"winter\"}'")
    settings = _settings(config)
    created = _admin_with(settings, lambda s: create_broadcast(s, journey, chosen, _moment("--at", at), rate,
                                                               properties))
    typer.echo(created.id)
    typer.echo(f"broadcast {created.id}: {journey} for {_audience_text(chosen)}"
               f"{f', from {iso(created.at)}' if at else ''}", err=True)
    if follow:
        _follow(settings, created.id)


def _audience_text(audience: dict[str, Any]) -> str:
    if "segment" in audience:
        return f"segment {audience['segment']}"
    return f"customers where {audience['where']}" if "where" in audience else "everyone"


def _follow(settings: Settings, broadcast_id: str) -> None:
    """A progress bar of the starts applied, until the broadcast is finished or Ctrl-C."""
    import time

    from omnicanal.admin import read_broadcast

    state = _admin_with(settings, lambda s: read_broadcast(s, broadcast_id))
    try:
        while state.planned is None and state.status == "scheduled":
            time.sleep(0.5)  # its moment has not come, or no worker runs yet
            state = _admin_with(settings, lambda s: read_broadcast(s, broadcast_id))
        with typer.progressbar(length=max(1, state.planned or 0), label="customers", file=sys.stderr) as bar:
            shown = 0
            while True:
                done = state.considered if state.audience.get("where") else state.started + sum(
                    state.skipped.values())
                bar.update(max(0, min(done, bar.length) - shown))
                shown = max(shown, min(done, bar.length))
                if state.to_json()["finished"]:
                    break
                time.sleep(0.5)
                state = _admin_with(settings, lambda s: read_broadcast(s, broadcast_id))
    except KeyboardInterrupt:
        typer.echo(f"\nstopped following; the broadcast goes on (omnicanal broadcasts cancel {broadcast_id})",
                   err=True)
        raise typer.Exit(130) from None
    typer.echo(_summary(state.to_json()), err=True)


def _summary(view: dict[str, Any]) -> str:
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(view["skipped"].items())) or "none"
    return (f"{view['id']} {view['status']}: {view['queued']} queued of {view['planned']} in the audience, "
            f"{view['started']} started, skipped: {skipped}, {view['pending']} pending")


@broadcasts_app.command("list")
def broadcasts_list(limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")]
                    = 20,
                    config: ConfigOption = None) -> None:
    """The latest broadcasts with their progress. Example: omnicanal broadcasts list --limit 5"""
    from omnicanal.admin import recent_broadcasts

    for found in _admin(config, lambda s: recent_broadcasts(s, limit)):
        typer.echo(f"{iso(found.created_at)}  {found.journey}  {_audience_text(found.audience)}  "
                   f"({found.origin})\n    {_summary(found.to_json())}")


@broadcasts_app.command("show")
def broadcasts_show(broadcast_id: Annotated[str, typer.Argument(help="Its id (b_...).")],
                    follow: Annotated[bool, typer.Option("--follow", help="Show the progress until done.")] = False,
                    config: ConfigOption = None) -> None:
    """One broadcast as JSON (`--follow`: a progress bar until it is done).

    Example: omnicanal broadcasts show s.weekly_winback.1796630400 --follow"""
    from omnicanal.admin import read_broadcast
    from omnicanal.codec import dumps

    settings = _settings(config)
    if follow:
        _follow(settings, broadcast_id)
        return
    typer.echo(dumps(_admin_with(settings, lambda s: read_broadcast(s, broadcast_id)).to_json()))


@broadcasts_app.command("cancel")
def broadcasts_cancel(broadcast_id: Annotated[str, typer.Argument(help="Its id (b_...).")],
                      config: ConfigOption = None) -> None:
    """Stop walking the audience; the starts already queued still apply.

    Example: omnicanal broadcasts cancel b_1a2b3c4d5e6f"""
    from omnicanal.admin import cancel_broadcast

    cancelled = _admin(config, lambda s: cancel_broadcast(s, broadcast_id))
    typer.echo(_summary(cancelled.to_json()))


keys_app = typer.Typer(help="API keys with scopes, stored hashed in the daemon's Redis: create, list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
WorkspaceOption = Annotated[str | None, typer.Option(help="The keys' workspace [OMNICANAL_WORKSPACE].")]


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[Scope], typer.Option("--scope", help="What the key may do; repeat for several.")],
    workspace: WorkspaceOption = None,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. shop-backend.")] = "",
    signing: Annotated[bool, typer.Option("--signing", help="Its requests must also be signed (HMAC-SHA256, "
                                          "5-minute window, each once) with a signing secret, printed on a second "
                                          "line: for server-to-server event sources (--scope events:write "
                                          "only).")] = False,
    config: ConfigOption = None,
) -> None:
    """Create an API key and print its secret, on standard output, this once (only its hash is stored); with
    --signing, its signing secret on the next line.

    API processes take it within a second; from then on, keys are required on that workspace (see README,
    Security). Example: omnicanal keys create --scope events:write --scope customers:write --name shop-backend
    """
    from omnicanal.admin import create_key

    settings = _settings(config, workspace=workspace)
    key, secret = _admin_with(settings, lambda s: create_key(s, name, [str(each) for each in scope], signing))
    typer.echo(secret)
    if key.signing_secret is not None:
        typer.echo(key.signing_secret)
    typer.echo(f"created key {key.id} in workspace {key.workspace} with {', '.join(key.scopes)}"
               f"{', its requests signed' if signing else ''}: store the secret{'s' if signing else ''} now, "
               f"{'they are' if signing else 'it is'} not shown again", err=True)


@keys_app.command("list")
def keys_list(
    workspace: WorkspaceOption = None,
    revoked: Annotated[bool, typer.Option("--all", help="Also the revoked keys.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show the keys (never their secrets): id, name, scopes, when created and last used, whether its requests are
    signed. Example: omnicanal keys list --all --workspace shop-de"""
    from omnicanal.admin import list_keys

    keys = [key for key in _admin_with(_settings(config, workspace=workspace), list_keys)
            if revoked or key.revoked_at is None]
    typer.echo(f"{'ID':<17} {'NAME':<20} {'WORKSPACE':<12} {'CREATED':<25} {'LAST USED':<25} SCOPES")
    for key in keys:
        used = iso(key.last_used) if key.last_used else "never"
        scopes = (",".join(key.scopes) + ("  (signed requests)" if key.signing_secret else "")
                  + (f"  (revoked {iso(key.revoked_at)})" if key.revoked_at else ""))
        typer.echo(f"{key.id:<17} {key.name or '-':<20} {key.workspace:<12} {iso(key.created_at):<25} {used:<25} "
                   f"{scopes}")
    typer.echo(f"{len(keys)} key(s)", err=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
    workspace: WorkspaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a key: every API process refuses it within a second. Rotate by creating the new key first, moving
    its users over, then revoking the old one. Example: omnicanal keys revoke 3f9a2b7c1d4e5f60"""
    from omnicanal.admin import revoke_key

    key, now = _admin_with(_settings(config, workspace=workspace), lambda s: revoke_key(s, key_id))
    typer.echo(f"revoked key {key.id}" if now else f"key {key.id} was already revoked")


@app.command()
def audit(
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time: entries from then on.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    config: ConfigOption = None,
) -> None:
    """Admin actions, newest first: when, who (an API key's id, static, anonymous or cli:<user>), what, on what.

    Example: omnicanal audit --since 2026-12-01 --limit 20
    """
    from omnicanal.admin import read_audit

    start = _moment("--since", since)
    for entry in _admin(config, lambda s: read_audit(s, start, limit)):
        entry = {**entry, "at": iso(entry["at"])}
        details = json.dumps(entry["details"], ensure_ascii=False)
        typer.echo(json.dumps(entry, ensure_ascii=False) if as_json
                   else f"{entry['at']}  {entry['actor']}  {entry['action']}  {entry['target']}  {details}")


FILE_ERRORS = (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
"""A file or folder of the command's own that it cannot open: a line naming it, not a traceback, whichever
command met it (a folder without read permission, one removed while the command ran)."""


def _encodable_output() -> None:
    """Standard output on a terminal that is not UTF-8 (a Latin-1 locale, PYTHONIOENCODING=ascii): what its encoding
    cannot write comes out as a backslash escape (`\\u2014`, valid in JSON strings), as standard error already does,
    instead of a UnicodeEncodeError that ended the command at its first em dash."""
    import codecs
    import io

    if isinstance(sys.stdout, io.TextIOWrapper) and codecs.lookup(sys.stdout.encoding).name != "utf-8":
        sys.stdout.reconfigure(errors="backslashreplace")


def main() -> None:
    _encodable_output()
    try:
        app()
    except FILE_ERRORS as exc:
        typer.echo(f"error: cannot open {exc.filename}: {exc.strerror}", err=True)
        raise SystemExit(1) from None
