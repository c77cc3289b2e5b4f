"""The JSON Schemas of the files people write: in sync with the models, named by every shipped file, accepting
what `omnicanal validate` accepts and refusing a wrong key where it refuses one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import ROOT
from omnicanal.errors import JourneyError
from omnicanal.journey import loader
from omnicanal.journey.durations import parse_duration
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import KIND_MODELS
from omnicanal.schema import KINDS, Kind, file_name, schema, schema_text
from test_cli import run

pytest_plugins = ["pytester"]

SHIPPED = {"journeys": "journey", "templates": "template", "examples": "scenario"}
"""The shipped folders, and the kind of file each holds."""

MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def load(text: str) -> Any:
    """A YAML document as an editor's language server sees it: timestamps are text, not datetimes."""
    return json.loads(json.dumps(yaml.safe_load(text), default=str))


def errors(kind: Kind, text: str, schema_document: dict[str, Any] | None = None) -> list[str]:
    """Every message the schema gives about the document, those under `oneOf`/`anyOf` included."""
    validator = jsonschema.Draft202012Validator(schema_document or schema(kind))
    messages: list[str] = []
    pending = list(validator.iter_errors(load(text)))
    while pending:
        error = pending.pop()
        messages.append(error.message)
        pending += error.context or []
    return messages


def shipped_files() -> list[Path]:
    return sorted(path for folder in SHIPPED for path in (ROOT / folder).glob("*.yaml"))


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_schema_is_the_one_the_models_give(kind: Kind) -> None:
    committed = ROOT / "schemas" / file_name(kind)
    jsonschema.Draft202012Validator.check_schema(schema(kind))
    assert committed.read_text(encoding="utf-8") == schema_text(kind), (
        f"schemas/{file_name(kind)} is out of date: run `omnicanal schema {kind} > schemas/{file_name(kind)}`")


def test_schemas_holds_one_file_per_kind_and_the_cli_prints_each() -> None:
    assert sorted(path.name for path in (ROOT / "schemas").iterdir()) == sorted(map(file_name, KINDS))
    result = run("schema", "template")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schemas" / "template.schema.json").read_text(encoding="utf-8")
    result = run("schema", "journeys")
    assert result.returncode == 2 and "'journeys' is not one of 'journey'" in result.stderr


