"""Project files as a careless or hostile operator leaves them: a very long journey, links that lead nowhere,
huge files. Each must come out as located problems (`file:line`), never an exception or minutes of parsing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT
from omnicanal.errors import ConfigError
from omnicanal.journey.graph import to_mermaid
from omnicanal.journey.loader import parse_journey, validate_project


def _long_journey(steps: int) -> str:
    """A journey of `steps` waits in a row, the last jumping back to the first: one loop through all of them."""
    lines = ["id: long", "trigger: {event: e}", "steps:", "  - id: first", "    wait: 1h"]
    lines += ["  - wait: 1h"] * (steps - 2)
    lines += ["  - goto: first"]
    return "\n".join(lines) + "\n"


def test_a_journey_of_thousands_of_steps_is_checked_without_running_out_of_stack() -> None:
    journey = parse_journey(_long_journey(5000), "journeys/long.yaml")
    assert len(journey.steps) == 5000
    assert to_mermaid(journey).count("-->") >= 5000


def _project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the shipped journeys and templates, and an empty segments folder."""
    journeys, templates, segments = tmp_path / "journeys", tmp_path / "templates", tmp_path / "segments"
    shutil.copytree(ROOT / "journeys", journeys)
    shutil.copytree(ROOT / "templates", templates)
    segments.mkdir()
    return journeys, templates, segments


def _validate(journeys: Path, templates: Path, segments: Path) -> list[str]:
    return [str(problem) for problem in validate_project(journeys, templates, "en", segments)]


def test_a_file_that_is_a_link_to_nothing_is_a_problem_not_a_journey_left_out(tmp_path: Path) -> None:
    journeys, templates, segments = _project(tmp_path)
    (journeys / "moved.yaml").symlink_to(tmp_path / "elsewhere" / "moved.yaml")
    (journeys / "loop.yaml").symlink_to(journeys / "loop.yaml")
    (templates / "gone.yaml").symlink_to(tmp_path / "gone.yaml")
    (segments / "vip.yaml").symlink_to(tmp_path / "vip.yaml")
    problems = _validate(journeys, templates, segments)
    assert len(problems) == 4, problems
    for name in (journeys / "moved.yaml", journeys / "loop.yaml", templates / "gone.yaml", segments / "vip.yaml"):
        assert any(problem.startswith(f"{name}:1: cannot read the file") for problem in problems), (name, problems)


def test_a_huge_file_is_refused_at_once_naming_its_size(tmp_path: Path) -> None:
    journeys, templates, segments = _project(tmp_path)
    (journeys / "export.yaml").write_text("id: export\ntrigger: {event: e}\nsteps:\n" + "  - wait: 1h\n" * 400_000)
    (templates / "newsletter.yaml").write_text("email:\n  en:\n    subject: hi\n    html: |\n"
                                               + "      <p>lorem ipsum</p>\n" * 200_000)
    started = time.monotonic()
    problems = _validate(journeys, templates, segments)
    assert time.monotonic() - started < 10
    assert problems == [
        f"{journeys / 'export.yaml'}:1: the file is 5,200,038 bytes; a journey, template or segment file holds at "
        "most 1,000,000 (is it the file you meant to put here?)",
        f"{templates / 'newsletter.yaml'}:1: the file is 5,000,041 bytes; a journey, template or segment file holds "
        "at most 1,000,000 (is it the file you meant to put here?)",
    ]


@pytest.mark.parametrize("tag", ['{% include "../journeys/abandoned_cart.yaml" %}', '{% import "/etc/passwd" as x %}',
                                 '{% from "welcome.yaml" import body %}', '{% extends "cart_discount.yaml" %}'])
def test_a_template_reading_another_file_is_refused_by_validate_not_failing_every_send(tmp_path: Path,
                                                                                        tag: str) -> None:
    journeys, templates, segments = _project(tmp_path)
    (templates / "footer.yaml").write_text(f"en:\n  push:\n    title: Hi\n    body: |\n      Hello\n      {tag}\n")
    problems = _validate(journeys, templates, segments)
    assert problems == [f"{templates / 'footer.yaml'}:6: template footer (en, push.body): Jinja2 syntax error: "
                        "a template field stands alone: include, import and extends (which read another file) "
                        "are not available; write the text here, or a macro in this field"], problems


def test_a_segments_folder_that_is_a_file_is_a_problem_not_no_segments(tmp_path: Path) -> None:
    journeys, templates, segments = _project(tmp_path)
    segments.rmdir()
    segments.write_text("id: vip\nwhere: \"customer.tier == 'gold'\"\n")
    with pytest.raises(ConfigError, match=r"OMNICANAL_SEGMENTS_DIR: '.*segments' is not a directory"):
        _validate(journeys, templates, segments)
