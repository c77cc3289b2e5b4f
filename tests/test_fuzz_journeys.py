"""The journey loader on generated input: any document, and any mutation of the shipped journeys, loads or fails
with a JourneyError whose every problem names the file and a line in it; never another exception, never a
hang, never all the memory."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import bounded, fuzz_settings
from omnicanal.errors import JourneyError
from omnicanal.journey.loader import parse_journey
from omnicanal.render import TemplateCatalog

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "journeys").glob("*.yaml"))}
TEMPLATES = TemplateCatalog.load(ROOT / "templates")
YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""What YAML counts as the end of a line (and so the lines problems are reported at)."""


def _vocabulary() -> tuple[list[str], list[Any]]:
    """Every key and every scalar of the shipped journeys: generated documents speak the language."""
    keys: set[str] = set()
    scalars: set[Any] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            keys.update(str(k) for k in value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            scalars.add(value)
    for text in SHIPPED.values():
        walk(yaml.safe_load(text))
    return sorted(keys), sorted(scalars, key=repr)


KEYS, SCALARS = _vocabulary()
ODD = ("", "-1", "0", "1e308d", "99999999d", "after 7d", "never", "1/0d", "0/1d", "channel:1/4h", "{{ 1 }}",
       "event.properties.__class__", "'a' * 10**9", "10**10**7", "x" * 300, "\u0000", "\ud7ff", "yes", "~", None)
SCALAR = st.one_of(st.sampled_from(SCALARS), st.sampled_from(ODD), st.integers(), st.floats(), st.booleans(),
                   st.text(max_size=20))
DOCUMENTS = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6)),
    max_leaves=30,
)


def check(source: str) -> None:
    """The property, for one file's text."""
    lines = len(YAML_LINE_BREAK.findall(source)) + 1
    with bounded(seconds=10):
        try:
            parse_journey(source, "fuzz.yaml", TEMPLATES)
        except JourneyError as exc:
            assert exc.problems, exc
            for problem in exc.problems:
                assert problem.path == "fuzz.yaml" and 1 <= problem.line <= lines, (problem, lines)


@given(document=st.fixed_dictionaries({"id": SCALAR, "trigger": DOCUMENTS, "steps": DOCUMENTS}, optional={
    "goal": DOCUMENTS, "exit_on": DOCUMENTS, "re_entry": SCALAR, "caps": DOCUMENTS, "name": SCALAR}) | DOCUMENTS)
@fuzz_settings(150)
def test_any_document_loads_or_fails_located(document: Any) -> None:
    check(yaml.safe_dump(document, allow_unicode=True))


MUTATIONS = ("delete", "duplicate", "swap", "truncate", "insert", "replace", "indent", "dedent")


@given(name=st.sampled_from(sorted(SHIPPED)), seed=st.integers(0, 2**32),
       mutations=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4),
       token=st.one_of(st.sampled_from([*(str(s) for s in SCALARS), *KEYS, *(str(o) for o in ODD)]),
                       st.text(max_size=10)))
@fuzz_settings(300)
def test_any_mutation_of_a_shipped_journey_loads_or_fails_located(name: str, seed: int, mutations: list[str],
                                                                 token: str) -> None:
    rng = random.Random(seed)
    lines = SHIPPED[name].split("\n")
    for mutation in mutations:
        at = rng.randrange(len(lines))
        if mutation == "delete" and len(lines) > 1:
            del lines[at]
        elif mutation == "duplicate":
            lines.insert(at, lines[at])
        elif mutation == "swap":
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif mutation == "truncate":
            lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
        elif mutation == "insert":
            cut = rng.randrange(len(lines[at]) + 1)
            lines[at] = lines[at][:cut] + token + lines[at][cut:]
        elif mutation == "replace":
            words = lines[at].split(" ")
            words[rng.randrange(len(words))] = token
            lines[at] = " ".join(words)
        elif mutation == "indent":
            lines[at] = "  " + lines[at]
        else:
            lines[at] = lines[at][2:] if lines[at].startswith("  ") else lines[at]
    check("\n".join(lines))


@given(source=st.text(max_size=200))
@fuzz_settings(200)
def test_any_text_loads_or_fails_located(source: str) -> None:
    check(source)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize(("source", "message"), [
    (BOMB + "id: x\n", "more than 100,000 values once its aliases"),  # 9**9 values: used up the memory
    ("id: x\nsteps: " + "[" * 5000 + "]" * 5000, "nested deeper than the YAML reader follows"),  # RecursionError
    ("id: x\nsteps: " + "{a: " * 3000 + "1" + "}" * 3000, "nested deeper than the YAML reader follows"),
    ("id: x\ntrigger: {event: e}\nsteps: [{wait: " + "9" * 400 + "d}]", "at most 100 years"),  # inf seconds
    ("id: x\ntrigger: {event: e}\nre_entry: after 99999999d\nsteps: [exit: {}]", "at most 100 years"),
    ("id: x\ntrigger: {event: e, where: '" + "(" * 500 + "1" + ")" * 500 + "'}\nsteps: [exit: {}]", "compile"),
])
def test_what_the_loader_fuzzing_found_is_a_located_problem(source: str, message: str) -> None:
    """Each of these raised something else than a JourneyError (RecursionError; or MemoryError, the machine
    swapping first), or loaded a journey whose timer could never be shown as a date."""
    with bounded(seconds=10), pytest.raises(JourneyError, match=message) as raised:
        parse_journey(source, "fuzz.yaml")
    assert all(problem.path == "fuzz.yaml" for problem in raised.value.problems)