@pytest.mark.parametrize("path", shipped_files(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_shipped_file_names_its_schema_on_its_first_line_and_satisfies_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    kind = SHIPPED[path.parent.name]
    modeline = MODELINE.match(text)
    assert modeline and modeline.group(1) == f"../schemas/{file_name(kind)}", text.splitlines()[0]
    named = json.loads((path.parent / modeline.group(1)).read_text(encoding="utf-8"))
    assert errors(kind, text, named) == []


def test_init_writes_the_schemas_its_files_name(tmp_path: Path) -> None:
    assert run("init", "shop", cwd=tmp_path).returncode == 0
    project = tmp_path / "shop"
    assert sorted(path.name for path in (project / "schemas").iterdir()) == sorted(map(file_name, KINDS))
    written = sorted(project.glob("*/*.yaml"))
    assert len(written) == len(shipped_files())
    for path in written:
        text = path.read_text(encoding="utf-8")
        modeline = MODELINE.match(text)
        assert modeline, path
        named = path.parent / modeline.group(1)
        assert named.resolve().is_relative_to(project) and named.is_file(), named
        assert errors(SHIPPED[path.parent.name], text, json.loads(named.read_text(encoding="utf-8"))) == []


HEAD = "id: j\ntrigger: {event: e}\nsteps:\n"
END = "  - {id: end, exit: {reason: done}}\n"

STEPS: dict[str, tuple[str, str]] = {
    "send": ("{send: {template: t, channel: sms, fallback_after: 2h, delivered_on: message.clicked}}",
             "{send: {template: t, channels: [sms], colour: red}}"),
    "wait": ("{wait: 1h30m}", '{wait: {until: "09:30", colour: red}}'),
    "wait_for": ("{wait_for: {event: paid, timeout: 2d, on_timeout: end}}",
                 "{wait_for: {event: paid, timeout: 2d, colour: red}}"),
    "branch": ('{branch: [{when: "vars.total > 1", goto: end}, {else: end}]}',
               '{branch: [{when: "vars.total > 1", goto: end, colour: red}, {else: end}]}'),
    "update": ('{update: {vars: {total: "event.properties.total", n: 3}}}',
               '{update: {vars: {total: "event.properties.total"}, colour: red}}'),
    "goto": ("{goto: end}", "{goto: end, colour: red}"),
    "exit": ("{wait_for: {event: paid, timeout: 1h, on_timeout: end}}\n  - exit", "{exit: {colour: red}}"),
    "digest": ('{digest: {event: viewed, window: 1d, template: t, channels: [email]}}',
               '{digest: {event: viewed, window: 1d, template: t, channels: [email], colour: red}}'),
    "split": ("{split: [{weight: 90, goto: end}, {weight: 10, holdout: true}]}",
              "{split: [{weight: 90, goto: end, colour: red}, {weight: 10, holdout: true}]}"),
    "fetch": ('{fetch: {url: "https://shop.example/{{ vars.sku }}", timeout: 2s, into: stock}}',
              '{fetch: {url: "https://shop.example/{{ vars.sku }}", into: stock, colour: red}}'),
}
"""Per step kind: a step as an author writes it, and the same with a wrong key `colour`."""


def test_every_step_kind_has_a_wrong_key_case() -> None:
    assert sorted(STEPS) == sorted(KIND_MODELS)


@pytest.mark.parametrize("kind", sorted(STEPS))
def test_a_wrong_key_in_a_step_is_refused_by_the_schema_as_by_validate(kind: str) -> None:
    written, wrong = STEPS[kind]
    good = f"{HEAD}  - {written}\n{END}"
    parse_journey(good, "j.yaml")
    assert errors("journey", good) == []
    bad = f"{HEAD}  - {wrong}\n{END}"
    with pytest.raises(JourneyError, match="colour"):
        parse_journey(bad, "j.yaml")
    assert any("'colour' was unexpected" in message for message in errors("journey", bad))


@pytest.mark.parametrize(("kind", "text", "key"), [
    ("journey", HEAD.replace("{event: e}", '{event: e, were: "event.properties.total > 1"}') + END, "were"),
    ("journey", "re_entry: after 7d\ngoal: {event: paid, within: 3d, revnue: 1}\n" + HEAD + END, "revnue"),
    ("journey", HEAD + "  - {id: x, sned: {template: t, channel: sms}}\n" + END, "sned"),
    ("template", "en:\n  sms: {body: hi}\n  push: {title: hi, body: there, titel: x}\n", "titel"),
    ("template", "en:\n  sms: {body: hi}\n  pushh: {title: hi, body: there}\n", "pushh"),
    ("scenario", "events:\n  - {at: 2h, nmae: cart_abandoned}\nuntil: 3d\n", "nmae"),
    ("segment", 'id: s\nwhere: "aggregates.n > 1"\naggregates: {n: {event: e, count: true, windw: 1d}}\n', "windw"),
])
def test_a_wrong_key_elsewhere_is_named_by_the_schema(kind: Kind, text: str, key: str) -> None:
    assert any(f"'{key}' was unexpected" in message for message in errors(kind, text))


@pytest.mark.parametrize(("kind", "text"), [
    ("journey", HEAD.replace("steps:\n", "re_entry: sometimes\nsteps:\n") + END),
    ("journey", HEAD.replace("steps:\n", "caps: [1/1 day]\nsteps:\n") + END),
    ("journey", HEAD + "  - {wait: 1 hour}\n" + END),
    ("journey", HEAD + "  - {send: {template: t, channel: fax}}\n" + END),
    ("journey", HEAD + "  - {send: {template: t, channel: sms, channels: [sms]}}\n" + END),
    ("journey", HEAD + "  - {branch: [{when: a, goto: end}]}\n" + END),
    ("journey", HEAD + "  - {id: Bad Id, exit: null}\n" + END),
    ("template", "english:\n  sms: {body: hi}\n"),
    ("template", "en:\n  push: {title: hi}\n"),
    ("segment", 'id: s\nwhere: "true"\naggregates: {n: {event: e, count: true, sum: "1"}}\n'),
])
def test_wrong_values_are_refused_by_the_schema(kind: Kind, text: str) -> None:
    assert errors(kind, text) != []


def test_the_design_documents_segment_validates() -> None:
    assert errors("segment", """\
id: lapsed_gold
where: "customer.tier == 'gold' and aggregates.orders_90d == 0"
aggregates:
  orders_90d: {event: order_placed, count: true, within: 90d}
  spend_365d: {event: order_placed, sum: "event.properties.total", within: 365d}
  last_visit: {event: page_viewed, last: "event.timestamp"}
""") == []


@pytest.mark.parametrize("written", ["30s", "1h30m", "2.5d", "1w", " 15m ", "3600", "1 hour", "h", "1x", "-1h",
                                     "1h 30m"])
def test_the_schema_reads_durations_as_the_engine_does(written: str) -> None:
    try:
        parse_duration(written)
        parses = True
    except ValueError:
        parses = False
    assert (errors("journey", f"{HEAD}  - wait: {written!r}\n{END}") == []) == parses


def test_every_journey_the_language_tests_load_satisfies_the_schema(pytester: pytest.Pytester,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The valid examples of tests/test_journey_language.py and test_design_examples.py, whatever they become:
    every source the loader accepts while they run."""
    accepted: list[str] = []
    check = loader._check

    def recording(source: str, path: str, *rest: Any) -> Any:
        checked = check(source, path, *rest)
        if checked.journey is not None:
            accepted.append(source)
        return checked

    monkeypatch.setattr(loader, "_check", recording)
    tests = [str(ROOT / "tests" / name) for name in ("test_journey_language.py", "test_design_examples.py")]
    outcomes = pytester.runpytest_inprocess(*tests, "-p", "no:cacheprovider").parseoutcomes()
    assert outcomes.get("passed", 0) > 50 and len(accepted) > 20, outcomes
    for source in accepted:
        assert errors("journey", source) == [], source
